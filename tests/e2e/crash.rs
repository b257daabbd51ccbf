//! Crash safety: a real `sluice` process is killed (SIGKILL) at varying points of a run of
//! traced steps; the database must pass its integrity check, no attempt may be recorded as
//! succeeded without its outputs, gc must leave the unfinished run alone, and
//! `sluice run --resume` must finish the run without re-running a step that was recorded.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_tests::{fixture, sluice, sluice_bin};

const STEPS: i64 = 10;
const STEP_MS: i64 = 60;

fn query_strings(db: &rusqlite::Connection, sql: &str, run: &str) -> Vec<String> {
    let mut stmt = db.prepare(sql).unwrap();
    let rows = stmt.query_map([run], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn a_killed_run_resumes_without_rerunning_recorded_steps() {
    let home = tempfile::tempdir().unwrap();
    let component = fixture("durable");
    let component = component.to_str().unwrap();
    // Compile once into the home's cache so every kill lands inside the run itself.
    assert!(sluice(home.path(), &["describe", component])
        .status
        .success());

    // Kill points spread over the run (about STEPS * STEP_MS ms), shifted by a seed printed
    // so a failure can be reproduced.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis() as u64;
    eprintln!("crash test seed {seed}");
    let run_ms = (STEPS * STEP_MS) as u64;
    let mut resumed = 0;
    for i in 0..5u64 {
        let kill_after = (seed * 7 + i * run_ms / 4) % (run_ms + 100) + 20;
        let mut child = Command::new(sluice_bin())
            .arg("--home")
            .arg(home.path())
            .args(["run", component, "steps"])
            .args([
                "--in",
                &format!("n={STEPS}"),
                "--in",
                &format!("ms={STEP_MS}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(kill_after));
        child.kill().unwrap();
        child.wait().unwrap();

        let db_path = home.path().join("sluice.db");
        let db = rusqlite::Connection::open(&db_path).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "kill after {kill_after} ms");
        // Every attempt recorded as succeeded has its outputs document (unless gc removed it).
        let mut stmt = db
            .prepare(
                "SELECT a.outputs_uri FROM attempts a JOIN runs r ON r.id = a.run_id \
                 WHERE a.phase = 'succeeded' AND r.purged_at IS NULL",
            )
            .unwrap();
        let uris: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for uri in uris {
            assert!(
                Path::new(uri.strip_prefix("file://").unwrap()).exists(),
                "{uri}"
            );
        }
        let running: Vec<String> = {
            let mut stmt = db
                .prepare("SELECT id FROM runs WHERE phase = 'running'")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert!(running.len() <= 1);
        let Some(run) = running.first() else {
            continue; // killed before the run was recorded, or after it ended
        };
        let recorded_before =
            query_strings(&db, "SELECT args_hash FROM traces WHERE run_id = ?1", run).len();
        let inputs = query_strings(&db, "SELECT inputs_uri FROM actions WHERE run_id = ?1", run);

        // gc never touches a run that has not ended.
        let gc = sluice(home.path(), &["gc", "--older-than", "0s"]);
        assert!(
            gc.status.success(),
            "{}",
            String::from_utf8_lossy(&gc.stderr)
        );
        assert!(Path::new(inputs[0].strip_prefix("file://").unwrap()).exists());

        let out = sluice(home.path(), &["run", "--resume", run]);
        assert!(
            out.status.success(),
            "resume after {kill_after} ms: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(outputs["o0"], (0..STEPS).map(|s| s * s).sum::<i64>());
        resumed += 1;

        // Each step was recorded exactly once; the ones recorded before the kill were replayed.
        let kinds = query_strings(
            &db,
            "SELECT kind FROM events WHERE run_id = ?1 ORDER BY id",
            run,
        );
        let count = |k: &str| kinds.iter().filter(|x| x.as_str() == k).count();
        assert_eq!(count("trace-recorded"), STEPS as usize, "{kinds:?}");
        assert_eq!(count("trace-replayed"), recorded_before, "{kinds:?}");
        assert!(
            count("attempt-lost") >= 1 && count("resumed") == 1,
            "{kinds:?}"
        );
        assert_eq!(kinds.last().map(String::as_str), Some("succeeded"));

        // Resuming a finished run runs nothing and returns the same outputs.
        let again = sluice(home.path(), &["run", "--resume", run]);
        assert_eq!(again.stdout, out.stdout);
        let after = query_strings(&db, "SELECT kind FROM events WHERE run_id = ?1", run);
        assert_eq!(after.len(), kinds.len());
    }
    assert!(
        resumed >= 2,
        "most kills should land inside the run (seed {seed})"
    );
}

/// Children of `run` (every action but the root) as (id, phase, attempts).
fn children_of(db: &rusqlite::Connection, run: &str) -> Vec<(String, String, i64)> {
    let mut stmt = db
        .prepare(
            "SELECT a.id, a.phase, (SELECT COUNT(*) FROM attempts t \
             WHERE t.run_id = a.run_id AND t.action_id = a.id) \
             FROM actions a WHERE a.run_id = ?1 AND a.parent_id IS NOT NULL ORDER BY a.id",
        )
        .unwrap();
    let rows = stmt
        .query_map([run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn a_killed_run_with_a_half_finished_map_resumes_without_rerunning_finished_children() {
    const CHILDREN: i64 = 24;
    let home = tempfile::tempdir().unwrap();
    let component = fixture("calls");
    let component = component.to_str().unwrap();
    assert!(sluice(home.path(), &["describe", component])
        .status
        .success());
    // `slow_map` runs its children two at a time, 50 ms each: about 600 ms in all.
    let mut child = Command::new(sluice_bin())
        .arg("--home")
        .arg(home.path())
        .args(["run", component, "slow_map", "--progress", "never"])
        .args(["--in", &format!("n={CHILDREN}"), "--in", "ms=50"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few children have succeeded (polling the database it writes).
    let db = rusqlite::Connection::open(home.path().join("sluice.db")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let run = loop {
        assert!(std::time::Instant::now() < deadline, "no child finished");
        std::thread::sleep(Duration::from_millis(10));
        let run: Option<String> = db.query_row("SELECT id FROM runs", [], |r| r.get(0)).ok();
        let Some(run) = run else { continue };
        let done = children_of(&db, &run)
            .iter()
            .filter(|(_, phase, _)| phase == "succeeded")
            .count();
        if done >= 4 {
            break run;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let before = children_of(&db, &run);
    let finished: Vec<&(String, String, i64)> =
        before.iter().filter(|(_, p, _)| p == "succeeded").collect();
    assert!(
        finished.len() < CHILDREN as usize,
        "the map ended before the kill"
    );

    let out = sluice(home.path(), &["run", "--resume", &run]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outputs["o0"], (0..CHILDREN).sum::<i64>());

    let after = children_of(&db, &run);
    assert_eq!(after.len(), CHILDREN as usize, "{after:?}");
    assert!(after.iter().all(|(_, p, _)| p == "succeeded"), "{after:?}");
    // The children that had succeeded kept their single attempt: none ran again.
    for (id, _, attempts) in &finished {
        let now = after.iter().find(|(a, _, _)| a == id).unwrap();
        assert_eq!((now.2, *attempts), (1, 1), "child {id} ran again");
    }
    // The ones cut off by the kill were marked lost and ran again.
    let lost = query_strings(
        &db,
        "SELECT action_id FROM events WHERE run_id = ?1 AND kind = 'attempt-lost'",
        &run,
    );
    for (id, _, _) in before.iter().filter(|(_, p, _)| p == "running") {
        assert!(lost.contains(id), "{id} not marked lost: {lost:?}");
        let now = after.iter().find(|(a, _, _)| a == id).unwrap();
        assert_eq!(now.2, 2, "{id} did not run again");
    }
}
