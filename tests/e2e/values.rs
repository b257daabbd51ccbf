//! Happy paths for every value kind.

use serde_json::json;
use sluice_host::values::json::{document_to_json, to_json};
use sluice_host::{RunRequest, Value};
use sluice_tests::{fixture, test_host};

#[tokio::test]
async fn add_one() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let out = t
        .host
        .run(&env, RunRequest::new("add_one").input("x", 41i64))
        .await
        .unwrap();
    let outputs = out.outputs.unwrap();
    assert_eq!(outputs.get("o0"), Some(&Value::Int(42)));
    let details = t.host.run_details(&out.run_id).await.unwrap().unwrap();
    assert_eq!(details.run.phase, "succeeded");
    assert_eq!(document_to_json(details.inputs.as_ref().unwrap()), json!({"x": 41}));
    assert_eq!(document_to_json(details.outputs.as_ref().unwrap()), json!({"o0": 42}));
    let _ = to_json(&Value::None);
}
