//! Happy paths for every value kind, read back from the records.
use serde_json::json;
use sluice_host::values::json::document_to_json;
use sluice_host::{RunRequest, Value};
use sluice_tests::{fixture, run_json_inputs, test_host, TestHost};

/// Runs `task` with JSON inputs (converted through the task's descriptor, as the CLI does) and
/// returns the outputs as JSON, after checking they were recorded.
async fn run_json(t: &TestHost, task: &str, inputs: serde_json::Value) -> serde_json::Value {
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let out = run_json_inputs(t, &env, task, &inputs).await;
    let outputs = out
        .outputs
        .unwrap_or_else(|f| panic!("{task} failed: {f:?}"));
    let details = t.host.run_details(&out.run_id).await.unwrap().unwrap();
    assert_eq!(details.run.phase, "succeeded");
    assert_eq!(
        details.outputs.as_ref(),
        Some(&outputs),
        "recorded outputs differ"
    );
    document_to_json(&outputs)
}

#[tokio::test]
async fn ints_are_added_and_the_run_is_recorded() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let out = t
        .host
        .run(
            &env,
            RunRequest::new("add_one")
                .input("x", 41i64)
                .scope("acme", "prod"),
        )
        .await
        .unwrap();
    assert_eq!(out.outputs.unwrap().get("o0"), Some(&Value::Int(42)));
    let d = t.host.run_details(&out.run_id).await.unwrap().unwrap();
    assert_eq!(
        (d.run.project.as_str(), d.run.domain.as_str()),
        ("acme", "prod")
    );
    assert_eq!(
        document_to_json(d.inputs.as_ref().unwrap()),
        json!({"x": 41})
    );
    let attempt = &d.attempts[0];
    assert_eq!((attempt.attempt, attempt.phase.as_str()), (1, "succeeded"));
    let inputs_uri = attempt.inputs_uri.as_deref().unwrap();
    let expected_suffix = format!("/store/acme/prod/{}/a0/1/inputs.msgpack", out.run_id);
    assert!(inputs_uri.ends_with(&expected_suffix), "{inputs_uri}");
    // The documents are real files in the local store.
    let path = inputs_uri.strip_prefix("file://").unwrap();
    assert!(std::path::Path::new(path).is_file());
}

#[tokio::test]
async fn every_scalar_kind_round_trips() {
    let t = test_host().await;
    let out = run_json(
        &t,
        "scalars",
        json!({
            "i": -7, "f": 2.5, "b": true, "s": "héllo", "raw": "AAH/",
            "when": "2024-05-01T12:00:00.25Z", "took": "1h30m", "nothing": null
        }),
    )
    .await;
    assert_eq!(
        out,
        json!({
            "o0": -7, "o1": 2.5, "o2": true, "o3": "héllo", "o4": "AAH/",
            "o5": "2024-05-01T12:00:00.250Z", "o6": "1h30m0s", "o7": null
        })
    );
}

#[tokio::test]
async fn records_enums_lists_maps_and_optionals() {
    let t = test_host().await;
    let out = run_json(
        &t,
        "people",
        json!({
            "people": [
                {"name": "Ada", "age": 36, "email": "ada@example.com"},
                {"name": "Bob", "age": 41}
            ],
            "favourite": "Green"
        }),
    )
    .await;
    assert_eq!(
        out,
        json!({
            "o0": {"name": "Bob", "age": 41, "email": null},
            "o1": "Green",
            "o2": {"Ada": 36, "Bob": 41}
        })
    );
    let none = run_json(&t, "people", json!({"people": [], "favourite": "Red"})).await;
    assert_eq!(none["o0"], json!(null));
}

#[tokio::test]
async fn optional_inputs_may_be_left_out() {
    let t = test_host().await;
    let with = run_json(&t, "greet", json!({"name": "Ada", "title": "Dr"})).await;
    assert_eq!(with, json!({"o0": "Hello, Dr Ada!"}));
    let without = run_json(&t, "greet", json!({"name": "Ada"})).await;
    assert_eq!(without, json!({"o0": "Hello, Ada!"}));
}

#[tokio::test]
async fn unions_take_either_member() {
    let t = test_host().await;
    assert_eq!(
        run_json(&t, "describe_union", json!({"v": 5})).await,
        json!({"o0": "int 5"})
    );
    assert_eq!(
        run_json(&t, "describe_union", json!({"v": "five"})).await,
        json!({"o0": "text five"})
    );
}

#[tokio::test]
async fn guest_output_and_log_are_captured() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let out = t
        .host
        .run(&env, RunRequest::new("chatty").input("lines", 2i64))
        .await
        .unwrap();
    assert_eq!(out.outputs.unwrap().get("o0"), Some(&Value::Int(2)));
    let d = t.host.run_details(&out.run_id).await.unwrap().unwrap();
    let log = d.log.unwrap();
    assert!(log.contains("[INFO] starting"), "{log}");
    assert!(log.contains("line 0\nline 1\n"), "{log}");
    assert!(log.contains("done on stderr"), "{log}");
}

#[tokio::test]
async fn a_flood_of_output_is_capped_not_fatal() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let out = t
        .host
        .run(&env, RunRequest::new("chatty").input("lines", 200_000i64))
        .await
        .unwrap();
    assert!(out.outputs.is_ok(), "{:?}", out.outputs);
    let log = out.log.unwrap();
    assert!(
        log.len() < (1 << 20) + 200,
        "log not capped: {} bytes",
        log.len()
    );
    assert!(
        log.contains("[sluice: log capped at 1048576 bytes;"),
        "{}",
        &log[log.len() - 200..]
    );
}

#[tokio::test]
async fn the_description_carries_docs_settings_and_types() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let spin = env.task("spin").unwrap();
    assert_eq!(spin.timeout_ms, Some(300));
    let add = env.task("add").unwrap();
    assert_eq!(add.doc.as_deref(), Some("Adds two numbers."));
    let people = env.task("people").unwrap();
    assert_eq!(
        people.interface.inputs[0].ty.to_string(),
        "list<record{name: string, age: int, email: optional<string>}>"
    );
    assert_eq!(
        people.interface.inputs[1].ty.to_string(),
        "enum(Red|Green|Blue)"
    );
}

#[tokio::test]
async fn the_sandbox_grants_no_environment_files_or_network() {
    let t = test_host().await;
    let seen = run_json(&t, "sandbox_probe", json!({})).await;
    assert_eq!(
        seen["o0"],
        json!({
            "env": "0",
            "args": "0",
            "read /etc/passwd": "denied",
            "list /": "denied",
            "write ./x": "denied",
            "connect 127.0.0.1:22": "denied"
        })
    );
}
