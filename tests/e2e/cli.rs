//! The `sluice` command as a user runs it: output, exit codes, records across processes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_tests::{example_orders, fixture, sluice, sluice_bin, workspace_root};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_prints_outputs_and_records_the_run() {
    let home = tempfile::tempdir().unwrap();
    let wasm = example_orders();
    let inputs = workspace_root().join("examples/tasks/orders.json");
    let out = sluice(
        home.path(),
        &[
            "run",
            wasm.to_str().unwrap(),
            "summarize",
            "--inputs",
            inputs.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outputs["o0"]["orders"], 3);
    assert_eq!(outputs["o0"]["total_cents"], 5550);
    assert_eq!(
        outputs["o0"]["by_customer"],
        serde_json::json!({"ada": 1550, "bob": 4000})
    );
    assert_eq!(outputs["o0"]["biggest"]["id"], "o-2");

    // A second process lists and shows the run, with its values.
    let list = sluice(home.path(), &["runs", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["phase"], "succeeded");
    let show = sluice(home.path(), &["runs", "show", &run_id]);
    let shown = text(&show.stdout);
    assert!(shown.contains("phase    succeeded"), "{shown}");
    assert!(shown.contains("\"total_cents\": 5550"), "{shown}");
    // The action tree: the root action, its attempt, and its events.
    assert!(shown.contains("actions  1\n  a0 "), "{shown}");
    assert!(shown.contains("    attempt 1 succeeded"), "{shown}");
    for event in ["created", "started", "succeeded"] {
        assert!(shown.contains(&format!(" {event} ")), "{event}: {shown}");
    }
}

#[test]
fn exit_codes_tell_user_errors_from_failures() {
    let home = tempfile::tempdir().unwrap();
    let wasm = fixture("basic");
    let wasm = wasm.to_str().unwrap();
    let code = |args: &[&str]| sluice(home.path(), args).status.code();
    assert_eq!(
        code(&["run", wasm, "add", "--in", "x=1", "--in", "y=2"]),
        Some(0)
    );
    let user = sluice(
        home.path(),
        &["run", wasm, "divide", "--in", "x=1", "--in", "y=0"],
    );
    assert_eq!(user.status.code(), Some(1));
    assert!(text(&user.stderr).contains("failed (user): division by zero"));
    // A required input left out, or one the task does not declare, is refused like a wrongly
    // typed one: exit 2 and no run recorded.
    let runs_before = text(&sluice(home.path(), &["runs", "list"]).stdout)
        .lines()
        .count();
    let missing = sluice(home.path(), &["run", wasm, "add", "--in", "x=1"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("inputs.y: missing"));
    let undeclared = sluice(
        home.path(),
        &[
            "run", wasm, "add", "--in", "x=1", "--in", "y=2", "--in", "z=3",
        ],
    );
    assert_eq!(undeclared.status.code(), Some(2));
    assert!(
        text(&undeclared.stderr).contains("inputs.z: not declared by the task (declared: x, y)")
    );
    let runs_after = text(&sluice(home.path(), &["runs", "list"]).stdout)
        .lines()
        .count();
    assert_eq!(runs_after, runs_before, "a refused command records no run");
    assert_eq!(code(&["run", wasm, "panics", "--in", "message=x"]), Some(3));
    assert_eq!(code(&["run", wasm, "wrong_output"]), Some(3));
    let unknown = sluice(home.path(), &["run", wasm, "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no task named \"nope\""));
    let bad_json = sluice(
        home.path(),
        &["run", wasm, "add", "--in", "x=\"one\"", "--in", "y=2"],
    );
    assert_eq!(bad_json.status.code(), Some(2));
    assert!(text(&bad_json.stderr).contains("inputs.x: expected int, got string"));
    assert_eq!(code(&["run", "/no/such.wasm", "add"]), Some(2));
    let bad_project = sluice(
        home.path(),
        &[
            "run",
            wasm,
            "add",
            "--in",
            "x=1",
            "--in",
            "y=2",
            "--project",
            "Team/A",
        ],
    );
    assert_eq!(bad_project.status.code(), Some(2));
    assert!(text(&bad_project.stderr).contains("project \"Team/A\": must be"));
    let bad_filter = sluice(home.path(), &["runs", "list", "--domain", "Prod"]);
    assert_eq!(bad_filter.status.code(), Some(2));
    assert!(text(&bad_filter.stderr).contains("domain \"Prod\": must be"));
    // A file that is not a component is the command's mistake, named as such.
    let text_file = workspace_root().join("README.md");
    let not_wasm = sluice(home.path(), &["run", text_file.to_str().unwrap(), "add"]);
    assert_eq!(not_wasm.status.code(), Some(2));
    assert!(
        text(&not_wasm.stderr).contains("README.md: not a WebAssembly file"),
        "{}",
        text(&not_wasm.stderr)
    );
}

#[test]
fn in_overrides_the_inputs_file_and_a_name_given_twice_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let wasm = fixture("basic");
    let wasm = wasm.to_str().unwrap();
    let file = home.path().join("inputs.json");
    std::fs::write(&file, r#"{"x": 1, "y": 2}"#).unwrap();
    let file = file.to_str().unwrap();
    let overridden = sluice(
        home.path(),
        &["run", wasm, "add", "--inputs", file, "--in", "y=40"],
    );
    assert_eq!(
        overridden.status.code(),
        Some(0),
        "{}",
        text(&overridden.stderr)
    );
    let outputs: serde_json::Value = serde_json::from_slice(&overridden.stdout).unwrap();
    assert_eq!(outputs["o0"], 41);

    let twice = sluice(
        home.path(),
        &[
            "run", wasm, "add", "--in", "x=1", "--in", "y=2", "--in", "x=3",
        ],
    );
    assert_eq!(twice.status.code(), Some(2));
    assert!(
        text(&twice.stderr).contains("--in \"x\": given more than once"),
        "{}",
        text(&twice.stderr)
    );
    // Refused before anything is recorded.
    let list = sluice(home.path(), &["runs", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
}

#[test]
fn describe_prints_the_interfaces_and_a_second_process_uses_the_compile_cache() {
    let home = tempfile::tempdir().unwrap();
    let wasm = example_orders();
    let first = sluice(home.path(), &["describe", wasm.to_str().unwrap()]);
    let first = text(&first.stdout);
    assert!(first.contains("compiled now"), "{first}");
    assert!(
        first.contains("inputs   orders: list<record{id: string, customer: string, amount_cents: int, status: enum(Open|Shipped|Cancelled)}>, only: optional<enum(Open|Shipped|Cancelled)>"),
        "{first}"
    );
    let second = text(&sluice(home.path(), &["describe", wasm.to_str().unwrap()]).stdout);
    assert!(second.contains("from the compile cache"), "{second}");
}

#[test]
fn a_local_file_is_uploaded_and_the_output_fetched_by_uri() {
    let home = tempfile::tempdir().unwrap();
    let wasm = fixture("files");
    let csv = home.path().join("people.csv");
    std::fs::write(&csv, "id,name\n1,ada\n2,bob\n").unwrap();
    let out = sluice(
        home.path(),
        &[
            "run",
            wasm.to_str().unwrap(),
            "drop_column",
            "--in",
            &format!("data=@{}", csv.display()),
            "--in",
            "column=name",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uri = outputs["o0"]
        .as_str()
        .expect("the output is printed as a URI");
    assert!(
        uri.starts_with("file://") && uri.ends_with("dropped.csv"),
        "{uri}"
    );

    let cat = sluice(home.path(), &["cat", uri]);
    assert_eq!(cat.status.code(), Some(0), "{}", text(&cat.stderr));
    assert_eq!(text(&cat.stdout), "id\n1\n2\n");

    let dest = home.path().join("fetched.csv");
    let get = sluice(home.path(), &["get", uri, dest.to_str().unwrap()]);
    assert_eq!(get.status.code(), Some(0), "{}", text(&get.stderr));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "id\n1\n2\n");

    // Nothing at that URI: the command's mistake.
    let missing = sluice(home.path(), &["cat", &format!("{uri}.nope")]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("missing"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn a_directory_is_uploaded_built_and_downloaded() {
    let home = tempfile::tempdir().unwrap();
    let wasm = fixture("files");
    let tree = home.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.txt"), "alpha").unwrap();
    let out = sluice(
        home.path(),
        &[
            "run",
            wasm.to_str().unwrap(),
            "list_dir",
            "--in",
            &format!("dir=@{}", tree.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outputs["o0"][0]["name"], "a.txt");

    let out = sluice(
        home.path(),
        &[
            "run",
            wasm.to_str().unwrap(),
            "make_dir",
            "--in",
            r#"names=["x","y/z"]"#,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uri = outputs["o0"].as_str().unwrap();
    let dest = home.path().join("made");
    let get = sluice(home.path(), &["get", uri, dest.to_str().unwrap()]);
    assert_eq!(get.status.code(), Some(0), "{}", text(&get.stderr));
    assert_eq!(std::fs::read_to_string(dest.join("y/z")).unwrap(), "y/z");
    // `cat` of a directory, or of a URI with nothing there, is the command's mistake.
    let cat_dir = sluice(home.path(), &["cat", uri]);
    assert_eq!(cat_dir.status.code(), Some(2));
    assert!(
        text(&cat_dir.stderr).contains("a directory, not a file (fetch it with `sluice get"),
        "{}",
        text(&cat_dir.stderr)
    );
    let cat_missing = sluice(home.path(), &["cat", &format!("{uri}/nothing-here")]);
    assert_eq!(cat_missing.status.code(), Some(2));
    assert!(text(&cat_missing.stderr).contains("missing"));
}

/// The cache key is the same in separate processes: a second `sluice run` is answered from the
/// first one's entry; `cache list`, `cache clear` and `--overwrite-cache` work from the command.
#[test]
fn the_cache_works_across_processes_and_from_the_command() {
    let home = tempfile::tempdir().unwrap();
    let wasm = fixture("durable");
    let wasm = wasm.to_str().unwrap();
    let add = |note: &str, extra: &[&str]| {
        let note = format!("note={note}");
        let mut args = vec!["run", wasm, "cached_add", "--in", "x=1", "--in", "y=2"];
        args.extend(["--in", note.as_str()]);
        args.extend(extra);
        let out = sluice(home.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(outputs["o0"], 3);
    };
    let newest_action = || {
        let list = sluice(home.path(), &["runs", "list", "--json"]);
        let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let id = runs[0]["id"].as_str().unwrap().to_string();
        let show = sluice(home.path(), &["runs", "show", &id, "--json"]);
        let run: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        run["actions"][0].clone()
    };
    add("first", &[]);
    let first = newest_action();
    add("second", &[]);
    let second = newest_action();
    assert_eq!(
        (
            first["cache_status"].as_str(),
            second["cache_status"].as_str()
        ),
        (Some("miss"), Some("hit"))
    );
    assert_eq!(first["cache_key"], second["cache_key"]);

    let list = sluice(home.path(), &["cache", "list", "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 1);
    assert_eq!(entries[0]["task"], "fixture-durable.cached_add");
    assert_eq!(entries[0]["cache_key"], first["cache_key"]);

    add("third", &["--overwrite-cache"]);
    assert_eq!(newest_action()["cache_status"], "overwrite");
    let clear = sluice(
        home.path(),
        &["cache", "clear", "--task", "fixture-durable.cached_add"],
    );
    assert_eq!(text(&clear.stdout).trim(), "removed 1 cache entry");
    add("fourth", &[]);
    assert_eq!(newest_action()["cache_status"], "miss");
}

#[test]
fn a_long_run_shows_progress_and_runs_show_prints_the_action_tree() {
    let home = tempfile::tempdir().unwrap();
    let calls = fixture("calls");
    let calls = calls.to_str().unwrap();
    // 16 children of 150 ms, two at a time: longer than the bar's one-second delay.
    let out = sluice(
        home.path(),
        &[
            "run",
            calls,
            "slow_map",
            "--in",
            "n=16",
            "--in",
            "ms=150",
            "--progress",
            "always",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bar = text(&out.stderr);
    assert!(bar.contains("] 16/16 tasks"), "{bar}");

    // A map of 25: the tree lists the first 20 children of a parent and counts the rest.
    let out = sluice(
        home.path(),
        &[
            "run",
            calls,
            "fan_out",
            "--in",
            "n=25",
            "--in",
            "concurrency=4",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = record["run"]["id"].as_str().unwrap().to_string();
    let shown = text(&sluice(home.path(), &["runs", "show", &run_id]).stdout);
    assert!(
        shown.contains("actions  26\n  a0 fan_out succeeded"),
        "{shown}"
    );
    let children = shown
        .lines()
        .filter(|l| l.starts_with("    a") && l.contains(" add_one succeeded"))
        .count();
    assert_eq!(children, 20, "{shown}");
    assert!(
        shown.contains("    ... 5 more (5 succeeded; --all lists them)"),
        "{shown}"
    );
    let all = text(&sluice(home.path(), &["runs", "show", &run_id, "--all"]).stdout);
    let listed = all
        .lines()
        .filter(|l| l.starts_with("    a") && l.contains(" add_one succeeded"))
        .count();
    assert_eq!(listed, 25, "{all}");
}

/// Another terminal on the same home while a run is in progress: it sees the run as running,
/// records a run of its own, and neither process's records are lost or damaged (both go
/// through the same SQLite file and its write-ahead log).
#[test]
fn two_processes_share_a_home_while_a_run_is_in_progress() {
    let home = tempfile::tempdir().unwrap();
    let (calls, durable) = (fixture("calls"), fixture("durable"));
    let (calls, durable) = (calls.to_str().unwrap(), durable.to_str().unwrap());
    // Compiled into the home's cache first, so the second process does not compile while the
    // first one runs.
    for wasm in [calls, durable] {
        assert!(sluice(home.path(), &["describe", wasm]).status.success());
    }
    // 16 children of 400 ms, two at a time: about 3.2 s.
    let long = Command::new(sluice_bin())
        .arg("--home")
        .arg(home.path())
        .args(["run", calls, "slow_map", "--in", "n=16", "--in", "ms=400"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // (run id, phase) of every run in the home, as another process lists them.
    let phases = || -> Vec<(String, String)> {
        let list = sluice(home.path(), &["runs", "list", "--json"]);
        assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
        let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let runs = runs.as_array().unwrap().iter();
        let field = |r: &serde_json::Value, name: &str| r[name].as_str().unwrap().to_string();
        runs.map(|r| (field(r, "id"), field(r, "phase"))).collect()
    };
    let give_up = Instant::now() + Duration::from_secs(60);
    let long_id = loop {
        if let Some((id, _)) = phases().into_iter().find(|(_, phase)| phase == "running") {
            break id;
        }
        assert!(Instant::now() < give_up, "the run never showed as running");
        std::thread::sleep(Duration::from_millis(20));
    };

    let side = sluice(
        home.path(),
        &[
            "run",
            durable,
            "cached_add",
            "--in",
            "x=1",
            "--in",
            "y=2",
            "--in",
            "note=side",
        ],
    );
    assert_eq!(side.status.code(), Some(0), "{}", text(&side.stderr));
    let side_outputs: serde_json::Value = serde_json::from_slice(&side.stdout).unwrap();
    assert_eq!(side_outputs["o0"], 3);
    // The second run was recorded while the first was still running.
    let during = phases();
    assert_eq!(during.len(), 2, "{during:?}");
    assert!(
        during
            .iter()
            .any(|(id, phase)| *id == long_id && phase == "running"),
        "{during:?}"
    );

    let long = long.wait_with_output().unwrap();
    assert_eq!(long.status.code(), Some(0), "{}", text(&long.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&long.stdout).unwrap();
    assert_eq!(outputs["o0"], (0..16).sum::<i64>());
    let after = phases();
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().all(|(_, phase)| phase == "succeeded"),
        "{after:?}"
    );
    let db = rusqlite::Connection::open(home.path().join("sluice.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let children: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM actions WHERE parent_id = 'a0' AND phase = 'succeeded'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(children, 16);
}

/// Ctrl-C stops `sluice run` at once, names the run and how to continue it, and leaves the
/// records as a stopped host does, so `--resume` finishes the run.
#[test]
fn ctrl_c_names_the_stopped_run_and_resume_finishes_it() {
    let home = tempfile::tempdir().unwrap();
    let calls = fixture("calls");
    let calls = calls.to_str().unwrap();
    assert!(sluice(home.path(), &["describe", calls]).status.success());
    // 16 children of 300 ms, two at a time: about 2.4 s.
    let child = Command::new(sluice_bin())
        .arg("--home")
        .arg(home.path())
        .args(["run", calls, "slow_map", "--in", "n=16", "--in", "ms=300"])
        .args(["--progress", "never"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        let list = sluice(home.path(), &["runs", "list", "--json"]);
        let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        if let Some(id) = runs[0]["id"].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < give_up, "the run never showed");
        std::thread::sleep(Duration::from_millis(20));
    };
    // While its process runs it, the run is not stopped, and resuming it elsewhere would run
    // its children twice: refused.
    let list = sluice(home.path(), &["runs", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(runs[0]["host_gone"], false, "{runs}");
    let twice = sluice(home.path(), &["run", calls, "--resume", &run_id]);
    assert_eq!(twice.status.code(), Some(2), "{}", text(&twice.stderr));
    let expected = format!(
        "run {run_id} is still running in process {} on ",
        child.id()
    );
    assert!(
        text(&twice.stderr).contains(&expected),
        "{}",
        text(&twice.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    let expected = format!(
        "interrupted: run {run_id} stopped where it was; continue it with \
         `sluice run {calls} --resume {run_id}`"
    );
    assert!(said.contains(&expected), "{said}");

    // Its process gone, the run shows as stopped, with the way to continue it.
    let shown = text(&sluice(home.path(), &["runs", "show", &run_id]).stdout);
    assert!(
        shown.contains(&format!(
            "phase    stopped (recorded running, but the process running it is gone; \
             continue it with `sluice run --resume {run_id}`)"
        )),
        "{shown}"
    );
    let listed = text(&sluice(home.path(), &["runs", "list"]).stdout);
    let line = listed.lines().find(|l| l.starts_with(&run_id)).unwrap();
    assert!(line.contains(" stopped "), "{line}");

    // Had it run on another machine sharing the database, it would be judged by its host's
    // heartbeat: refused while the host reports, stopped once it has been silent for 30 s.
    let db = rusqlite::Connection::open(home.path().join("sluice.db")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let moved = "UPDATE runs SET host = 'machine-b:boot-b:7:7', heartbeat_at = ?1 WHERE id = ?2";
    db.execute(moved, (now, &run_id)).unwrap();
    let refused = sluice(home.path(), &["run", calls, "--resume", &run_id]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let said = text(&refused.stderr);
    for part in [
        format!("run {run_id} is still running in process 7 on machine-b: its host reported "),
        " s ago; let it finish, or stop that process and resume the run once its host has \
         been silent for 30 s"
            .to_string(),
    ] {
        assert!(said.contains(&part), "{said}");
    }
    let shown = text(&sluice(home.path(), &["runs", "show", &run_id]).stdout);
    assert!(
        shown.contains("phase    running (on another machine; its host reported "),
        "{shown}"
    );
    db.execute(moved, (now - 31_000_000, &run_id)).unwrap();
    let shown = text(&sluice(home.path(), &["runs", "show", &run_id]).stdout);
    assert!(
        shown.contains(&format!(
            "phase    stopped (recorded running, but its host has not reported for more than \
             30 s; continue it with `sluice run --resume {run_id}`)"
        )),
        "{shown}"
    );
    let resumed = sluice(home.path(), &["run", calls, "--resume", &run_id]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(outputs["o0"], (0..16).sum::<i64>());
    let shown = text(&sluice(home.path(), &["runs", "show", &run_id]).stdout);
    assert!(shown.contains("phase    succeeded"), "{shown}");
    assert!(shown.contains(" resumed "), "{shown}");
}
