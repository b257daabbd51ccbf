//! The `sluice` command as a user runs it: output, exit codes, records across processes.

use std::path::Path;
use std::process::{Command, Output};

use sluice_tests::{example_orders, fixture, sluice_bin, workspace_root};

fn sluice(home: &Path, args: &[&str]) -> Output {
    Command::new(sluice_bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("running sluice")
}

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
    assert!(shown.contains("attempt  a0/1 succeeded"), "{shown}");
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
    let missing = sluice(home.path(), &["run", wasm, "add", "--in", "x=1"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("failed (input): inputs.y: missing"));
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
