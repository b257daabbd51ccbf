//! Tasks calling tasks: sequences, fan-out and fan-in, maps with failures, handled and unhandled
//! child errors, a retried parent, cross-environment calls, references passed between children,
//! forged references, and the depth and size limits. Asserted on outputs and on the records.

use sluice_host::records::ActionRecord;
use sluice_host::{Limits, RunDetails, RunOutcome, RunRequest, Value};
use sluice_tests::{fixture, reference_of, single_output, test_host, test_host_with, TestHost};

async fn run(t: &TestHost, req: RunRequest) -> RunOutcome {
    let env = t.host.load_file(fixture("calls")).await.unwrap();
    t.host.run(&env, req).await.unwrap()
}

async fn details(t: &TestHost, run_id: &str) -> RunDetails {
    t.host.run_details(run_id).await.unwrap().unwrap()
}

fn children<'a>(d: &'a RunDetails, parent: &str) -> Vec<&'a ActionRecord> {
    d.actions
        .iter()
        .filter(|a| a.parent_id.as_deref() == Some(parent))
        .collect()
}

fn text(v: &Value) -> &str {
    match v {
        Value::String(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

#[tokio::test]
async fn a_sequential_chain_records_each_child_under_its_parent() {
    let t = test_host().await;
    let out = run(&t, RunRequest::new("chain").input("n", 5i64)).await;
    assert_eq!(single_output(&out), &Value::Int(5));
    let d = details(&t, &out.run_id).await;
    assert_eq!(d.actions.len(), 6);
    let kids = children(&d, "a0");
    assert_eq!(kids.len(), 5);
    for kid in &kids {
        assert_eq!(kid.task, "add_one");
        assert_eq!(kid.phase, "succeeded");
        // Inputs were recorded before the child started, outputs when it ended.
        assert!(kid.inputs_uri.is_some() && kid.outputs_uri.is_some());
        let kinds: Vec<&str> = d
            .events
            .iter()
            .filter(|e| e.action_id == kid.id)
            .map(|e| e.kind.as_str())
            .collect();
        assert_eq!(kinds, ["created", "started", "succeeded"]);
    }
    // Only the root ends the run.
    assert_eq!(d.run.phase, "succeeded");
}

#[tokio::test]
async fn a_map_fans_out_and_collects_in_input_order() {
    let t = test_host().await;
    let out = run(
        &t,
        RunRequest::new("fan_out")
            .input("n", 200i64)
            .input("concurrency", 8i64),
    )
    .await;
    // sum of (x + 1) for x in 0..200
    assert_eq!(single_output(&out), &Value::Int(200 * 201 / 2));
    let d = details(&t, &out.run_id).await;
    assert_eq!(children(&d, "a0").len(), 200);
    assert!(d.actions.iter().all(|a| a.phase == "succeeded"));
}

#[tokio::test]
async fn submitted_calls_are_gathered_as_they_finish() {
    let t = test_host().await;
    let xs = Value::List((0..20).map(|x| Value::Int(x * 10)).collect());
    let out = run(&t, RunRequest::new("gather").input("xs", xs)).await;
    let expected = Value::List((0..20).map(|x| Value::Int(x * 10 + 1)).collect());
    assert_eq!(single_output(&out), &expected);
}

#[tokio::test]
async fn a_map_where_some_children_fail_reports_each_failure() {
    let t = test_host().await;
    let out = run(
        &t,
        RunRequest::new("map_some_fail")
            .input("n", 10i64)
            .input("every", 3i64),
    )
    .await;
    let doc = out.outputs.as_ref().unwrap();
    // 0, 3, 6, 9 fail; the rest return themselves.
    assert_eq!(doc["o0"], Value::Int(1 + 2 + 4 + 5 + 7 + 8));
    let Value::List(errors) = &doc["o1"] else {
        panic!("{doc:?}")
    };
    assert_eq!(errors.len(), 4);
    assert_eq!(text(&errors[1]), "user: 3 is bad");
    let d = details(&t, &out.run_id).await;
    let failed: Vec<_> = children(&d, "a0")
        .into_iter()
        .filter(|a| a.phase == "failed")
        .collect();
    assert_eq!(failed.len(), 4);
    assert!(failed
        .iter()
        .all(|a| a.error_kind.as_deref() == Some("user")));
    assert_eq!(d.run.phase, "succeeded");
}

#[tokio::test]
async fn a_child_error_is_handled_by_the_parent_or_fails_it_with_the_chain() {
    let t = test_host().await;
    let out = run(&t, RunRequest::new("handled").input("x", 7i64)).await;
    assert_eq!(
        text(single_output(&out)),
        "handled user from calls.fail_if: 7 is bad"
    );

    let out = run(&t, RunRequest::new("unhandled").input("x", 7i64)).await;
    let failure = out.outputs.unwrap_err();
    assert_eq!(failure.kind, "user");
    let d = details(&t, &out.run_id).await;
    let child = &children(&d, "a0")[0];
    // The parent's error names the child task, its action and the child's own error.
    assert_eq!(
        failure.message,
        format!(
            "calls.fail_if (action {}) failed: (user) 7 is bad",
            child.id
        )
    );
}

#[tokio::test]
async fn a_retried_parent_does_not_run_its_succeeded_children_again() {
    let t = test_host().await;
    let out = run(&t, RunRequest::new("fail_after_children").input("n", 6i64)).await;
    assert_eq!(single_output(&out), &Value::Int(21));
    let d = details(&t, &out.run_id).await;
    let root_attempts = d.attempts.iter().filter(|a| a.action_id == "a0").count();
    assert_eq!(root_attempts, 2);
    let kids = children(&d, "a0");
    // The second attempt made the same calls: same ids, so the same six children, each of
    // which ran exactly once.
    assert_eq!(kids.len(), 6);
    for kid in kids {
        let runs = d.attempts.iter().filter(|a| a.action_id == kid.id).count();
        assert_eq!(runs, 1, "child {} ran {runs} times", kid.id);
    }
}

#[tokio::test]
async fn each_child_has_its_own_cache_and_retries() {
    let t = test_host().await;
    let first = run(&t, RunRequest::new("cached_and_flaky").input("x", 5i64)).await;
    assert_eq!(single_output(&first), &Value::Int(15));
    let second = run(&t, RunRequest::new("cached_and_flaky").input("x", 5i64)).await;
    assert_eq!(single_output(&second), &Value::Int(15));
    for (out, cache) in [(&first, "miss"), (&second, "hit")] {
        let d = details(&t, &out.run_id).await;
        let kids = children(&d, "a0");
        let cached = kids.iter().find(|k| k.task == "cached_double").unwrap();
        assert_eq!(cached.cache_status.as_deref(), Some(cache));
        let cached_runs = d
            .attempts
            .iter()
            .filter(|a| a.action_id == cached.id)
            .count();
        assert_eq!(cached_runs, usize::from(cache == "miss"));
        // The flaky child failed once and succeeded on its own retry; the parent ran once.
        let flaky = kids.iter().find(|k| k.task == "flaky").unwrap();
        let phases: Vec<&str> = d
            .attempts
            .iter()
            .filter(|a| a.action_id == flaky.id)
            .map(|a| a.phase.as_str())
            .collect();
        assert_eq!(phases, ["failed", "succeeded"]);
        assert_eq!(d.attempts.iter().filter(|a| a.action_id == "a0").count(), 1);
    }
}

#[tokio::test]
async fn a_task_calls_a_task_of_another_environment() {
    let t = test_host().await;
    t.host.load_file(fixture("basic")).await.unwrap();
    let out = run(
        &t,
        RunRequest::new("cross").input("x", 2i64).input("y", 40i64),
    )
    .await;
    assert_eq!(single_output(&out), &Value::Int(42));
    let d = details(&t, &out.run_id).await;
    assert_eq!(children(&d, "a0")[0].task, "fixture-basic.add");
}

#[tokio::test]
async fn an_unknown_task_is_a_typed_error_naming_it() {
    let t = test_host().await;
    for (name, expected) in [
        ("nope", "no task named \"nope\" in environment calls"),
        ("fixture-none.add", "no environment named \"fixture-none\""),
        ("calls.nope", "environment calls has no task named \"nope\""),
    ] {
        let out = run(&t, RunRequest::new("call_unknown").input("task", name)).await;
        let failure = out.outputs.unwrap_err();
        assert!(
            failure.message.contains("(unknown-task)") && failure.message.contains(expected),
            "{name}: {}",
            failure.message
        );
    }
}

#[tokio::test]
async fn references_pass_from_child_to_parent_to_another_child() {
    let t = test_host().await;
    let out = run(&t, RunRequest::new("pass_refs").input("text", "hello")).await;
    let doc = out.outputs.as_ref().unwrap();
    assert_eq!(text(&doc["o0"]), "hello");
    assert_eq!(text(&doc["o1"]), "hello");
    let file = reference_of(&doc["o2"]);
    // The file lives under the child's attempt prefix, measured by the host.
    assert_eq!(file.size, Some(5));
    let d = details(&t, &out.run_id).await;
    let maker = children(&d, "a0")
        .into_iter()
        .find(|a| a.task == "make_file")
        .unwrap();
    assert!(
        file.uri.contains(&format!("/{}/1/", maker.id)),
        "{}",
        file.uri
    );
}

#[tokio::test]
async fn a_forged_reference_passed_to_a_child_is_refused() {
    let t = test_host().await;
    // A real object of another run: the caller was never given it.
    let made = run(&t, RunRequest::new("make_file").input("text", "secret")).await;
    let uri = reference_of(single_output(&made)).uri;
    let out = run(&t, RunRequest::new("forge").input("uri", uri.as_str())).await;
    let said = text(single_output(&out)).to_string();
    assert!(said.starts_with("input: inputs.file: "), "{said}");
    assert!(said.contains("not granted"), "{said}");
    let d = details(&t, &out.run_id).await;
    assert!(children(&d, "a0").is_empty(), "no child was made");
}

#[tokio::test]
async fn nesting_depth_and_actions_per_run_are_limited() {
    let limits = Limits {
        max_depth: 3,
        max_actions_per_run: 10,
        ..Limits::default()
    };
    let t = test_host_with(limits).await;
    let ok = run(&t, RunRequest::new("recurse").input("depth", 3i64)).await;
    assert_eq!(single_output(&ok), &Value::Int(3));
    let deep = run(&t, RunRequest::new("recurse").input("depth", 4i64)).await;
    let failure = deep.outputs.unwrap_err();
    assert!(
        failure
            .message
            .contains("(limit) calls nest 4 deep, above the limit of 3"),
        "{}",
        failure.message
    );

    let many = run(
        &t,
        RunRequest::new("fan_out")
            .input("n", 20i64)
            .input("concurrency", 4i64),
    )
    .await;
    let failure = many.outputs.unwrap_err();
    assert!(
        failure.message.contains("would have more than 10 actions"),
        "{}",
        failure.message
    );
    let d = details(&t, &many.run_id).await;
    assert_eq!(d.actions.len(), 10, "the root and the 9 children allowed");
}
