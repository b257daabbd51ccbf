//! Files and directories passed by reference: streamed through host handles, granted only to
//! the attempts that hold them.

use std::path::Path;

use sha2::{Digest, Sha256};
use sluice_host::values::reference::RefMeta;
use sluice_host::values::{RefKind, Value};
use sluice_host::{RunFailure, RunOutcome, RunRequest};
use sluice_tests::{
    fixture, read_object, reference_of, run_fixture, single_output, test_host, TestHost,
};

const PEOPLE_CSV: &str = "id,name,score\n1,ada,90\n2,bob,80\n3,cy,70\n4,di,60\n5,ed,50\n";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `content` to `name` in a temporary directory and uploads it as a file input.
async fn upload_text(t: &TestHost, name: &str, content: &str, project: &str) -> RefMeta {
    let dir = t.home.path().join("local");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    t.host
        .upload(&path, RefKind::File, project, "development")
        .await
        .unwrap()
}

async fn run(t: &TestHost, task: &str, inputs: Vec<(&str, Value)>) -> RunOutcome {
    run_fixture(t, "files", task, inputs).await
}

fn output(out: &RunOutcome) -> &Value {
    single_output(out)
}

fn failure(out: &RunOutcome) -> &RunFailure {
    out.outputs.as_ref().expect_err("the run should fail")
}

fn meta(value: &Value) -> RefMeta {
    reference_of(value)
}

async fn read_uri(t: &TestHost, uri: &str) -> Vec<u8> {
    read_object(&t.host, uri).await
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn csv_is_shuffled_then_a_column_dropped_through_references() {
    let t = test_host().await;
    let input = upload_text(&t, "people.csv", PEOPLE_CSV, "default").await;
    assert_eq!(input.format.as_deref(), Some("csv"));
    assert_eq!(
        input.sha256.as_deref(),
        Some(sha256_hex(PEOPLE_CSV.as_bytes()).as_str())
    );

    let shuffled = run(
        &t,
        "shuffle_rows",
        vec![("data", input.to_value()), ("seed", Value::Int(7))],
    )
    .await;
    let shuffled = meta(output(&shuffled));
    let text = String::from_utf8(read_uri(&t, &shuffled.uri).await).unwrap();
    assert!(text.starts_with("id,name,score\n"), "{text}");
    assert_ne!(text, PEOPLE_CSV, "rows should move for this seed");
    assert_eq!(sorted_lines(&text), sorted_lines(PEOPLE_CSV));
    // The host measured what the guest wrote.
    assert_eq!(shuffled.size, Some(text.len() as u64));
    assert_eq!(
        shuffled.sha256.as_deref(),
        Some(sha256_hex(text.as_bytes()).as_str())
    );
    assert_eq!(shuffled.format.as_deref(), Some("csv"));

    // One task's output is the next one's input.
    let dropped = run(
        &t,
        "drop_column",
        vec![("data", shuffled.to_value()), ("column", "score".into())],
    )
    .await;
    let dropped = meta(output(&dropped));
    let text = String::from_utf8(read_uri(&t, &dropped.uri).await).unwrap();
    assert_eq!(
        sorted_lines(&text),
        vec!["1,ada", "2,bob", "3,cy", "4,di", "5,ed", "id,name"]
    );

    let bad = run(
        &t,
        "drop_column",
        vec![("data", shuffled.to_value()), ("column", "age".into())],
    )
    .await;
    assert_eq!(
        failure(&bad).message,
        "column \"age\" not in the data (columns: id, name, score)"
    );
}

#[tokio::test]
async fn uploading_the_same_bytes_twice_stores_them_once() {
    let t = test_host().await;
    let a = upload_text(&t, "same.csv", PEOPLE_CSV, "default").await;
    let b = upload_text(&t, "same.csv", PEOPLE_CSV, "default").await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn a_directory_is_listed_with_the_hash_of_each_entry() {
    let t = test_host().await;
    let local = t.home.path().join("tree");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("a.txt"), "alpha").unwrap();
    std::fs::write(local.join("sub/b.txt"), "beta").unwrap();
    let dir = t
        .host
        .upload(&local, RefKind::Dir, "default", "development")
        .await
        .unwrap();
    assert_eq!(dir.size, Some(9));
    let out = run(&t, "list_dir", vec![("dir", dir.to_value())]).await;
    let entries = sluice_host::values::json::to_json(output(&out));
    assert_eq!(
        entries,
        serde_json::json!([
            {"name": "a.txt", "size": 5, "sha256": sha256_hex(b"alpha")},
            {"name": "sub/b.txt", "size": 4, "sha256": sha256_hex(b"beta")},
        ])
    );
}

/// Reads land in the guest's own buffers (the host reads the file into guest memory, the SDK
/// lends the caller's buffer): every byte must arrive in order whatever the buffer size, across
/// the SDK's 1 MiB read chunk and after a seek.
#[tokio::test]
async fn multi_chunk_reads_deliver_every_byte_in_order() {
    let t = test_host().await;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..(3 << 20) + 12_345)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = t.home.path().join("random.bin");
    std::fs::write(&path, &bytes).unwrap();
    let file = t
        .host
        .upload(&path, RefKind::File, "default", "development")
        .await
        .unwrap();

    // 64 KiB reads, hashed in the guest.
    let out = run(&t, "checksum", vec![("data", file.to_value())]).await;
    let entry = sluice_host::values::json::to_json(output(&out));
    assert_eq!(entry["sha256"], sha256_hex(&bytes));
    assert_eq!(entry["size"], bytes.len());

    // Odd-sized reads (3 KiB) and reads larger than the SDK's chunk (2 MiB), written back out.
    for chunk_kib in [3, 2048] {
        let out = run(
            &t,
            "copy_file",
            vec![
                ("data", file.to_value()),
                ("chunk_kib", Value::Int(chunk_kib)),
            ],
        )
        .await;
        let copy = meta(output(&out));
        assert_eq!(
            read_uri(&t, &copy.uri).await,
            bytes,
            "chunk of {chunk_kib} KiB"
        );
    }

    let out = run(
        &t,
        "count_bytes",
        vec![("data", file.to_value()), ("chunk_kib", Value::Int(1024))],
    )
    .await;
    assert_eq!(output(&out), &Value::Int(bytes.len() as i64));
}

#[tokio::test]
async fn a_list_of_files_is_concatenated_and_seek_reads_the_end() {
    let t = test_host().await;
    let a = upload_text(&t, "a.txt", "hello ", "default").await;
    let b = upload_text(&t, "b.txt", "world", "default").await;
    let out = run(
        &t,
        "concat",
        vec![("files", Value::List(vec![a.to_value(), b.to_value()]))],
    )
    .await;
    let joined = meta(output(&out));
    assert_eq!(read_uri(&t, &joined.uri).await, b"hello world");

    let out = run(
        &t,
        "tail",
        vec![("data", joined.to_value()), ("n", Value::Int(5))],
    )
    .await;
    assert_eq!(output(&out), &Value::String("world".into()));
}

#[tokio::test]
async fn a_record_field_holds_a_file_and_a_new_directory_is_built() {
    let t = test_host().await;
    let f = upload_text(&t, "x.bin", "payload", "default").await;
    let item = Value::record([("label", Value::from("tag")), ("file", f.to_value())]);
    let out = run(&t, "relabel", vec![("item", item)]).await;
    let Value::Map(fields) = output(&out) else {
        panic!("not a record")
    };
    assert_eq!(fields["label"], Value::from("TAG"));
    assert_eq!(meta(&fields["file"]).uri, f.uri);

    let names = Value::List(vec!["one".into(), "nested/two".into()]);
    let out = run(
        &t,
        "make_dir",
        vec![("names", names), ("extra", f.to_value())],
    )
    .await;
    let dir = meta(output(&out));
    assert_eq!(dir.kind, RefKind::Dir);
    assert_eq!(dir.size, Some(3 + 10 + 7));
    let listing = t.host.list_uri(&dir.uri).await.unwrap();
    let names: Vec<&str> = listing.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["extra.bin", "nested/two", "one"]);
    assert_eq!(
        read_uri(&t, &format!("{}/extra.bin", dir.uri)).await,
        b"payload"
    );
    assert_eq!(
        read_uri(&t, &format!("{}/nested/two", dir.uri)).await,
        b"nested/two"
    );
}

#[tokio::test]
async fn references_the_attempt_does_not_hold_are_not_granted() {
    let t = test_host().await;
    let mine = upload_text(&t, "secret.txt", "secret", "default").await;

    // A URI string the guest was not given: refused though the object exists.
    let out = run(&t, "read_uri", vec![("uri", mine.uri.clone().into())]).await;
    let f = failure(&out);
    assert!(f.message.contains("not granted"), "{f:?}");
    assert!(!f.message.contains("secret\""), "{f:?}");

    // A reference it made up cannot be handed on as an output either.
    let out = run(&t, "return_uri", vec![("uri", mine.uri.clone().into())]).await;
    let f = failure(&out);
    assert_eq!(f.kind, "output");
    assert!(f.message.starts_with("outputs.o0: "), "{f:?}");
    assert!(f.message.contains("not granted"), "{f:?}");

    // Another project's object, passed as an input.
    let theirs = upload_text(&t, "theirs.txt", "theirs", "other").await;
    let out = run(&t, "checksum", vec![("data", theirs.to_value())]).await;
    let f = failure(&out);
    assert_eq!(f.kind, "input");
    assert!(f.message.starts_with("inputs.data: "), "{f:?}");
    assert!(f.message.contains("belongs to project \"other\""), "{f:?}");

    // A path outside every store.
    let out = run(
        &t,
        "checksum",
        vec![(
            "data",
            RefMeta::new(RefKind::File, "file:///etc/passwd").to_value(),
        )],
    )
    .await;
    assert!(
        failure(&out).message.contains("not under any store"),
        "{:?}",
        failure(&out)
    );
}

#[tokio::test]
async fn directory_entries_cannot_escape_their_directory() {
    let t = test_host().await;
    let local = t.home.path().join("box");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("in.txt"), "inside").unwrap();
    let dir = t
        .host
        .upload(&local, RefKind::Dir, "default", "development")
        .await
        .unwrap();
    let ok = run(
        &t,
        "read_entry",
        vec![("dir", dir.to_value()), ("name", "in.txt".into())],
    )
    .await;
    assert_eq!(output(&ok), &Value::from("inside"));

    for name in ["../x", "/etc/passwd", "a/../../x", "./in.txt"] {
        let out = run(
            &t,
            "read_entry",
            vec![("dir", dir.to_value()), ("name", name.into())],
        )
        .await;
        assert!(
            failure(&out).message.contains("not granted"),
            "{name}: {:?}",
            failure(&out)
        );
    }

    // A symbolic link planted in the stored directory is neither listed nor followed.
    let stored = Path::new(dir.uri.strip_prefix("file://").unwrap());
    std::os::unix::fs::symlink("/etc/hostname", stored.join("link")).unwrap();
    let out = run(
        &t,
        "read_entry",
        vec![("dir", dir.to_value()), ("name", "link".into())],
    )
    .await;
    assert!(
        failure(&out).message.contains("link"),
        "{:?}",
        failure(&out)
    );
    let out = run(&t, "list_dir", vec![("dir", dir.to_value())]).await;
    assert!(
        failure(&out).message.contains("symbolic link"),
        "{:?}",
        failure(&out)
    );
}

#[tokio::test]
async fn a_missing_object_is_named_and_a_failed_write_leaves_nothing() {
    let t = test_host().await;
    let gone = upload_text(&t, "gone.txt", "soon gone", "default").await;
    std::fs::remove_file(gone.uri.strip_prefix("file://").unwrap()).unwrap();
    let out = run(&t, "checksum", vec![("data", gone.to_value())]).await;
    let f = failure(&out);
    assert!(
        f.message.contains(&gone.uri) && f.message.contains("missing"),
        "{f:?}"
    );

    for finish in [false, true] {
        let out = run(&t, "write_then_fail", vec![("finish", Value::Bool(finish))]).await;
        assert_eq!(failure(&out).kind, "user");
        let d = t.host.run_details(&out.run_id).await.unwrap().unwrap();
        assert_eq!(d.attempts[0].outputs_uri, None);
        let attempt_dir = Path::new(
            d.attempts[0]
                .inputs_uri
                .as_deref()
                .unwrap()
                .strip_prefix("file://")
                .unwrap(),
        )
        .parent()
        .unwrap()
        .to_path_buf();
        let mut names: Vec<String> = std::fs::read_dir(&attempt_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if finish {
            // A finished file is an object, but no record points at it.
            assert_eq!(names, ["inputs.msgpack", "o1-partial.bin"]);
        } else {
            assert_eq!(names, ["inputs.msgpack"]);
        }
    }
    let temp = t.home.path().join("store/.sluice-tmp");
    let left = std::fs::read_dir(&temp).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "temporary objects left behind");
}

#[tokio::test]
async fn a_run_sends_its_raw_data_to_another_store_and_keeps_documents_home() {
    let t = test_host().await;
    let raw = tempfile::tempdir().unwrap();
    let raw_url = format!("file://{}", raw.path().display());
    let input = upload_text(&t, "people.csv", PEOPLE_CSV, "default").await;
    let env = t.host.load_file(fixture("files")).await.unwrap();
    let out = t
        .host
        .run(
            &env,
            RunRequest::new("shuffle_rows")
                .input("data", input.to_value())
                .input("seed", 1i64)
                .raw_data_path(&raw_url),
        )
        .await
        .unwrap();
    let made = meta(output(&out));
    let expected = format!(
        "{raw_url}/default/development/{}/a0/1/o1-shuffled.csv",
        out.run_id
    );
    assert_eq!(made.uri, expected);
    assert!(Path::new(expected.strip_prefix("file://").unwrap()).is_file());
    let d = t.host.run_details(&out.run_id).await.unwrap().unwrap();
    let home_store = format!("file://{}", t.home.path().join("store").display());
    assert!(d.attempts[0]
        .outputs_uri
        .as_deref()
        .unwrap()
        .starts_with(&home_store));
}
