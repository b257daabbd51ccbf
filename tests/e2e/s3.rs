//! `s3://` stores against a real S3-compatible server (moto) on 127.0.0.1.

use sluice_host::data::DataStore;
use sluice_host::values::RefKind;
use sluice_host::{Host, RunRequest};
use sluice_tests::s3::S3Server;
use sluice_tests::{fixture, read_object, reference_of, single_output, workspace_root};

const CSV: &str = "id,name\n1,ada\n2,bob\n3,cy\n";

async fn host_with(
    home: &std::path::Path,
    configure: impl FnOnce(sluice_host::HostBuilder) -> sluice_host::HostBuilder,
) -> Host {
    configure(
        Host::builder()
            .home(home)
            .max_instances(8)
            .compile_cache_dir(workspace_root().join("target/test-compiled")),
    )
    .build()
    .await
    .unwrap()
}

#[tokio::test]
async fn a_host_on_an_s3_store_keeps_documents_files_and_frames_there() {
    let server = S3Server::shared();
    server.create_bucket("sluice-home");
    let home = tempfile::tempdir().unwrap();
    let host = host_with(home.path(), |b| b.store_url("s3://sluice-home/home")).await;

    let local = home.path().join("people.csv");
    std::fs::write(&local, CSV).unwrap();
    let input = host
        .upload(&local, RefKind::File, "default", "development")
        .await
        .unwrap();
    assert!(
        input
            .uri
            .starts_with("s3://sluice-home/home/default/development/uploads/"),
        "{}",
        input.uri
    );

    let files = host.load_file(fixture("files")).await.unwrap();
    let out = host
        .run(
            &files,
            RunRequest::new("drop_column")
                .input("data", input.to_value())
                .input("column", "name"),
        )
        .await
        .unwrap();
    let made = reference_of(single_output(&out));
    assert!(
        made.uri
            .starts_with("s3://sluice-home/home/default/development/r"),
        "{}",
        made.uri
    );
    assert_eq!(read_object(&host, &made.uri).await, b"id\n1\n2\n3\n");
    let details = host.run_details(&out.run_id).await.unwrap().unwrap();
    assert!(details.attempts[0]
        .outputs_uri
        .as_deref()
        .unwrap()
        .starts_with("s3://sluice-home/home/"));
    assert!(
        details.outputs.is_some(),
        "the outputs document reads back from S3"
    );

    // Frames: written through a multipart upload, read back fetched from the store. 300,000
    // rows (9.6 MB of batches) take the encoder past its inline threshold onto its own thread.
    let frames = host.load_file(fixture("frames")).await.unwrap();
    let made = host
        .run(
            &frames,
            RunRequest::new("produce_parquet").input("rows", 300_000i64),
        )
        .await
        .unwrap();
    let df = single_output(&made).clone();
    let sum = host
        .run(
            &frames,
            RunRequest::new("sum_column")
                .input("df", df)
                .input("column", "d")
                .input("batch_rows", 30_000i64),
        )
        .await
        .unwrap();
    let got = sluice_host::values::json::to_json(single_output(&sum));
    assert_eq!(
        (got["sum"].as_f64(), got["batches"].as_i64()),
        (Some(300_000.0), Some(10))
    );
}

#[tokio::test]
async fn raw_data_goes_to_s3_and_inputs_come_only_from_allowed_prefixes() {
    let server = S3Server::shared();
    server.create_bucket("sluice-ext");
    server.create_bucket("sluice-raw");
    let shared = DataStore::open("s3://sluice-ext/shared").unwrap();
    let shared_uri = shared.put("x.csv", CSV.as_bytes().to_vec()).await.unwrap();
    let private = DataStore::open("s3://sluice-ext/private").unwrap();
    let private_uri = private.put("y.csv", CSV.as_bytes().to_vec()).await.unwrap();

    let home = tempfile::tempdir().unwrap();
    let host = host_with(home.path(), |b| b.allow_prefix("s3://sluice-ext/shared")).await;
    let files = host.load_file(fixture("files")).await.unwrap();
    let file =
        |uri: &str| sluice_host::values::reference::RefMeta::new(RefKind::File, uri).to_value();

    // An existing object under an allowed prefix is passed without copying.
    let out = host
        .run(
            &files,
            RunRequest::new("drop_column")
                .input("data", file(&shared_uri))
                .input("column", "id")
                .raw_data_path("s3://sluice-raw/runs"),
        )
        .await
        .unwrap();
    let made = reference_of(single_output(&out));
    let expected = format!(
        "s3://sluice-raw/runs/default/development/{}/a0/1/o1-dropped.csv",
        out.run_id
    );
    assert_eq!(made.uri, expected);
    assert_eq!(read_object(&host, &made.uri).await, b"name\nada\nbob\ncy\n");

    // The same bucket outside the allowed prefix is refused.
    let out = host
        .run(
            &files,
            RunRequest::new("checksum").input("data", file(&private_uri)),
        )
        .await
        .unwrap();
    let f = out.outputs.expect_err("a private object must be refused");
    assert_eq!(f.kind, "input");
    assert!(f.message.contains("not under any store"), "{f:?}");
}
