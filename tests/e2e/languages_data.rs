//! Python and JavaScript tasks that call tasks, trace, and pass files, directories and frames
//! (`tests/fixtures/python/py_data.py`, `tests/fixtures/js/js_data.js`): each case runs against
//! both, and the mixed-language ones call across languages.

use sluice_host::values::json::document_to_json;
use sluice_host::{RunDetails, RunOutcome, RunRequest, Value};
use sluice_tests::{attempt_log, fixture, guest, reference_of, single_output, test_host, TestHost};

const DATA: [&str; 2] = ["py_data", "js_data"];

async fn run(t: &TestHost, component: &str, req: RunRequest) -> RunOutcome {
    let env = t.host.load_file(guest(component)).await.unwrap();
    t.host.run(&env, req).await.unwrap()
}

async fn details(t: &TestHost, run_id: &str) -> RunDetails {
    t.host.run_details(run_id).await.unwrap().unwrap()
}

fn outputs_json(out: &RunOutcome) -> serde_json::Value {
    match &out.outputs {
        Ok(doc) => document_to_json(doc),
        Err(f) => panic!("run failed: {f:?}"),
    }
}

#[tokio::test]
async fn calls_in_sequence_in_parallel_and_mapped() {
    let t = test_host().await;
    for lang in DATA {
        let out = run(&t, lang, RunRequest::new("chain").input("n", 5i64)).await;
        assert_eq!(single_output(&out), &Value::Int(5), "{lang}");
        let d = details(&t, &out.run_id).await;
        assert_eq!(d.actions.len(), 6, "{lang}: the root and five children");

        let out = run(
            &t,
            lang,
            RunRequest::new("fan_out")
                .input("n", 50i64)
                .input("concurrency", 8i64),
        )
        .await;
        assert_eq!(single_output(&out), &Value::Int(1275), "{lang}");

        let out = run(
            &t,
            lang,
            RunRequest::new("gather").input(
                "xs",
                Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
            ),
        )
        .await;
        assert_eq!(
            outputs_json(&out),
            serde_json::json!({"o0": [2, 3, 4]}),
            "{lang}"
        );

        let out = run(
            &t,
            lang,
            RunRequest::new("map_some_fail")
                .input("n", 10i64)
                .input("every", 3i64),
        )
        .await;
        assert_eq!(
            outputs_json(&out),
            serde_json::json!({"o0": 27, "o1": [
                "user: 0 is bad", "user: 3 is bad", "user: 6 is bad", "user: 9 is bad"
            ]}),
            "{lang}"
        );
    }
}

#[tokio::test]
async fn child_errors_are_handled_or_fail_the_caller() {
    let t = test_host().await;
    for lang in DATA {
        let out = run(&t, lang, RunRequest::new("handled").input("x", 3i64)).await;
        assert_eq!(
            single_output(&out),
            &Value::from(format!("handled user from {lang}.fail_if: 3 is bad")),
        );
        let out = run(&t, lang, RunRequest::new("unhandled").input("x", 3i64)).await;
        let f = out.outputs.unwrap_err();
        assert_eq!(f.kind, "user", "{lang}");
        assert!(
            f.message.starts_with(&format!("{lang}.fail_if (action a"))
                && f.message.ends_with("failed: (user) 3 is bad"),
            "{lang}: {}",
            f.message
        );
    }
}

#[tokio::test]
async fn a_retry_replays_traces_without_running_them() {
    let t = test_host().await;
    for lang in DATA {
        let out = run(&t, lang, RunRequest::new("traced").input("x", 10i64)).await;
        assert_eq!(
            single_output(&out),
            &Value::Int(20 + 10 + 11 + 12),
            "{lang}"
        );
        let d = details(&t, &out.run_id).await;
        let phases: Vec<&str> = d.attempts.iter().map(|a| a.phase.as_str()).collect();
        assert_eq!(phases, ["failed", "succeeded"], "{lang}");
        let log_of = |i: usize| attempt_log(&d.attempts[i]);
        let first = log_of(0);
        assert!(
            first.contains("double ran") && first.contains("item 2 made"),
            "{lang}: {first}"
        );
        let second = log_of(1);
        assert!(
            !second.contains("double ran") && !second.contains("item"),
            "{lang}: {second}"
        );
        let replayed = d
            .events
            .iter()
            .filter(|e| e.kind == "trace-replayed")
            .count();
        assert_eq!(replayed, 2, "{lang}");
    }
}

#[tokio::test]
async fn references_pass_between_children_and_forged_ones_are_refused() {
    let t = test_host().await;
    for lang in DATA {
        let out = run(
            &t,
            lang,
            RunRequest::new("pass_refs").input("text", "hello"),
        )
        .await;
        let doc = out.outputs.as_ref().unwrap();
        assert_eq!(doc["o0"], Value::from("hello"), "{lang}");
        assert_eq!(doc["o1"], Value::from("hello"), "{lang}");
        let made = reference_of(&doc["o2"]);
        assert_eq!(made.size, Some(5), "{lang}");

        // A file of another run: named by URI, never given to these runs.
        for task in ["forge", "read_forged"] {
            let out = run(
                &t,
                lang,
                RunRequest::new(task).input("uri", made.uri.as_str()),
            )
            .await;
            let Value::String(said) = single_output(&out) else {
                panic!("{lang} {task}")
            };
            assert!(said.contains("not granted"), "{lang} {task}: {said}");
            assert!(!said.contains("hello"), "{lang} {task}: {said}");
        }
    }
}

#[tokio::test]
async fn directories_are_built_and_listed() {
    let t = test_host().await;
    for lang in DATA {
        let names = Value::List(vec![Value::from("a.txt"), Value::from("sub/b.txt")]);
        let out = run(&t, lang, RunRequest::new("make_dir").input("names", names)).await;
        let dir = single_output(&out).clone();
        let out = run(&t, lang, RunRequest::new("list_dir").input("dir", dir)).await;
        assert_eq!(
            outputs_json(&out),
            serde_json::json!({"o0": [
                {"name": "a.txt", "size": 13, "text": "this is a.txt"},
                {"name": "sub/b.txt", "size": 17, "text": "this is sub/b.txt"},
            ]}),
            "{lang}"
        );
    }
}

#[tokio::test]
async fn frames_are_written_and_read_as_column_batches_in_any_language() {
    let t = test_host().await;
    let rust = t.host.load_file(fixture("frames")).await.unwrap();
    let expected_sum = (0..2500).map(|i| i as f64 * 0.5).sum::<f64>();
    for lang in DATA {
        for format in ["parquet", "arrow-ipc", "csv"] {
            let out = run(
                &t,
                lang,
                RunRequest::new("make_frame")
                    .input("rows", 2500i64)
                    .input("format", format),
            )
            .await;
            let frame = single_output(&out).clone();
            let meta = reference_of(&frame);
            assert_eq!(
                (meta.rows, meta.format.as_deref()),
                (Some(2500), Some(format)),
                "{lang}"
            );
            let columns: Vec<&str> = meta.columns.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                columns,
                ["id", "name", "score"],
                "{lang} {format}: column order kept"
            );

            let out = run(
                &t,
                lang,
                RunRequest::new("sum_frame")
                    .input("df", frame.clone())
                    .input("column", "score")
                    .input("batch_rows", 1000i64),
            )
            .await;
            assert_eq!(
                outputs_json(&out),
                serde_json::json!({"o0": expected_sum, "o1": 3, "o2": ["score"]}),
                "{lang} {format}"
            );

            // The Rust task reads the same frame as Arrow batches.
            let out = t
                .host
                .run(
                    &rust,
                    RunRequest::new("sum_column")
                        .input("df", frame)
                        .input("column", "score")
                        .input("batch_rows", 1000i64),
                )
                .await
                .unwrap();
            let sum = &out.outputs.as_ref().unwrap()["o0"];
            assert_eq!(
                document_to_json(&[("o0".to_string(), sum.clone())].into())["o0"]["sum"],
                expected_sum
            );
        }
    }
}

#[tokio::test]
async fn tasks_call_across_languages() {
    let t = test_host().await;
    // Python calls Rust.
    t.host.load_file(fixture("basic")).await.unwrap();
    let out = run(
        &t,
        "py_data",
        RunRequest::new("cross").input("x", 2i64).input("y", 40i64),
    )
    .await;
    assert_eq!(single_output(&out), &Value::Int(42));
    let d = details(&t, &out.run_id).await;
    let child = d.actions.iter().find(|a| a.parent_id.is_some()).unwrap();
    assert_eq!(child.task, "fixture-basic.add");
    // JavaScript calls Python.
    t.host.load_file(guest("py_data")).await.unwrap();
    let out = run(&t, "js_data", RunRequest::new("cross").input("x", 41i64)).await;
    assert_eq!(single_output(&out), &Value::Int(42));
    let d = details(&t, &out.run_id).await;
    let child = d.actions.iter().find(|a| a.parent_id.is_some()).unwrap();
    assert_eq!(child.task, "py_data.add_one");
}

#[tokio::test]
async fn caching_and_seeking_work_the_same() {
    let t = test_host().await;
    for lang in DATA {
        for expected in ["miss", "hit"] {
            let out = run(&t, lang, RunRequest::new("cached_double").input("x", 21i64)).await;
            assert_eq!(single_output(&out), &Value::Int(42), "{lang}");
            let d = details(&t, &out.run_id).await;
            assert_eq!(
                d.actions[0].cache_status.as_deref(),
                Some(expected),
                "{lang}"
            );
        }
        let out = run(
            &t,
            lang,
            RunRequest::new("make_file").input("text", "hello, world"),
        )
        .await;
        let file = single_output(&out).clone();
        let out = run(
            &t,
            lang,
            RunRequest::new("tail").input("data", file).input("n", 5i64),
        )
        .await;
        assert_eq!(single_output(&out), &Value::from("world"), "{lang}");
    }
}
