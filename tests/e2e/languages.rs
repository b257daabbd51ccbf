//! The same contract in three languages: the language-neutral cases of the value and failure
//! suites run against the Rust fixture and its Python and JavaScript twins
//! (`tests/fixtures/python/py_basic.py`, `tests/fixtures/js/js_basic.js`), which must give the
//! same outputs, the same errors and the same interface hashes.

use serde_json::json;
use sluice_host::values::json::document_to_json;
use sluice_host::RunRequest;
use sluice_tests::{fixture, guest, run_json_inputs, test_host, TestHost};

/// The twins of the Rust `basic` fixture.
const TWINS: [&str; 2] = ["py_basic", "js_basic"];

/// What a run gave, in a form to compare across languages.
#[derive(Debug, PartialEq)]
enum Outcome {
    Outputs(serde_json::Value),
    Failed {
        kind: String,
        message: String,
        retryable: bool,
    },
}

async fn outcome(
    t: &TestHost,
    component: std::path::PathBuf,
    task: &str,
    inputs: &serde_json::Value,
) -> Outcome {
    let env = t.host.load_file(component).await.unwrap();
    let out = run_json_inputs(t, &env, task, inputs).await;
    let details = t.host.run_details(&out.run_id).await.unwrap().unwrap();
    match out.outputs {
        Ok(doc) => {
            assert_eq!(details.run.phase, "succeeded");
            Outcome::Outputs(document_to_json(&doc))
        }
        Err(f) => {
            assert_eq!(details.run.phase, "failed");
            Outcome::Failed {
                kind: f.kind,
                message: f.message,
                retryable: f.retryable,
            }
        }
    }
}

/// Runs each case on the Rust fixture and on both twins and requires the same outcome.
async fn same_everywhere(cases: &[(&str, serde_json::Value)]) {
    let t = test_host().await;
    for (task, inputs) in cases {
        let expected = outcome(&t, fixture("basic"), task, inputs).await;
        for twin in TWINS {
            let got = outcome(&t, guest(twin), task, inputs).await;
            assert_eq!(got, expected, "{twin}: {task}({inputs})");
        }
    }
}

#[tokio::test]
async fn values_of_every_kind_come_back_the_same() {
    same_everywhere(&[
        ("add_one", json!({"x": 41})),
        ("add", json!({"x": -2, "y": 1_000_000_000_000i64})),
        (
            "scalars",
            json!({
                "i": -7, "f": 2.0, "b": true, "s": "héllo", "raw": "AAH/",
                "when": "2024-05-01T12:00:00.25Z", "took": "1h30m", "nothing": null
            }),
        ),
        (
            "people",
            json!({
                "people": [
                    {"name": "ann", "age": 31, "email": "ann@example.com"},
                    {"name": "bob", "age": 45},
                ],
                "favourite": "Blue"
            }),
        ),
        ("people", json!({"people": [], "favourite": "Red"})),
        ("greet", json!({"name": "Ann", "title": "Dr"})),
        ("greet", json!({"name": "Ann"})),
        ("describe_union", json!({"v": 7})),
        ("describe_union", json!({"v": "seven"})),
    ])
    .await;
}

#[tokio::test]
async fn errors_come_back_the_same() {
    same_everywhere(&[
        // The task's own errors, with their retryable flag.
        ("divide", json!({"x": 1, "y": 0})),
        ("flaky", json!({})),
        // What the host refuses or catches is the host's, whatever the language.
        ("wrong_output", json!({})),
        ("big_output", json!({"bytes": 4096})),
        ("spin", json!({})),
    ])
    .await;
}

#[tokio::test]
async fn bad_inputs_are_refused_the_same() {
    let t = test_host().await;
    for component in [fixture("basic"), guest("py_basic"), guest("js_basic")] {
        let env = t.host.load_file(component).await.unwrap();
        let out = t
            .host
            .run(
                &env,
                RunRequest::new("add").input("x", "one").input("y", 2i64),
            )
            .await
            .unwrap();
        let f = out
            .outputs
            .expect_err("a string for an int must be refused");
        assert_eq!(
            (f.kind.as_str(), f.message.as_str()),
            ("input", "inputs.x: expected int, got string"),
            "{}",
            env.source_name
        );
    }
}

#[tokio::test]
async fn interface_hashes_match_the_rust_twins() {
    let t = test_host().await;
    let rust = t.host.load_file(fixture("basic")).await.unwrap();
    for twin in TWINS {
        let env = t.host.load_file(guest(twin)).await.unwrap();
        let mut compared = 0;
        for task in &env.tasks {
            // `raises` and `unsendable` are the twins' own (a Rust task panics instead, and
            // cannot return what serde cannot encode).
            if let Some(r) = rust.task(&task.name) {
                assert_eq!(
                    task.interface_hash, r.interface_hash,
                    "{twin}.{}: {:?} vs {:?}",
                    task.name, task.interface, r.interface
                );
                compared += 1;
            }
        }
        assert_eq!(
            compared,
            env.tasks.len() - 2,
            "{twin}: every twin task but `raises` has a Rust one"
        );
        assert_eq!(env.task("spin").unwrap().timeout_ms, Some(300));
        assert_eq!(
            env.task("big_output").unwrap().inline_limit_bytes,
            Some(1024)
        );
    }
}

#[tokio::test]
async fn exceptions_become_user_errors_with_their_message() {
    let t = test_host().await;
    for (twin, expected) in [
        ("py_basic", "RuntimeError: the sky fell"),
        ("js_basic", "TypeError: the sky fell"),
    ] {
        let env = t.host.load_file(guest(twin)).await.unwrap();
        let out = t
            .host
            .run(
                &env,
                RunRequest::new("raises").input("message", "the sky fell"),
            )
            .await
            .unwrap();
        let f = out.outputs.expect_err("raises must fail");
        assert_eq!(
            (f.kind.as_str(), f.message.as_str(), f.retryable),
            ("user", expected, false),
            "{twin}"
        );
        // The traceback goes to the attempt's log.
        let d = t.host.run_details(&out.run_id).await.unwrap().unwrap();
        let log = d.log.unwrap_or_default();
        assert!(log.contains("the sky fell"), "{twin}: {log}");

        // A result the SDK cannot encode is a failure of the task's runtime, not a user error.
        let out = t
            .host
            .run(&env, RunRequest::new("unsendable"))
            .await
            .unwrap();
        let f = out.outputs.expect_err("unsendable must fail");
        assert_eq!(f.kind, "failure", "{twin}: {}", f.message);
        assert!(
            f.message.contains("cannot encode a"),
            "{twin}: {}",
            f.message
        );
    }
}

#[tokio::test]
async fn logs_prints_and_the_sandbox_are_the_same() {
    let t = test_host().await;
    let rust = outcome(&t, fixture("basic"), "sandbox_probe", &json!({})).await;
    for twin in TWINS {
        let env = t.host.load_file(guest(twin)).await.unwrap();
        let out = t
            .host
            .run(&env, RunRequest::new("chatty").input("lines", 2i64))
            .await
            .unwrap();
        let d = t.host.run_details(&out.run_id).await.unwrap().unwrap();
        let log = d.log.unwrap();
        assert!(log.contains("[INFO] starting"), "{twin}: {log}");
        assert!(log.contains("line 0\nline 1\n"), "{twin}: {log}");
        assert!(log.contains("done on stderr"), "{twin}: {log}");
    }
    // No environment, arguments, files or network for CPython either (JavaScript has no API
    // for them to probe).
    assert_eq!(
        outcome(&t, guest("py_basic"), "sandbox_probe", &json!({})).await,
        rust
    );
}

/// The seed's CSV pipeline (examples/csv, examples/python/py_csv.py, examples/js/js_csv.js)
/// writes the same bytes in every language, and across languages (Python calling Rust).
#[tokio::test]
async fn the_csv_pipeline_gives_the_same_bytes_in_every_language() {
    use sluice_host::values::reference::RefMeta;
    use sluice_host::values::RefKind;
    use sluice_tests::{reference_of, workspace_root};

    let t = test_host().await;
    let people = workspace_root().join("examples/data/people.csv");
    let data = t
        .host
        .upload(&people, RefKind::File, "default", "development")
        .await
        .unwrap();
    let request = |task: &str| {
        RunRequest::new(task)
            .input("data", data.to_value())
            .input("seed", 7i64)
            .input("column", "score")
    };
    // Loaded first, so that the mixed pipeline finds the Rust environment.
    t.host.load_file(guest("example_csv")).await.unwrap();
    let mut outputs: Vec<(String, RefMeta)> = Vec::new();
    for (component, task) in [
        ("example_csv", "pipeline"),
        ("py_csv", "pipeline"),
        ("js_csv", "pipeline"),
        ("py_csv", "mixed_pipeline"),
    ] {
        let env = t.host.load_file(guest(component)).await.unwrap();
        let out = t.host.run(&env, request(task)).await.unwrap();
        let file = match &out.outputs {
            Ok(doc) => reference_of(&doc["o0"]),
            Err(f) => panic!("{component}.{task}: {f:?}"),
        };
        let d = t.host.run_details(&out.run_id).await.unwrap().unwrap();
        let mut children: Vec<&str> = d
            .actions
            .iter()
            .filter(|a| a.parent_id.is_some())
            .map(|a| a.task.as_str())
            .collect();
        children.sort();
        let shuffle = if task == "mixed_pipeline" {
            "example-csv.shuffle_rows"
        } else {
            "shuffle_rows"
        };
        assert_eq!(children, ["drop_column", shuffle], "{component}.{task}");
        outputs.push((format!("{component}.{task}"), file));
    }
    let text = std::fs::read_to_string(outputs[0].1.uri.strip_prefix("file://").unwrap()).unwrap();
    assert!(
        text.starts_with("id,name\n") && !text.contains("90"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1 + 5, "{text}");
    for (who, file) in &outputs[1..] {
        assert_eq!(
            file.sha256, outputs[0].1.sha256,
            "{who} wrote other bytes than Rust"
        );
    }
    // A column that is not there: the same user error everywhere.
    for component in ["example_csv", "py_csv", "js_csv"] {
        let env = t.host.load_file(guest(component)).await.unwrap();
        let out = t
            .host
            .run(
                &env,
                RunRequest::new("drop_column")
                    .input("data", data.to_value())
                    .input("column", "age"),
            )
            .await
            .unwrap();
        let f = out.outputs.unwrap_err();
        assert_eq!(
            (f.kind.as_str(), f.message.as_str()),
            (
                "user",
                "column \"age\" not in the data (columns: id, name, score)"
            ),
            "{component}"
        );
    }
}
