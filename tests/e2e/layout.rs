//! The run layout in a local store, with the directories and files a host makes ahead.

use std::path::{Path, PathBuf};

use sluice_host::{RunRequest, Value};
use sluice_tests::{fixture, test_host};

/// Every path under `dir`, depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

#[tokio::test]
async fn runs_take_directories_made_ahead_and_the_host_leaves_none_behind() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("chain")).await.unwrap();
    let mut run_ids = Vec::new();
    for x in 0..24i64 {
        let out = t
            .host
            .run(&env, RunRequest::new("add_one").input("x", x))
            .await
            .unwrap();
        assert_eq!(out.outputs.unwrap()["o0"], Value::Int(x + 1));
        run_ids.push(out.run_id);
    }
    // Each run's documents are whole, at <project>/<domain>/<run>/a0/1/.
    for (x, run_id) in run_ids.iter().enumerate() {
        let d = t.host.run_details(run_id).await.unwrap().unwrap();
        let inputs_uri = d.attempts[0].inputs_uri.clone().unwrap();
        assert!(
            inputs_uri.ends_with(&format!("/{run_id}/a0/1/inputs.msgpack")),
            "{inputs_uri}"
        );
        assert_eq!(d.inputs.unwrap()["x"], Value::Int(x as i64));
        assert_eq!(d.outputs.unwrap()["o0"], Value::Int(x as i64 + 1));
    }
    // While the host lives, its staging directory holds spare trees and nothing else: no
    // file is ever visible there (spare files have no name until they become a document).
    let spare = t.home.path().join("store/.sluice-spare");
    let staging: Vec<PathBuf> = std::fs::read_dir(&spare)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        staging.len(),
        1,
        "one staging directory per host: {staging:?}"
    );
    let inside = walk(&staging[0]);
    assert!(inside.iter().all(|p| p.is_dir()), "{inside:?}");
    let mut trees: Vec<String> = std::fs::read_dir(&staging[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    trees.sort();
    let first_made: Vec<String> = (0..trees.len()).map(|n| format!("t{n}")).collect();
    assert_ne!(trees, first_made, "no run took a spare tree");

    // A stopped host removes its staging directory.
    drop(t.host);
    let left: Vec<PathBuf> = std::fs::read_dir(&spare)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
