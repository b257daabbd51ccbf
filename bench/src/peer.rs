//! The Flyte v2 peer, measured in the same run through the scripts in ../shared/peers/flyte.

use std::path::PathBuf;
use std::process::Command;

pub struct PeerChain {
    /// Per task, in memory (Flyte local mode keeps values in memory).
    pub in_memory_ms: Option<f64>,
    pub note: Option<String>,
}

fn peer_dir() -> PathBuf {
    std::env::var_os("SLUICE_FLYTE_PEER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers/flyte")
        })
}

/// The peer's Python: `SLUICE_FLYTE_PYTHON`, else the venv `scripts/bench.sh` makes in
/// `target/tools/flyte-venv` (the peer's own directory may be read-only), else the peer's `.venv`.
fn peer_python() -> PathBuf {
    if let Some(python) = std::env::var_os("SLUICE_FLYTE_PYTHON") {
        return PathBuf::from(python);
    }
    let ours =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/flyte-venv/bin/python");
    if ours.exists() {
        return ours;
    }
    peer_dir().join(".venv/bin/python")
}

/// Runs one of the peer's scripts with `args` and returns the JSON it prints, or why not.
fn run_peer_script(args: &[&str]) -> Result<serde_json::Value, String> {
    let dir = peer_dir();
    let python = peer_python();
    if !python.exists() {
        return Err(format!(
            "no Python at {} (scripts/bench.sh installs the peer)",
            python.display()
        ));
    }
    let out_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let home = out_dir.path().join("home");
    let tmp = out_dir.path().join("tmp");
    let _ = std::fs::create_dir_all(&home);
    let _ = std::fs::create_dir_all(&tmp);
    let output = Command::new(&python)
        .current_dir(&dir)
        .env("PEER_OUT", out_dir.path())
        // Our own peer scripts (bench/peer) import the peer's helpers from its directory.
        .env("PYTHONPATH", &dir)
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("peer output is not JSON: {e}"))
}

/// Runs the peer's chain of `n` tasks (plain mode) and reads its per-task median.
pub fn flyte_chain(n: usize) -> PeerChain {
    match run_peer_script(&["chain.py", "plain", &n.to_string(), "5"]) {
        Ok(json) => PeerChain {
            in_memory_ms: json["per_task_ms_median"].as_f64(),
            note: None,
        },
        Err(why) => PeerChain {
            in_memory_ms: None,
            note: Some(format!("not measured: {why}")),
        },
    }
}

pub struct PeerCache {
    pub hit_ms: Option<f64>,
    pub miss_ms: Option<f64>,
    pub note: Option<String>,
}

/// Runs the peer's cached chain of `n` tasks: cold (miss + write) then warm (hits), per task.
pub fn flyte_cache(n: usize) -> PeerCache {
    match run_peer_script(&["chain.py", "cache-cold", &n.to_string(), "5"]) {
        Ok(json) => PeerCache {
            hit_ms: json["warm_per_task_ms_median"].as_f64(),
            miss_ms: json["cold_per_task_ms"].as_f64(),
            note: None,
        },
        Err(why) => PeerCache {
            hit_ms: None,
            miss_ms: None,
            note: Some(format!("not measured: {why}")),
        },
    }
}

/// The peer's DataFrame hand-off (`rows` x 4 float64, producer -> column-sum consumer):
/// framework overhead in ms/MB with `flyte.io.DataFrame` and with `pd.DataFrame`.
pub fn flyte_dataframe(rows: usize) -> Result<(f64, f64), String> {
    let json = run_peer_script(&["dataframe.py", &rows.to_string(), "5"])?;
    let fdf = json["fdf"]["framework_overhead_ms_per_MB"].as_f64();
    let pd = json["pd"]["framework_overhead_ms_per_MB"].as_f64();
    match (fdf, pd) {
        (Some(fdf), Some(pd)) => Ok((fdf, pd)),
        _ => Err(format!("unexpected peer output: {json}")),
    }
}

/// Flyte v2 local gathering `n` trivial tasks in one parent (`bench/peer/fanout.py`, a script
/// of ours beside the peer's own): tasks per second, median of 3 runs.
pub fn flyte_fanout(n: usize) -> Result<f64, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peer/fanout.py");
    let script = script.display().to_string();
    let json = run_peer_script(&[&script, &n.to_string(), "3"])?;
    json["tasks_per_s_median"]
        .as_f64()
        .ok_or_else(|| format!("unexpected peer output: {json}"))
}
