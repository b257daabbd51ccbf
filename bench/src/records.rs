//! `sluice-bench records [N]`: the cost of recording one run (start and finish transactions) on
//! each records backend, in one process: the in-process SQLite the host uses by default, and the
//! sqlx path (the one PostgreSQL takes) on the same kind of SQLite file, as the baseline that
//! motivated the choice; and on SQLite, the same run with its start held and written with its
//! end (`records::StartRecord`, what a run whose attempt never waits costs).

use std::time::Instant;

use sluice_host::records::wal_vfs::wal_writes;
use sluice_host::records::{AfterAttempt, AttemptEnd, NewRun, Records, StartRecord};

/// How a run's start reaches the records.
#[derive(Clone, Copy)]
enum Start {
    /// Written on its own before the attempt (an attempt that waits for something).
    Written,
    /// Held and written with the end, as rows born finished (an attempt that does not wait).
    Held,
}

async fn per_run_us(url: &str, n: usize, start: Start) -> f64 {
    let records = Records::connect(url).await.expect("connect");
    let run = |i: usize| NewRun {
        run_id: format!("r{i:08}"),
        parent_id: None,
        project: "bench".into(),
        domain: "dev".into(),
        component_digest: "d".into(),
        task: "add_one".into(),
        action_id: "a0".into(),
        started_at: i as i64,
        inputs_uri: format!("memory:///bench/dev/r{i:08}/a0/1/inputs.msgpack"),
        raw_data_path: None,
        cache_key: None,
        cache_status: "disabled".into(),
    };
    let started = Instant::now();
    let after = AfterAttempt::Final { cache: None };
    for i in 0..n {
        let new = run(i);
        let end = AttemptEnd {
            run_id: new.run_id.clone(),
            action_id: "a0".into(),
            attempt: 1,
            ended_at: i as i64 + 1,
            outcome: Ok(format!("memory:///bench/dev/r{i:08}/a0/1/outputs.msgpack")),
            log_uri: None,
            instantiate_us: Some(1),
            call_us: Some(1),
            ends_run: true,
        };
        match start {
            Start::Written => {
                records.create_action(&new, &[]).await.expect("start");
                records.finish_attempt(&end, &after).await.expect("finish");
            }
            Start::Held => {
                let held = StartRecord::held(new, &[]).take().await.expect("held");
                records
                    .finish_held_attempt(held, &end, &after)
                    .await
                    .expect("held start and end");
            }
        }
    }
    started.elapsed().as_secs_f64() * 1e6 / n as f64
}

pub async fn run(n: usize) {
    // `SLUICE_BENCH_ONLY=memory` records in memory alone (for profilers).
    if std::env::var("SLUICE_BENCH_ONLY").as_deref() == Ok("memory") {
        let memory = per_run_us("sqlite::memory:", n, Start::Held).await;
        println!("recording one run in memory (start held), {n} runs: {memory:.1} µs");
        return;
    }
    let dir = super::bench_home();
    let (asked_before, made_before) = wal_writes();
    let file = |name: &str| format!("sqlite://{}/{name}.db", dir.path().display());
    let rusqlite_file = per_run_us(&file("a"), n, Start::Written).await;
    let (asked, made) = wal_writes();
    let asked = (asked - asked_before) as f64 / n as f64;
    let made = (made - made_before) as f64 / n as f64;
    let held_file = per_run_us(&file("c"), n, Start::Held).await;
    let sqlx_file = per_run_us(
        &format!("sqlx+sqlite://{}/b.db?mode=rwc", dir.path().display()),
        n,
        Start::Written,
    )
    .await;
    let rusqlite_memory = per_run_us("sqlite::memory:", n, Start::Written).await;
    let held_memory = per_run_us("sqlite::memory:", n, Start::Held).await;
    println!(
        "recording one run, {n} runs: start + finish transactions (9 statements with the events), \
         and the start held and written with the end (one transaction of 5 inserts)"
    );
    println!(
        "  in-process SQLite file (default)  {rusqlite_file:>7.1} µs   (WAL writes per run: {asked:.1} asked by SQLite, {made:.1} made)"
    );
    println!(
        "    start held                      {held_file:>7.1} µs   -> {:.2}x the two transactions",
        held_file / rusqlite_file
    );
    println!("  in-process SQLite in memory       {rusqlite_memory:>7.1} µs");
    println!(
        "    start held                      {held_memory:>7.1} µs   -> {:.2}x the two transactions",
        held_memory / rusqlite_memory
    );
    println!(
        "  sqlx SQLite file (baseline)       {sqlx_file:>7.1} µs   -> in-process is {:.1}x faster",
        sqlx_file / rusqlite_file
    );
}
