//! DataFrames: written by a guest as Arrow batches, stored as Parquet, Arrow IPC or CSV, read
//! back with the column choice and batch size pushed down to the host.

use sluice_host::values::json::to_json;
use sluice_host::values::reference::RefMeta;
use sluice_host::values::{RefKind, Value};
use sluice_host::RunOutcome;
use sluice_tests::{read_object, reference_of, run_fixture, single_output, test_host, TestHost};

async fn run(t: &TestHost, task: &str, inputs: Vec<(&str, Value)>) -> RunOutcome {
    run_fixture(t, "frames", task, inputs).await
}

fn output(out: &RunOutcome) -> &Value {
    single_output(out)
}

fn failure_message(out: &RunOutcome) -> &str {
    &out.outputs
        .as_ref()
        .expect_err("the run should fail")
        .message
}

fn frame(value: &Value) -> RefMeta {
    reference_of(value)
}

fn four_float_columns() -> Vec<(String, String)> {
    ["a", "b", "c", "d"]
        .iter()
        .map(|n| (n.to_string(), "Float64".to_string()))
        .collect()
}

/// Sum of 0..n.
fn triangle(n: i64) -> f64 {
    (n * (n - 1) / 2) as f64
}

async fn produce_and_sum(t: &TestHost, producer: &str, format: &str, rows: i64, column: &str) {
    let made = run(t, producer, vec![("rows", Value::Int(rows))]).await;
    let df = frame(output(&made));
    assert_eq!(df.kind, RefKind::DataFrame);
    assert_eq!(df.format.as_deref(), Some(format));
    assert_eq!(df.rows, Some(rows as u64));
    assert_eq!(df.columns, four_float_columns());
    // Size and SHA-256 are the stored bytes' (the host hashed them while storing: on two
    // threads for IPC, one that writes and hashes for Parquet, once past 1 MiB).
    let stored = read_object(&t.host, &df.uri).await;
    assert!(
        stored.len() > 1 << 20,
        "{} bytes: big enough for the storing threads",
        stored.len()
    );
    assert_eq!(df.size, Some(stored.len() as u64));
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored));
    assert_eq!(df.sha256.as_deref(), Some(digest.as_str()));

    let sum = run(
        t,
        "sum_column",
        vec![
            ("df", df.to_value()),
            ("column", column.into()),
            ("batch_rows", Value::Int(50_000)),
        ],
    )
    .await;
    let got = to_json(output(&sum));
    let expected = match column {
        "b" => 2.0 * triangle(rows),
        "c" => triangle(rows) / 2.0,
        _ => unreachable!(),
    };
    assert_eq!(got["sum"], expected, "{got}");
    assert_eq!(got["rows"], rows);
    assert_eq!(got["columns"], serde_json::json!([column]), "projection");
    assert_eq!(got["largest_batch"], 50_000.min(rows));
}

#[tokio::test]
async fn a_parquet_frame_is_written_then_one_column_read_in_batches() {
    let t = test_host().await;
    produce_and_sum(&t, "produce_parquet", "parquet", 200_000, "b").await;
}

#[tokio::test]
async fn an_arrow_ipc_frame_is_written_then_one_column_read_in_batches() {
    let t = test_host().await;
    produce_and_sum(&t, "produce_ipc", "arrow-ipc", 150_001, "c").await;
}

#[tokio::test]
async fn a_frame_of_several_million_rows_is_read_in_batches() {
    let t = test_host().await;
    let rows = 3_000_000;
    let made = run(&t, "produce_parquet", vec![("rows", Value::Int(rows))]).await;
    let df = frame(output(&made));
    let sum = run(
        &t,
        "sum_column",
        vec![
            ("df", df.to_value()),
            ("column", "d".into()),
            ("batch_rows", Value::Int(65_536)),
        ],
    )
    .await;
    let got = to_json(output(&sum));
    assert_eq!(got["sum"], rows as f64);
    assert_eq!(got["batches"], (rows + 65_535) / 65_536);
}

#[tokio::test]
async fn a_csv_frame_is_read_with_its_schema_inferred() {
    let t = test_host().await;
    let path = t.home.path().join("scores.csv");
    std::fs::write(&path, "name,score\nada,90\nbob,80\ncy,72\n").unwrap();
    let df = t
        .host
        .upload(&path, RefKind::DataFrame, "default", "development")
        .await
        .unwrap();
    assert_eq!(df.format.as_deref(), Some("csv"));
    let sum = run(
        &t,
        "sum_column",
        vec![
            ("df", df.to_value()),
            ("column", "score".into()),
            ("batch_rows", Value::Int(2)),
        ],
    )
    .await;
    let got = to_json(output(&sum));
    assert_eq!(
        (got["sum"].as_f64(), got["batches"].as_i64()),
        (Some(242.0), Some(2))
    );
}

#[tokio::test]
async fn a_bad_column_and_a_schema_mismatch_are_named() {
    let t = test_host().await;
    let made = run(&t, "produce_parquet", vec![("rows", Value::Int(10))]).await;
    let df = frame(output(&made));
    let bad = run(
        &t,
        "sum_column",
        vec![
            ("df", df.to_value()),
            ("column", "zz".into()),
            ("batch_rows", Value::Int(10)),
        ],
    )
    .await;
    let message = failure_message(&bad);
    assert!(
        message.contains("no column \"zz\" (columns: a, b, c, d)"),
        "{message}"
    );

    let wrong = run(&t, "wrong_schema", vec![]).await;
    let message = failure_message(&wrong);
    assert!(
        message.contains(
            "schema differs from the declared one: column \"a\" is Float64, declared Int64"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_record_field_holds_a_frame_of_the_declared_format() {
    let t = test_host().await;
    let item =
        |table: &Value| Value::record([("name", Value::from("t")), ("table", table.clone())]);
    let ipc = run(&t, "produce_ipc", vec![("rows", Value::Int(1234))]).await;
    let refused = run(&t, "count_rows", vec![("item", item(output(&ipc)))]).await;
    let message = failure_message(&refused);
    assert!(
        message.starts_with("inputs.item.table: expected a dataframe in format \"parquet\", got format \"arrow-ipc\""),
        "{message}"
    );

    let parquet = run(&t, "produce_parquet", vec![("rows", Value::Int(1234))]).await;
    let out = run(&t, "count_rows", vec![("item", item(output(&parquet)))]).await;
    assert_eq!(output(&out), &Value::Int(1234));
}

#[tokio::test]
async fn an_uploaded_parquet_file_carries_its_rows_and_columns() {
    let t = test_host().await;
    let made = run(&t, "produce_parquet", vec![("rows", Value::Int(777))]).await;
    let stored = frame(output(&made));
    let local = t.home.path().join("table.parquet");
    std::fs::copy(stored.uri.strip_prefix("file://").unwrap(), &local).unwrap();
    let uploaded = t
        .host
        .upload(&local, RefKind::DataFrame, "default", "development")
        .await
        .unwrap();
    assert_eq!(uploaded.format.as_deref(), Some("parquet"));
    assert_eq!(uploaded.rows, Some(777));
    assert_eq!(uploaded.columns, four_float_columns());
    assert_eq!(uploaded.sha256, stored.sha256);
}
