//! `sluice-bench cache [N]`: cache misses (run + write the entry) and hits (answered from the
//! entry, no sandbox) of a trivial cached task, each a recorded run, durable and in memory,
//! beside Flyte v2 local's cached chain (`chain.py cache-cold`) measured in the same run.

use std::time::{Duration, Instant};

use sluice_host::{Host, RunRequest};

use super::{durable_host, median_of, memory_host, peer, us, WARM_UP_RUNS};

/// Goals of issue 4, per task.
const HIT_GOAL_US: f64 = 50.0;
const MISS_GOAL_US: f64 = 300.0;

/// Median per run of `cached_add(x, 1)` for x in `from..from + n`, and the cache status the
/// runs must have had.
async fn timed_runs(host: &Host, from: i64, n: usize) -> Duration {
    let env = host
        .load_file(sluice_tests::fixture("durable"))
        .await
        .expect("loading the fixture");
    let mut times = Vec::with_capacity(n);
    for x in from..from + n as i64 {
        let req = RunRequest::new("cached_add")
            .input("x", x)
            .input("y", 1i64)
            .input("note", "");
        let started = Instant::now();
        let out = host.run(&env, req).await.expect("run");
        times.push(started.elapsed());
        assert!(out.outputs.is_ok(), "cached_add failed: {:?}", out.outputs);
    }
    median_of(times)
}

/// (miss, hit) medians on one host.
async fn misses_then_hits(host: &Host, n: usize) -> (Duration, Duration) {
    // Warm-up on keys the measured runs do not use.
    timed_runs(host, -(WARM_UP_RUNS as i64) * 2, WARM_UP_RUNS).await;
    timed_runs(host, -(WARM_UP_RUNS as i64) * 2, WARM_UP_RUNS).await;
    let miss = timed_runs(host, 0, n).await;
    let hit = timed_runs(host, 0, n).await;
    (miss, hit)
}

fn verdict(value: Duration, goal_us: f64) -> &'static str {
    if us(value) <= goal_us {
        "met"
    } else {
        "NOT met"
    }
}

pub async fn run(n: usize) {
    // `SLUICE_BENCH_ONLY=memory` or `=durable` runs that case alone (for profilers); any other
    // value runs both, as the chain does.
    let only = std::env::var("SLUICE_BENCH_ONLY").ok();
    if let Some(case @ ("memory" | "durable")) = only.as_deref() {
        let home = super::bench_home();
        let host = if case == "memory" {
            memory_host(home.path()).await
        } else {
            durable_host(home.path()).await
        };
        let (miss, hit) = misses_then_hits(&host, n).await;
        println!(
            "cached task, {case} alone: hit {:.1} µs, miss+write {:.1} µs",
            us(hit),
            us(miss)
        );
        return;
    }
    let home = super::bench_home();
    let durable = durable_host(home.path()).await;
    let (d_miss, d_hit) = misses_then_hits(&durable, n).await;
    let memory_home = super::bench_home();
    let memory = memory_host(memory_home.path()).await;
    let (m_miss, m_hit) = misses_then_hits(&memory, n).await;
    let flyte = peer::flyte_cache(100);

    println!("cached task, {n} distinct keys: first run = miss + write, second run = hit (release build)");
    let peer_ratio = |ours: Duration, theirs: Option<f64>| match theirs {
        Some(ms) => format!(
            "Flyte {ms:.3} ms: sluice {:.1}x faster",
            ms * 1e3 / us(ours)
        ),
        None => "Flyte not measured".to_string(),
    };
    for (label, miss, hit) in [
        ("durable (sqlite+file)", d_miss, d_hit),
        ("in memory", m_miss, m_hit),
    ] {
        println!(
            "  {label:<22} hit {:>6.1} µs (goal <= {HIT_GOAL_US:.0}: {}; {})   miss+write {:>6.1} µs (goal <= {MISS_GOAL_US:.0}: {}; {})",
            us(hit),
            verdict(hit, HIT_GOAL_US),
            peer_ratio(hit, flyte.hit_ms),
            us(miss),
            verdict(miss, MISS_GOAL_US),
            peer_ratio(miss, flyte.miss_ms),
        );
    }
    if let Some(note) = flyte.note {
        println!("  Flyte v2 local: {note}");
    }
}
