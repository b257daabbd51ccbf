//! `sluice-bench languages [N]`: the Rust task and its Python and JavaScript twins
//! (`add_one` of tests/fixtures/basic, py_basic.py, js_basic.js) through the same host:
//! component size, first load (compiling), a later load (mapping the precompiled code), the
//! per-attempt start-up (instantiating a fresh sandbox) and the call, and a chain of N tasks on
//! the embedded durable defaults and in memory, each beside the Rust figure and Flyte v2 local
//! (Python, in process, in memory) measured in the same run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::{chain_of, durable_host, memory_host, peer, us};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub async fn run(n: usize) {
    let guests: [(&str, PathBuf); 3] = [
        ("Rust", sluice_tests::fixture("basic")),
        ("Python", sluice_tests::guest("py_basic")),
        ("JavaScript", sluice_tests::guest("js_basic")),
    ];
    let flyte = peer::flyte_chain(100);
    println!(
        "add_one in three languages, chain of {n} runs each on the durable defaults (SQLite file + local store), fresh sandbox per attempt (release build)"
    );
    let mut rust_median_us = None;
    // Homes are removed only at the end: on this VM's ext4, creating files is slow for minutes
    // after many were deleted, which would penalise whichever language ran after a removal.
    let mut homes = Vec::new();
    for (language, component) in guests {
        let size = std::fs::metadata(&component)
            .map(|m| m.len())
            .unwrap_or_else(|e| {
                panic!("{}: {e} (run scripts/build-guests.sh)", component.display())
            });
        let home = super::bench_home();
        // First load on a new home: compiles and writes <home>/compiled.
        let host = durable_host(home.path()).await;
        let started = Instant::now();
        host.load_file(&component).await.expect("first load");
        let compile = started.elapsed();
        drop(host);
        // A new host on the same home maps the precompiled code.
        let host = durable_host(home.path()).await;
        let started = Instant::now();
        host.load_file(&component).await.expect("second load");
        let load = started.elapsed();
        let f = chain_of(&host, &component, n).await;
        drop(host);
        // The same chain with nothing persisted: what is left is the sandbox and the language.
        let memory = memory_host(home.path()).await;
        let in_memory = chain_of(&memory, &component, n).await;
        let vs_rust = match rust_median_us {
            None => {
                rust_median_us = Some(us(f.median));
                "baseline".to_string()
            }
            Some(rust) => format!("{:.1}x Rust's time", us(f.median) / rust),
        };
        let vs_flyte = match flyte.in_memory_ms {
            Some(flyte_ms) => format!("{:.2}x Flyte's time", us(f.median) / (flyte_ms * 1e3)),
            None => "Flyte not measured".to_string(),
        };
        println!(
            "{language:<10} {:>6.1} MiB | first load (compile) {:>6.0} ms, later load {:>5.1} ms | per attempt: instantiate {:>6.1} µs, call {:>6.1} µs, teardown {:>5.1} µs | chain median {:>6.1} µs  p99 {:>6.1} µs ({vs_rust}; {vs_flyte}) | in memory median {:>6.1} µs",
            size as f64 / (1 << 20) as f64,
            ms(compile),
            ms(load),
            us(f.instantiate),
            us(f.call),
            us(f.teardown),
            us(f.median),
            us(f.p99),
            us(in_memory.median),
        );
        homes.push(home);
    }
    match (flyte.in_memory_ms, flyte.note) {
        (Some(ms), _) => println!(
            "Flyte v2 local, same run: {ms:.3} ms per task (chain of 100, in process, in memory)"
        ),
        (None, Some(note)) => println!("Flyte v2 local: {note}"),
        (None, None) => {}
    }
}
