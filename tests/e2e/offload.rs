//! Offloading: big inline values are stored as their own objects, invisibly to guests and
//! callers; the inline limit applies to what stays inline.

use sluice_host::values::{msgpack, RefKind, Value};
use sluice_host::{Host, Limits, RunRequest};
use sluice_tests::{fixture, workspace_root};

/// A host that offloads values above 4 KiB.
async fn offloading_host(home: &std::path::Path) -> Host {
    Host::builder()
        .home(home)
        .max_instances(4)
        .compile_cache_dir(workspace_root().join("target/test-compiled"))
        .limits(Limits {
            offload_threshold_bytes: 4096,
            ..Limits::default()
        })
        .build()
        .await
        .unwrap()
}

async fn stored_document(host: &Host, uri: &str) -> std::collections::BTreeMap<String, Value> {
    let bytes = host.store().get(uri).await.unwrap();
    msgpack::decode_document(&bytes, uri).unwrap()
}

fn is_offloaded(v: &Value) -> bool {
    matches!(v, Value::Ref(r) if r.kind == RefKind::Offloaded)
}

#[tokio::test]
async fn a_big_output_is_offloaded_and_comes_back_whole() {
    let home = tempfile::tempdir().unwrap();
    let host = offloading_host(home.path()).await;
    let env = host.load_file(fixture("basic")).await.unwrap();
    // big_output declares a 1 KiB inline limit: 100 KB fits only once offloaded.
    let out = host
        .run(
            &env,
            RunRequest::new("big_output").input("bytes", 100_000i64),
        )
        .await
        .unwrap();
    let outputs = out.outputs.expect("offloaded output accepted");
    assert_eq!(outputs["o0"], Value::String("x".repeat(100_000)));

    let details = host.run_details(&out.run_id).await.unwrap().unwrap();
    assert_eq!(details.outputs.as_ref(), Some(&outputs), "read back whole");
    let uri = details.attempts[0].outputs_uri.clone().unwrap();
    let stored = stored_document(&host, &uri).await;
    assert!(is_offloaded(&stored["o0"]), "{stored:?}");
    assert!(host.store().get(&uri).await.unwrap().len() < 1024);
}

#[tokio::test]
async fn a_big_input_is_offloaded_and_an_offloaded_value_can_be_passed_on() {
    let home = tempfile::tempdir().unwrap();
    let host = offloading_host(home.path()).await;
    let env = host.load_file(fixture("basic")).await.unwrap();
    let name = "n".repeat(10_000);
    let out = host
        .run(&env, RunRequest::new("greet").input("name", name.as_str()))
        .await
        .unwrap();
    let greeting = out.outputs.unwrap()["o0"].clone();
    let Value::String(text) = &greeting else {
        panic!("{greeting:?}")
    };
    assert!(text.contains(&name), "the guest saw the whole input");

    let details = host.run_details(&out.run_id).await.unwrap().unwrap();
    let stored_in =
        stored_document(&host, details.attempts[0].inputs_uri.as_deref().unwrap()).await;
    assert!(is_offloaded(&stored_in["name"]));
    let stored_out =
        stored_document(&host, details.attempts[0].outputs_uri.as_deref().unwrap()).await;
    assert!(is_offloaded(&stored_out["o0"]));

    // The stored (offloaded) value given as the next run's input reaches the guest whole.
    let again = host
        .run(
            &env,
            RunRequest::new("greet").input("name", stored_in["name"].clone()),
        )
        .await
        .unwrap();
    assert_eq!(again.outputs.unwrap()["o0"], greeting);
}

#[tokio::test]
async fn what_stays_inline_is_still_held_to_the_inline_limit() {
    let home = tempfile::tempdir().unwrap();
    let host = offloading_host(home.path()).await;
    let env = host.load_file(fixture("basic")).await.unwrap();
    // 3 KB stays inline (under the 4 KiB threshold) and is above the task's 1 KiB limit.
    let out = host
        .run(&env, RunRequest::new("big_output").input("bytes", 3000i64))
        .await
        .unwrap();
    let f = out.outputs.unwrap_err();
    assert_eq!(
        f.message,
        "outputs: document is 3007 bytes, above the inline limit of 1024 bytes"
    );
}
