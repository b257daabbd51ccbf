//! Data-plane benchmarks (issue 3), each beside its baseline measured in the same run:
//!
//! - `sluice-bench files [MiB]`: a file streamed through a guest (read only, and read + write
//!   into a new file that the host hashes), against the host reading / copying the same object
//!   natively; then the peak memory above idle while a guest reads a 4 GiB (sparse) file.
//! - `sluice-bench frames [rows]`: the DataFrame hand-off of the Flyte peer (rows x 4 float64,
//!   producer task -> consumer task summing one column) for Parquet and Arrow IPC: overhead
//!   beyond both task bodies in ms/MB, beside Flyte v2 local. On the peer's data (uniform
//!   floats, which the goals are set on) and on sequences that compress well, for comparison.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_host::values::reference::RefMeta;
use sluice_host::values::{RefKind, Value};
use sluice_host::{Host, RunRequest};

use crate::peer;

/// Guest and host move files in chunks of this size.
const CHUNK_KIB: i64 = 1024;
/// Size of the sparse file read for the peak-memory figure.
const PEAK_FILE_BYTES: u64 = 4 << 30;
/// Repetitions of each DataFrame case (the median is reported).
const FRAME_REPS: usize = 5;
/// Overrides [`FRAME_REPS`] (more repetitions for a profiler to see the steady state).
const FRAME_REPS_ENV: &str = "SLUICE_BENCH_FRAME_REPS";

fn frame_reps() -> usize {
    std::env::var(FRAME_REPS_ENV)
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(FRAME_REPS)
}

async fn durable_host(home: &Path) -> Host {
    Host::builder()
        .home(home)
        .build()
        .await
        .expect("durable host")
}

/// Writes `bytes` of pseudo-random data (incompressible, unlike zeros).
fn write_random_file(path: &Path, bytes: u64) {
    let mut file = std::fs::File::create(path).expect("creating the input file");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).expect("writing the input file");
        left -= n as u64;
    }
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Native baselines: read the object in chunks, and copy it to a new file.
fn native_read(path: &Path) -> Duration {
    let started = Instant::now();
    let mut file = std::fs::File::open(path).expect("opening the object");
    let mut buf = vec![0u8; CHUNK_KIB as usize * 1024];
    while file.read(&mut buf).expect("reading") > 0 {}
    started.elapsed()
}

fn native_copy(path: &Path, dest: &Path) -> Duration {
    let started = Instant::now();
    let mut file = std::fs::File::open(path).expect("opening the object");
    let mut out = std::fs::File::create(dest).expect("creating the copy");
    let mut buf = vec![0u8; CHUNK_KIB as usize * 1024];
    loop {
        let n = file.read(&mut buf).expect("reading");
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).expect("writing");
    }
    started.elapsed()
}

fn local_path(uri: &str) -> PathBuf {
    PathBuf::from(uri.strip_prefix("file://").expect("a local object"))
}

async fn timed_run(
    host: &Host,
    env: &std::sync::Arc<sluice_host::engine::LoadedComponent>,
    req: RunRequest,
) -> (Duration, Value) {
    let started = Instant::now();
    let out = host.run(env, req).await.expect("run");
    let elapsed = started.elapsed();
    let outputs = out.outputs.unwrap_or_else(|f| panic!("run failed: {f:?}"));
    (elapsed, outputs["o0"].clone())
}

/// This process's resident set and its peak, in bytes (Linux /proc).
fn rss_and_peak() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub async fn files(mib: u64) {
    let home = super::bench_home();
    let host = durable_host(home.path()).await;
    let env = host
        .load_file(sluice_tests::fixture("files"))
        .await
        .expect("loading the files fixture");
    let bytes = mib << 20;
    let local = home.path().join("input.bin");
    write_random_file(&local, bytes);
    let input = host
        .upload(&local, RefKind::File, "default", "development")
        .await
        .expect("upload");
    let object = local_path(&input.uri);
    native_read(&object); // warm the page cache for every reader alike

    let native_read_time = native_read(&object);
    let (guest_read_time, counted) = timed_run(
        &host,
        &env,
        RunRequest::new("count_bytes")
            .input("data", input.to_value())
            .input("chunk_kib", CHUNK_KIB),
    )
    .await;
    assert_eq!(counted, Value::Int(bytes as i64));

    let native_copy_time = native_copy(&object, &home.path().join("native-copy.bin"));
    let (guest_copy_time, copied) = timed_run(
        &host,
        &env,
        RunRequest::new("copy_file")
            .input("data", input.to_value())
            .input("chunk_kib", CHUNK_KIB),
    )
    .await;
    if let Value::Ref(r) = &copied {
        let meta = RefMeta::from_reference(r, &sluice_host::values::ValuePath::root("o0"))
            .expect("a file reference");
        assert_eq!(meta.sha256, input.sha256, "the copy hashes like the input");
    }

    println!("file of {mib} MiB streamed through a guest in {CHUNK_KIB} KiB chunks (release build, warm page cache)");
    let read = mb_per_s(bytes, guest_read_time);
    let native = mb_per_s(bytes, native_read_time);
    println!(
        "  guest read          {read:>7.0} MB/s | host reading natively {native:>7.0} MB/s | {:.0} % of native | goal >= 2000 MB/s and >= 70 %: {}",
        100.0 * read / native,
        if read >= 2000.0 && read >= 0.7 * native { "met" } else { "NOT met" }
    );
    let copy = mb_per_s(bytes, guest_copy_time);
    let native = mb_per_s(bytes, native_copy_time);
    println!(
        "  guest read + write  {copy:>7.0} MB/s | host copying natively {native:>7.0} MB/s | {:.0} % of native (the host also SHA-256es what is written)",
        100.0 * copy / native,
    );

    // Peak memory: a guest reads a 4 GiB file (sparse, so the disk is not the limit).
    let sparse_rel = "default/development/bench/sparse-4g.bin";
    let sparse = home.path().join("store").join(sparse_rel);
    std::fs::create_dir_all(sparse.parent().expect("a parent")).expect("bench dir");
    std::fs::File::create(&sparse)
        .and_then(|f| f.set_len(PEAK_FILE_BYTES))
        .expect("sparse file");
    let mut meta = RefMeta::new(RefKind::File, host.store().uri_of(sparse_rel));
    meta.size = Some(PEAK_FILE_BYTES);
    let (idle, _) = rss_and_peak();
    // Reset the peak (VmHWM) to the current resident set.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (elapsed, counted) = timed_run(
        &host,
        &env,
        RunRequest::new("count_bytes")
            .input("data", meta.to_value())
            .input("chunk_kib", CHUNK_KIB),
    )
    .await;
    assert_eq!(counted, Value::Int(PEAK_FILE_BYTES as i64));
    let (_, peak) = rss_and_peak();
    let above = peak.saturating_sub(idle) as f64 / (1u64 << 20) as f64;
    println!(
        "  peak memory while a guest reads a 4 GiB file: {above:.1} MiB above idle ({:.0} MB/s) | goal <= 64 MiB: {}",
        mb_per_s(PEAK_FILE_BYTES, elapsed),
        if above <= 64.0 { "met" } else { "NOT met" }
    );
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// One data set of the hand-off: the fixture's tasks that build it and the goals it is held to.
struct FrameData {
    /// Its name for `SLUICE_BENCH_ONLY`.
    name: &'static str,
    what: &'static str,
    /// Builds the batches and sums column a, writing nothing (both task bodies).
    bodies: &'static str,
    parquet: &'static str,
    ipc: &'static str,
    /// Whether the goals apply (they are set on the peer's data).
    goals: bool,
}

const FRAME_DATA: [FrameData; 2] = [
    FrameData {
        name: "uniform",
        what: "uniform values in [0, 1), as the Flyte peer's rng.random (goals apply)",
        bodies: "build_uniform",
        parquet: "uniform_parquet",
        ipc: "uniform_ipc",
        goals: true,
    },
    FrameData {
        name: "sequences",
        what: "sequences a = i, b = 2i, c = i/2, d = 1 (compress well; for comparison)",
        bodies: "build_only",
        parquet: "produce_parquet",
        ipc: "produce_ipc",
        goals: false,
    },
];

pub async fn frames(rows: usize) {
    let home = super::bench_home();
    let host = durable_host(home.path()).await;
    let env = host
        .load_file(sluice_tests::fixture("frames"))
        .await
        .expect("loading the frames fixture");
    // Column data as Flyte's peer counts it (4 float64 columns; pandas adds a 128-byte index).
    let mb = (rows * 4 * 8) as f64 / 1e6;
    let rows_value = rows as i64;
    let reps = frame_reps();
    let (hash_ms, write_ms) = native_store_ms(home.path(), rows * 4 * 8);
    let peer = peer::flyte_dataframe(rows);
    println!("DataFrame hand-off, {rows} rows x 4 float64 ({mb:.1} MB): producer task -> consumer summing one column; overhead = producer + consumer - both task bodies, as the peer counts it (release build, durable host, median of {reps})");
    println!(
        "  the host storing {mb:.1} MB natively (this disk, this run): SHA-256 {hash_ms:.1} ms = {:.2} ms/MB, writing a new file {write_ms:.1} ms = {:.2} ms/MB",
        hash_ms / mb,
        write_ms / mb
    );
    // `SLUICE_BENCH_ONLY=parquet` or `=arrow-ipc` runs that format alone, and `=uniform` or
    // `=sequences` one data set (for profilers).
    let only = std::env::var("SLUICE_BENCH_ONLY").ok();
    let only_format = only
        .as_deref()
        .filter(|o| ["parquet", "arrow-ipc"].contains(o));
    let only_data = only
        .as_deref()
        .filter(|o| FRAME_DATA.iter().any(|d| d.name == *o));
    for data in &FRAME_DATA {
        if only_data.is_some_and(|o| o != data.name) {
            continue;
        }
        let mut body = Vec::new();
        let mut expected = 0.0;
        for _ in 0..reps {
            let req = RunRequest::new(data.bodies).input("rows", rows_value);
            let (t, sum) = timed_run(&host, &env, req).await;
            body.push(t);
            // What the consumer must find in the frame: the same column summed in the same
            // batches before any frame was written.
            expected = match sum {
                Value::Float(sum) => sum,
                other => panic!(
                    "{}: expected the sum of column a, got {other:?}",
                    data.bodies
                ),
            };
        }
        let body = median(body);
        println!(
            "  {}: both bodies alone ({}: the same batches built, column a summed, nothing written) {:.1} ms",
            data.what,
            data.bodies,
            body.as_secs_f64() * 1e3
        );
        for (producer, format, goal) in
            [(data.parquet, "parquet", 1.5), (data.ipc, "arrow-ipc", 0.3)]
        {
            if only_format.is_some_and(|o| o != format) {
                continue;
            }
            let mut produce = Vec::new();
            let mut consume = Vec::new();
            for _ in 0..reps {
                let req = RunRequest::new(producer).input("rows", rows_value);
                let (t, df) = timed_run(&host, &env, req).await;
                produce.push(t);
                let req = RunRequest::new("sum_column")
                    .input("df", df)
                    .input("column", "a")
                    .input("batch_rows", 65_536i64);
                let (t, sum) = timed_run(&host, &env, req).await;
                consume.push(t);
                let got = sluice_host::values::json::to_json(&sum)["sum"].as_f64();
                let close = got.is_some_and(|g| (g - expected).abs() <= expected.abs() * 1e-9);
                assert!(close, "the consumer's sum: {got:?}, expected {expected}");
            }
            let (produce, consume) = (median(produce), median(consume));
            let overhead = (produce + consume).saturating_sub(body);
            let per_mb = overhead.as_secs_f64() * 1e3 / mb;
            let verdict = if !data.goals {
                "no goal on this data".to_string()
            } else {
                let met = if per_mb <= goal { "met" } else { "NOT met" };
                let versus = match &peer {
                    Ok((fdf, pd)) => format!(
                        "Flyte v2 local (same run): {fdf:.2} ms/MB flyte.io.DataFrame, {pd:.2} ms/MB pd.DataFrame: sluice {:.1}x less",
                        fdf / per_mb
                    ),
                    Err(why) => format!("Flyte not measured: {why}"),
                };
                format!("goal <= {goal} ms/MB: {met} | {versus}")
            };
            println!(
                "    {format:<9} producer {:>6.1} ms  consumer {:>6.1} ms | overhead {:>6.1} ms = {per_mb:.2} ms/MB | {verdict}",
                produce.as_secs_f64() * 1e3,
                consume.as_secs_f64() * 1e3,
                overhead.as_secs_f64() * 1e3,
            );
        }
    }
}

/// What every stored frame of `bytes` costs at least, measured natively in this run (medians of
/// [`FRAME_REPS`]): SHA-256 of the bytes (every object the host writes is content-hashed) and
/// writing them into a new file under `dir` (the page cache copy; this VM's disk moves it by
/// several times from one minute to the next), in ms.
fn native_store_ms(dir: &Path, bytes: usize) -> (f64, f64) {
    use sha2::{Digest, Sha256};
    let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let path = dir.join("native-store-probe");
    let mut hashes = Vec::new();
    let mut writes = Vec::new();
    for _ in 0..FRAME_REPS {
        let started = Instant::now();
        std::hint::black_box(Sha256::digest(&data));
        hashes.push(started.elapsed());
        let started = Instant::now();
        let mut file = std::fs::File::create(&path).expect("the native store probe");
        file.write_all(&data)
            .expect("writing the native store probe");
        drop(file);
        writes.push(started.elapsed());
        std::fs::remove_file(&path).expect("removing the native store probe");
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(median(hashes)), ms(median(writes)))
}
