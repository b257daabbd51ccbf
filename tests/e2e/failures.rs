//! What bad input and misbehaving guests get: each case asserts the phase and the error text.

use sluice_host::engine::CompileSource;
use sluice_host::{Host, RunError, RunFailure, RunRequest, Value};
use sluice_tests::{fixture, test_host, TestHost};

/// Runs a request that must fail, checks the failure was recorded, and returns it.
async fn failed(t: &TestHost, request: RunRequest) -> RunFailure {
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let out = t.host.run(&env, request).await.unwrap();
    let failure = out.outputs.expect_err("the run should have failed");
    let d = t.host.run_details(&out.run_id).await.unwrap().unwrap();
    assert_eq!(d.run.phase, "failed");
    assert_eq!(d.run.error_kind.as_deref(), Some(failure.kind.as_str()));
    assert_eq!(d.run.error_text.as_deref(), Some(failure.message.as_str()));
    assert_eq!(d.attempts[0].phase, "failed");
    assert!(
        d.outputs.is_none(),
        "a failed run must not point at outputs"
    );
    failure
}

fn person(name: &str, age: Value) -> Value {
    Value::record([("name", Value::from(name)), ("age", age)])
}

#[tokio::test]
async fn wrong_input_type_names_the_path() {
    let t = test_host().await;
    let people = Value::List(vec![
        person("a", Value::Int(1)),
        person("b", Value::Int(2)),
        person("c", Value::from("three")),
    ]);
    let f = failed(
        &t,
        RunRequest::new("people")
            .input("people", people)
            .input("favourite", "Red"),
    )
    .await;
    assert_eq!(f.kind, "input");
    assert_eq!(f.message, "inputs.people[2].age: expected int, got string");
    assert!(f.is_user_error());
}

#[tokio::test]
async fn missing_and_undeclared_inputs_are_refused() {
    let t = test_host().await;
    let f = failed(&t, RunRequest::new("add").input("x", 1i64)).await;
    assert_eq!(
        (f.kind.as_str(), f.message.as_str()),
        ("input", "inputs.y: missing")
    );
    let f = failed(
        &t,
        RunRequest::new("add_one").input("x", 1i64).input("z", 2i64),
    )
    .await;
    assert_eq!(
        f.message,
        "inputs.z: not declared by the task (declared: x)"
    );
    let f = failed(
        &t,
        RunRequest::new("people")
            .input("people", Value::List(vec![]))
            .input("favourite", "Mauve"),
    )
    .await;
    assert_eq!(
        f.message,
        "inputs.favourite: \"Mauve\" is not one of Red, Green, Blue"
    );
}

#[tokio::test]
async fn unknown_task_and_bad_scope_are_request_errors() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let err = t.host.run(&env, RunRequest::new("nope")).await.unwrap_err();
    assert!(matches!(err, RunError::UnknownTask { .. }));
    assert!(
        err.to_string().starts_with("no task named \"nope\" in "),
        "{err}"
    );
    assert!(
        err.to_string().contains("(it has: add_one, add, scalars,"),
        "{err}"
    );
    let err = t
        .host
        .run(
            &env,
            RunRequest::new("add_one")
                .input("x", 1i64)
                .scope("../etc", "d"),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("project \"../etc\": must be"),
        "{err}"
    );
}

#[tokio::test]
async fn user_errors_carry_message_and_retryable_flag() {
    let t = test_host().await;
    let f = failed(
        &t,
        RunRequest::new("divide").input("x", 1i64).input("y", 0i64),
    )
    .await;
    assert_eq!(
        (f.kind.as_str(), f.message.as_str(), f.retryable),
        ("user", "division by zero", false)
    );
    let f = failed(&t, RunRequest::new("flaky")).await;
    assert_eq!(
        (f.message.as_str(), f.retryable),
        ("upstream unavailable", true)
    );
    let f = failed(&t, RunRequest::new("parse").input("text", "x1")).await;
    assert_eq!(
        (f.kind.as_str(), f.message.as_str()),
        ("user", "invalid digit found in string")
    );
}

#[tokio::test]
async fn guest_returning_the_wrong_type_fails_the_attempt() {
    let t = test_host().await;
    let f = failed(&t, RunRequest::new("wrong_output")).await;
    assert_eq!(f.kind, "output");
    assert_eq!(f.message, "outputs.o0: expected int, got string");
    assert!(!f.is_user_error());
}

#[tokio::test]
async fn guest_panic_is_a_trap_with_the_panic_message() {
    let t = test_host().await;
    let f = failed(
        &t,
        RunRequest::new("panics").input("message", "the sky fell"),
    )
    .await;
    assert_eq!(f.kind, "trap");
    assert!(
        f.message
            .starts_with("guest trapped: wasm trap: wasm `unreachable`"),
        "{}",
        f.message
    );
    assert!(f.message.contains("the sky fell"), "{}", f.message);
}

#[tokio::test]
async fn endless_loop_hits_the_deadline_and_the_host_stays_usable() {
    let t = test_host().await;
    let f = failed(&t, RunRequest::new("spin")).await;
    assert_eq!(
        (f.kind.as_str(), f.message.as_str()),
        ("deadline", "deadline of 300 ms exceeded")
    );
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let out = t
        .host
        .run(&env, RunRequest::new("add_one").input("x", 1i64))
        .await
        .unwrap();
    assert_eq!(out.outputs.unwrap().get("o0"), Some(&Value::Int(2)));
}

#[tokio::test]
async fn allocating_past_the_memory_cap_is_stopped() {
    let t = test_host().await;
    let f = failed(&t, RunRequest::new("hog").input("mib", 100i64)).await;
    assert_eq!(f.kind, "memory");
    assert!(
        f.message
            .starts_with("memory limit of 67108864 bytes exceeded (the guest asked for "),
        "{}",
        f.message
    );
    // Below the cap the same task succeeds.
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let out = t
        .host
        .run(&env, RunRequest::new("hog").input("mib", 8i64))
        .await
        .unwrap();
    assert_eq!(out.outputs.unwrap().get("o0"), Some(&Value::Int(1)));
}

#[tokio::test]
async fn outputs_over_the_inline_limit_are_refused() {
    let t = test_host().await;
    let f = failed(&t, RunRequest::new("big_output").input("bytes", 5000i64)).await;
    assert_eq!(f.kind, "output");
    assert_eq!(
        f.message,
        "outputs: document is 5007 bytes, above the inline limit of 1024 bytes"
    );
}

#[tokio::test]
async fn inputs_over_the_host_inline_limit_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let limits = sluice_host::Limits {
        inline_limit_bytes: 100,
        ..Default::default()
    };
    let host = Host::builder()
        .home(home.path())
        .max_instances(4)
        .limits(limits)
        .build()
        .await
        .unwrap();
    let env = host.load_file(fixture("basic")).await.unwrap();
    let out = host
        .run(
            &env,
            RunRequest::new("greet").input("name", "x".repeat(200)),
        )
        .await
        .unwrap();
    let f = out.outputs.unwrap_err();
    assert_eq!(
        (f.kind.as_str(), f.message.as_str()),
        (
            "input",
            "inputs: document is 215 bytes, above the inline limit of 100 bytes"
        )
    );
}

#[tokio::test]
async fn a_second_load_uses_the_compile_cache() {
    // Its own host with the cache in its home (test_host shares one cache across tests).
    let home = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .home(home.path())
        .max_instances(4)
        .build()
        .await
        .unwrap();
    let first = host.load_file(fixture("basic")).await.unwrap();
    assert_eq!(first.compile_source, CompileSource::Compiled);
    // A new host on the same home (as a second `sluice run` would be) maps the cached code.
    let again = Host::builder()
        .home(home.path())
        .max_instances(4)
        .build()
        .await
        .unwrap();
    let second = again.load_file(fixture("basic")).await.unwrap();
    assert_eq!(second.compile_source, CompileSource::DiskCache);
    assert_eq!(first.digest, second.digest);
    let out = again
        .run(&second, RunRequest::new("add_one").input("x", 1i64))
        .await
        .unwrap();
    assert_eq!(out.outputs.unwrap().get("o0"), Some(&Value::Int(2)));
    let cached: Vec<_> = std::fs::read_dir(home.path().join("compiled"))
        .unwrap()
        .collect();
    assert_eq!(
        cached.len(),
        1,
        "one compiled file per component and engine configuration"
    );
}
