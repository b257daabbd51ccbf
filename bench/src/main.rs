//! `sluice-bench chain [N]`: a chain of N trivial tasks (`x -> x + 1`), each a separate run in a
//! fresh sandbox, recorded durably (SQLite file + local directory) and with nothing persisted
//! (in-memory SQLite + `memory://`). Prints median and p99 per task with the breakdown, and beside
//! them Flyte v2 local measured in the same run when its venv is present.
//!
//! `sluice-bench records [N]`: the records layer alone, on each backend (see records.rs).
//!
//! `sluice-bench cache [N]`: cache hits and misses (see cache.rs).
//!
//! The chain also runs on PostgreSQL when `SLUICE_BENCH_POSTGRES` holds a server URL
//! (`scripts/bench.sh` starts one).
//!
//! `sluice-bench fanout [N]`: one run mapping a trivial task over N children (see fanout.rs).
//!
//! `sluice-bench languages [N]`: the same chain on the Rust, Python and JavaScript twins, with
//! their sizes, compile and load times and per-attempt start-up (see languages.rs).
//!
//! `sluice-bench files [MiB]` and `sluice-bench frames [rows]`: the data plane (see data.rs).
//!
//! Run with `scripts/bench.sh` (release build; debug figures mislead).

/// The allocator of the `sluice` command, so the figures are the command's (see
/// `sluice_host::process`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cache;
mod data;
mod fanout;
mod languages;
mod peer;
mod records;

use std::time::{Duration, Instant};

use sluice_host::{Host, RunRequest, RunTimings, Value};

/// Runs before measuring, so the first-use costs (page faults of the pool, SQLite cache) are
/// not counted.
const WARM_UP_RUNS: usize = 50;

struct Figures {
    median: Duration,
    p99: Duration,
    instantiate: Duration,
    call: Duration,
    teardown: Duration,
    record: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median_of(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    percentile(&xs, 0.5)
}

async fn chain(host: &Host, n: usize) -> Figures {
    chain_of(host, &sluice_tests::fixture("chain"), n).await
}

/// The chain on `component`'s `add_one` (the Rust `chain` fixture, or the Python or JS twin).
async fn chain_of(host: &Host, component: &std::path::Path, n: usize) -> Figures {
    let env = host
        .load_file(component)
        .await
        .expect("loading the fixture");
    let mut x = 0i64;
    let step = |x: i64| {
        let host = &host;
        let env = env.clone();
        async move {
            let started = Instant::now();
            let out = host
                .run(&env, RunRequest::new("add_one").input("x", x))
                .await
                .expect("run");
            let elapsed = started.elapsed();
            let outputs = out.outputs.expect("add_one succeeds");
            let Some(Value::Int(next)) = outputs.get("o0") else {
                panic!("add_one returned {outputs:?}")
            };
            (*next, elapsed, out.timings)
        }
    };
    for _ in 0..WARM_UP_RUNS {
        x = step(x).await.0;
    }
    let mut totals = Vec::with_capacity(n);
    let mut parts: Vec<RunTimings> = Vec::with_capacity(n);
    let start_x = x;
    for _ in 0..n {
        let (next, elapsed, timings) = step(x).await;
        x = next;
        totals.push(elapsed);
        parts.push(timings);
    }
    assert_eq!(x, start_x + n as i64, "the chain computed the wrong value");
    totals.sort();
    Figures {
        median: percentile(&totals, 0.5),
        p99: percentile(&totals, 0.99),
        instantiate: median_of(parts.iter().map(|t| t.instantiate).collect()),
        call: median_of(parts.iter().map(|t| t.call).collect()),
        teardown: median_of(parts.iter().map(|t| t.teardown).collect()),
        record: median_of(parts.iter().map(|t| t.record).collect()),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Flyte v2 local with local persistence, per task, as the peer's README quotes it (its scripts
/// do not run that mode, so it cannot be measured in the same run).
const FLYTE_PERSISTED_QUOTED_MS: f64 = 5.9;

fn print_row(label: &str, f: &Figures, goal_us: f64, peer_ms: Option<f64>) {
    let vs_peer = match peer_ms {
        Some(ms) => format!(
            "{:.1}x faster than Flyte in memory (measured now)",
            ms * 1e3 / us(f.median)
        ),
        None => "Flyte not measured".to_string(),
    };
    println!(
        "{label:<30} median {:>7.1} µs  p99 {:>7.1} µs | instantiate {:>5.1}  call {:>5.1}  teardown {:>5.1}  record {:>6.1} µs | goal <= {goal_us:.0} µs: {} | {vs_peer}",
        us(f.median),
        us(f.p99),
        us(f.instantiate),
        us(f.call),
        us(f.teardown),
        us(f.record),
        if us(f.median) <= goal_us { "met" } else { "NOT met" },
    );
}

/// Where `SLUICE_BENCH_HOMES` points, the benchmark cases keep their homes instead of deleting
/// them when they end; `scripts/bench.sh` sets it and removes the directory after the last case.
/// On this VM's ext4 (mounted without a journal) every new inode costs a scan of the free inodes
/// deleted in the last 5 minutes, so a case that removed thousands of files slowed every durable
/// case after it 2 - 20x (BENCHMARKS.md): the figures would measure the benchmark's own cleanup.
const KEEP_HOMES_ENV: &str = "SLUICE_BENCH_HOMES";

/// A fresh temporary home for one case (kept under [`KEEP_HOMES_ENV`] when that is set).
fn bench_home() -> tempfile::TempDir {
    let Some(keep_in) = std::env::var_os(KEEP_HOMES_ENV) else {
        return tempfile::tempdir().expect("temporary home");
    };
    std::fs::create_dir_all(&keep_in).expect("the directory of kept benchmark homes");
    let mut home = tempfile::tempdir_in(&keep_in).expect("temporary home");
    home.disable_cleanup(true);
    home
}

/// New inodes timed on this disk: directories and files made by a plain `std::fs` loop.
const DISK_PROBE_INODES: usize = 200;

/// Microseconds per new directory and per new (4-byte) file under `dir`, by a plain loop: the
/// floor under what a durable run pays for its layout (`<run>/<action>/<attempt>/` and its
/// documents), printed beside the durable figures so they can be read on any disk.
fn disk_inode_us(dir: &std::path::Path) -> (f64, f64) {
    let probe = dir.join("disk-probe");
    std::fs::create_dir_all(&probe).expect("the disk probe's directory");
    let started = Instant::now();
    for i in 0..DISK_PROBE_INODES {
        std::fs::create_dir(probe.join(format!("d{i}"))).expect("a probe directory");
    }
    let dirs = started.elapsed();
    let started = Instant::now();
    for i in 0..DISK_PROBE_INODES {
        std::fs::write(probe.join(format!("d{i}/f")), b"\x81\xa1x\x01").expect("a probe file");
    }
    let files = started.elapsed();
    let per = |d: Duration| us(d) / DISK_PROBE_INODES as f64;
    (per(dirs), per(files))
}

/// A host builder for `home` with the pool sized by `SLUICE_BENCH_MAX_INSTANCES` when set: the
/// default pool reserves more address space than valgrind can map, so an instruction-count
/// profile (`valgrind --tool=callgrind`, repeatable on a noisy machine) needs a small one.
fn builder(home: &std::path::Path) -> sluice_host::HostBuilder {
    let builder = Host::builder().home(home);
    match std::env::var("SLUICE_BENCH_MAX_INSTANCES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(n) => builder.max_instances(n),
        None => builder,
    }
}

/// A host on the embedded defaults: SQLite file and local directory store under `home`.
async fn durable_host(home: &std::path::Path) -> Host {
    builder(home).build().await.expect("durable host")
}

/// A host recording in a new database on the PostgreSQL server at `server`, its store in `home`.
async fn postgres_host(home: &std::path::Path, server: &str) -> Host {
    builder(home)
        .database_url(sluice_tests::fresh_postgres_database(server).await)
        .build()
        .await
        .expect("PostgreSQL host (set SLUICE_BENCH_POSTGRES to a server URL)")
}

/// A host that persists nothing: in-memory SQLite and `memory://`.
async fn memory_host(home: &std::path::Path) -> Host {
    builder(home)
        .database_url("sqlite::memory:")
        .store_url("memory://")
        .build()
        .await
        .expect("in-memory host")
}

fn main() {
    // As the `sluice` command does, before any thread starts.
    sluice_host::process::keep_freed_buffers();
    sluice_host::process::sqlite_without_memory_statistics();
    sluice_host::process::sqlite_on_mimalloc();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the runtime")
        .block_on(run_case());
}

async fn run_case() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "chain".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    match case.as_str() {
        "chain" => {}
        "records" => return records::run(n).await,
        "cache" => return cache::run(n).await,
        "files" => return data::files(n as u64).await,
        "frames" => return data::frames(n).await,
        "fanout" => return fanout::run(n).await,
        "languages" => return languages::run(n).await,
        _ => {
            eprintln!(
                "usage: sluice-bench chain|records|cache|fanout|languages [N] | files [MiB] | frames [rows]"
            );
            std::process::exit(2);
        }
    }
    // `SLUICE_BENCH_ONLY=memory`, `=durable` or `=postgres` runs only that case (for profiling).
    match std::env::var("SLUICE_BENCH_ONLY").as_deref() {
        Ok("memory") => {
            let home = bench_home();
            let memory = memory_host(home.path()).await;
            print_row("sluice in memory", &chain(&memory, n).await, 30.0, None);
            return;
        }
        Ok("postgres") => {
            let server = std::env::var("SLUICE_BENCH_POSTGRES").unwrap_or_default();
            let home = bench_home();
            let pg = postgres_host(home.path(), &server).await;
            let figures = chain(&pg, n).await;
            print_row("sluice durable (postgres+file)", &figures, 150.0, None);
            return;
        }
        Ok("durable") => {
            let home = bench_home();
            let durable = durable_host(home.path()).await;
            let figures = chain(&durable, n).await;
            print_row("sluice durable (sqlite+file)", &figures, 150.0, None);
            return;
        }
        _ => {}
    }

    // The baseline first: the same durable host, each inode made when its document is written.
    let on_demand_home = bench_home();
    let on_demand = builder(on_demand_home.path())
        .on_demand_inodes()
        .build()
        .await
        .expect("durable host, inodes on demand");
    let on_demand_figures = chain(&on_demand, n).await;
    drop(on_demand);

    let home = bench_home();
    let durable = durable_host(home.path()).await;
    let durable_figures = chain(&durable, n).await;
    drop(durable);
    let (dir_us, file_us) = disk_inode_us(home.path());

    let memory_home = bench_home();
    let memory = memory_host(memory_home.path()).await;
    let memory_figures = chain(&memory, n).await;

    let postgres_figures = match std::env::var("SLUICE_BENCH_POSTGRES") {
        Ok(server) if !server.is_empty() => {
            let pg_home = bench_home();
            let pg = postgres_host(pg_home.path(), &server).await;
            Some(chain(&pg, n).await)
        }
        _ => None,
    };

    let flyte = peer::flyte_chain(100);
    println!("chain of {n} tasks x -> x + 1, one run each, fresh sandbox per task (release build)");
    print_row(
        "sluice durable (sqlite+file)",
        &durable_figures,
        150.0,
        flyte.in_memory_ms,
    );
    print_row(
        "  baseline: inodes on demand",
        &on_demand_figures,
        150.0,
        flyte.in_memory_ms,
    );
    println!(
        "  inodes made ahead (default) vs on demand, same run: {:.2}x the baseline's median",
        us(durable_figures.median) / us(on_demand_figures.median)
    );
    print_row(
        "sluice in memory",
        &memory_figures,
        30.0,
        flyte.in_memory_ms,
    );
    match &postgres_figures {
        Some(f) => print_row(
            "sluice durable (postgres+file)",
            f,
            150.0,
            flyte.in_memory_ms,
        ),
        None => println!("PostgreSQL: not measured (set SLUICE_BENCH_POSTGRES)"),
    }
    println!(
        "this disk, same run: a new directory {dir_us:.1} µs, a new file {file_us:.1} µs (plain std::fs loop); a durable run makes 3 + 2 of them: {:.1} µs, {:.0}% of its median",
        3.0 * dir_us + 2.0 * file_us,
        (3.0 * dir_us + 2.0 * file_us) * 100.0 / us(durable_figures.median)
    );
    println!(
        "durable vs Flyte persisted ({FLYTE_PERSISTED_QUOTED_MS} ms per task, quoted by the peer's README, not measured here): {:.1}x faster",
        FLYTE_PERSISTED_QUOTED_MS * 1e3 / us(durable_figures.median)
    );
    match (flyte.in_memory_ms, flyte.note) {
        (Some(ms), note) => println!(
            "Flyte v2 local, same run: {ms:.3} ms per task in memory (chain of 100){}",
            note.map(|n| format!("; {n}")).unwrap_or_default()
        ),
        (None, Some(note)) => println!("Flyte v2 local: {note}"),
        (None, None) => {}
    }
}
