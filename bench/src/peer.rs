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

/// Runs the peer's chain of `n` tasks (plain mode) and reads its per-task median.
pub fn flyte_chain(n: usize) -> PeerChain {
    let dir = peer_dir();
    let python = dir.join(".venv/bin/python");
    if !python.exists() {
        return PeerChain {
            in_memory_ms: None,
            note: Some(format!(
                "not measured: no venv at {} (run its setup.sh)",
                python.display()
            )),
        };
    }
    let out_dir = tempfile::tempdir().expect("peer output directory");
    let home = out_dir.path().join("home");
    let tmp = out_dir.path().join("tmp");
    let _ = std::fs::create_dir_all(&home);
    let _ = std::fs::create_dir_all(&tmp);
    let output = Command::new(&python)
        .current_dir(&dir)
        .env("PEER_OUT", out_dir.path())
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .args(["chain.py", "plain", &n.to_string(), "5"])
        .output();
    let failed = |why: String| PeerChain {
        in_memory_ms: None,
        note: Some(format!("not measured: {why}")),
    };
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return failed(
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_string(),
            )
        }
        Err(e) => return failed(e.to_string()),
    };
    let json: serde_json::Value = match serde_json::from_slice(&output.stdout) {
        Ok(j) => j,
        Err(e) => return failed(format!("peer output is not JSON: {e}")),
    };
    PeerChain {
        in_memory_ms: json["per_task_ms_median"].as_f64(),
        note: None,
    }
}
