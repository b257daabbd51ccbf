//! `sluice-bench fanout [N]`: one parent maps a trivial task (`x -> x + 1`) over `0..N` and sums
//! the results (`fan_out` of `tests/fixtures/calls`): every child is a recorded action with its
//! inputs and outputs documents, durable (SQLite file + local directory store) and, for
//! reference, with nothing persisted. Prints tasks per second beside Flyte v2 local gathering the
//! same N tasks with `asyncio.gather` (`bench/peer/fanout.py`), measured in the same run.

use std::time::{Duration, Instant};

use sluice_host::{Host, RunRequest, Value};

use super::peer;

/// Children running at once: the `map`'s concurrency (the host's default per-run limit).
const CONCURRENCY: i64 = 64;
/// Runs measured per case; the median is reported.
const REPETITIONS: usize = 3;
/// Goal of issue 5, durable.
const GOAL_TASKS_PER_S: f64 = 5000.0;

/// Runs the fan-out of `n` children once and returns its wall time (component loaded before).
async fn fan_out(
    host: &Host,
    env: &std::sync::Arc<sluice_host::engine::LoadedComponent>,
    n: usize,
) -> Duration {
    let started = Instant::now();
    let out = host
        .run(
            env,
            RunRequest::new("fan_out")
                .input("n", n as i64)
                .input("concurrency", CONCURRENCY),
        )
        .await
        .expect("run");
    let elapsed = started.elapsed();
    let outputs = out.outputs.expect("fan_out succeeds");
    let expected = (n as i64) * (n as i64 + 1) / 2;
    assert_eq!(
        outputs.get("o0"),
        Some(&Value::Int(expected)),
        "fan_out computed the wrong sum"
    );
    elapsed
}

/// Median tasks per second over [`REPETITIONS`] fan-outs of `n`, after a small warm-up.
async fn measure(host: &Host, n: usize) -> f64 {
    let env = host
        .load_file(sluice_tests::fixture("calls"))
        .await
        .expect("loading the calls fixture");
    fan_out(host, &env, 200).await;
    let mut rates = Vec::with_capacity(REPETITIONS);
    for _ in 0..REPETITIONS {
        let wall = fan_out(host, &env, n).await;
        rates.push(n as f64 / wall.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

pub async fn run(n: usize) {
    let home = super::bench_home();
    let durable = super::durable_host(home.path()).await;
    let durable_rate = measure(&durable, n).await;
    let (dir_us, file_us) = super::disk_inode_us(home.path());

    let memory_home = super::bench_home();
    let memory = super::memory_host(memory_home.path()).await;
    let memory_rate = measure(&memory, n).await;

    let flyte = peer::flyte_fanout(n);
    println!(
        "fan-out of {n} trivial children in one run, map concurrency {CONCURRENCY}, median of \
         {REPETITIONS} (release build)"
    );
    let row = |label: &str, rate: f64, goal: Option<f64>| {
        let vs_peer = match &flyte {
            Ok(peer_rate) => format!(
                "{:.1}x Flyte v2 local ({peer_rate:.0} tasks/s, measured now)",
                rate / peer_rate
            ),
            Err(why) => format!("Flyte not measured: {why}"),
        };
        let goal = match goal {
            Some(g) if rate >= g => format!(" | goal >= {g:.0}/s: met"),
            Some(g) => format!(" | goal >= {g:.0}/s: NOT met"),
            None => String::new(),
        };
        println!("{label:<30} {rate:>8.0} tasks/s{goal} | {vs_peer}");
    };
    row(
        "sluice durable (sqlite+file)",
        durable_rate,
        Some(GOAL_TASKS_PER_S),
    );
    row("sluice in memory", memory_rate, None);
    let per_child_us = 2.0 * dir_us + 2.0 * file_us;
    println!(
        "this disk, same run: a new directory {dir_us:.1} µs, a new file {file_us:.1} µs (plain std::fs loop); each durable child makes 2 + 2 of them: {per_child_us:.1} µs, {:.0}% of the {:.1} µs of the two cores' time per child",
        per_child_us * durable_rate / 2e4,
        2e6 / durable_rate
    );
}
