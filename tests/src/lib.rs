//! Shared support for the end-to-end tests: fixture components built once per test run, and
//! hosts on throwaway homes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sluice_host::Host;

pub mod s3;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Builds the guest components once per test process (`scripts/build-guests.sh`: the Rust
/// fixtures and examples, and the Python and JS fixtures, which it rebuilds only when their
/// sources changed) and returns the directory holding the `.wasm` files. If a Python or JS
/// toolchain cannot be installed, this fails the test run and says why: the language tests do
/// not pass by skipping.
pub fn fixtures_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let mut build = Command::new("bash");
        build.arg(root.join("scripts/build-guests.sh")).env(
            "CARGO",
            std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        );
        run_cargo(build, "the guest components (scripts/build-guests.sh)");
        root.join("target/wasm32-wasip2/release")
    })
}

/// Variables `cargo test` sets for the test process about the package under test. A nested
/// build must not see them: some builds record such a variable (ring's build records
/// `CARGO_MANIFEST_DIR`), so a nested build that saw the test's values compiled ring, rustls
/// and the host again, and the next `cargo test` compiled them back, about a minute each time.
fn set_by_cargo_for_the_test(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    EXACT.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

/// Cargo, for builds started from inside a test, with the environment the test run started in.
fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_the_test) {
            cargo.env_remove(name);
        }
    }
    cargo
}

/// Runs a build and fails the test run, naming what was built, if it fails.
fn run_cargo(mut build: Command, what: &str) {
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("building {what}: {e}"));
    assert!(status.success(), "building {what} failed (see above)");
}

/// The example environment of `examples/tasks`.
pub fn example_orders() -> PathBuf {
    fixtures_dir().join("example_orders.wasm")
}

/// The path of a built Rust fixture component, e.g. `fixture("basic")`.
pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(format!("fixture_{name}.wasm"))
}

/// The path of any built guest component by its file name, e.g. `guest("py_basic")`.
pub fn guest(name: &str) -> PathBuf {
    fixtures_dir().join(format!("{name}.wasm"))
}

/// A host on a fresh temporary home (SQLite file + local store), removed on drop.
pub struct TestHost {
    pub host: Host,
    pub home: tempfile::TempDir,
}

/// Environment variable holding a PostgreSQL server URL: when set, every test host gets a fresh
/// database on that server instead of a SQLite file (`scripts/test.sh` runs the suite both ways).
pub const POSTGRES_ENV: &str = "SLUICE_TEST_POSTGRES";

/// The database a new test host uses: a SQLite file in its home, or a new PostgreSQL database
/// when [`POSTGRES_ENV`] is set.
pub async fn test_database_url(home: &Path) -> String {
    match std::env::var(POSTGRES_ENV) {
        Ok(server) if !server.is_empty() => fresh_postgres_database(&server).await,
        _ => format!("sqlite://{}/sluice.db", home.display()),
    }
}

/// Creates an empty database on the server at `server_url` and returns its URL.
pub async fn fresh_postgres_database(server_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("t{}", ulid_like());
    let mut conn = sqlx::PgConnection::connect(server_url)
        .await
        .expect("connecting to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    let base = server_url.rsplit_once('/').map_or(server_url, |(b, _)| b);
    format!("{base}/{name}")
}

/// A name no other test process picks: time, process id and a counter.
fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos:x}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn test_host() -> TestHost {
    test_host_with(sluice_host::Limits::default()).await
}

/// A test host with its own limits.
pub async fn test_host_with(limits: sluice_host::Limits) -> TestHost {
    let home = tempfile::tempdir().expect("temporary home");
    let host = Host::builder()
        .home(home.path())
        .limits(limits)
        .database_url(test_database_url(home.path()).await)
        // Keep the pool small: many tests run at once in one process.
        .max_instances(16)
        // Compile each fixture once per test run, not once per test (big guests take seconds).
        .compile_cache_dir(workspace_root().join("target/test-compiled"))
        .build()
        .await
        .expect("building the host");
    TestHost { host, home }
}

/// The `sluice` command, built once per test process (`cargo test` builds the host's binary
/// only in test mode). Built for the whole workspace, as `cargo test --workspace` builds the
/// host library, so the command links the library that test build made: built for the host
/// package alone (`-p sluice-host`), its dependencies resolve other features and the host and
/// some of them compile again, about a minute on every test run.
pub fn sluice_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        let mut build = cargo();
        build
            .args([
                "build",
                "--quiet",
                "--workspace",
                "--bin",
                "sluice",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"));
        run_cargo(build, "the sluice command");
        root.join("target/debug/sluice")
    })
}

/// Runs the `sluice` command on `home` and waits for it.
pub fn sluice(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(sluice_bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("running sluice")
}

/// Runs `task` of fixture `component` with the given inputs (project `default`).
pub async fn run_fixture(
    t: &TestHost,
    component: &str,
    task: &str,
    inputs: Vec<(&str, sluice_host::Value)>,
) -> sluice_host::RunOutcome {
    let env = t.host.load_file(fixture(component)).await.unwrap();
    let inputs: std::collections::BTreeMap<String, sluice_host::Value> = inputs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    t.host
        .run(&env, sluice_host::RunRequest::new(task).inputs(inputs))
        .await
        .unwrap()
}

/// Runs `task` of a loaded component with JSON inputs, converted through the task's descriptor
/// as the CLI converts them.
pub async fn run_json_inputs(
    t: &TestHost,
    env: &std::sync::Arc<sluice_host::engine::LoadedComponent>,
    task: &str,
    inputs: &serde_json::Value,
) -> sluice_host::RunOutcome {
    use sluice_host::values::json::document_from_json;
    let spec = env
        .task(task)
        .unwrap_or_else(|| panic!("{}: no task {task}", env.source_name));
    let given: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_value(inputs.clone()).expect("inputs must be a JSON object");
    let inputs = document_from_json(given, &spec.interface.inputs, "inputs").unwrap();
    t.host
        .run(env, sluice_host::RunRequest::new(task).inputs(inputs))
        .await
        .unwrap()
}

/// The log an attempt wrote to the local store; empty when it wrote none (then it has no log).
pub fn attempt_log(attempt: &sluice_host::records::AttemptRecord) -> String {
    match &attempt.log_uri {
        Some(uri) => {
            let path = uri
                .strip_prefix("file://")
                .expect("a log in the local store");
            std::fs::read_to_string(path).expect("reading an attempt's log")
        }
        None => String::new(),
    }
}

/// The single output `o0` of a run that must have succeeded.
pub fn single_output(out: &sluice_host::RunOutcome) -> &sluice_host::Value {
    match &out.outputs {
        Ok(doc) => &doc["o0"],
        Err(f) => panic!("run failed: {f:?}"),
    }
}

/// What a reference value says (panics on anything else).
pub fn reference_of(value: &sluice_host::Value) -> sluice_host::values::reference::RefMeta {
    use sluice_host::values::reference::RefMeta;
    match value {
        sluice_host::Value::Ref(r) => {
            RefMeta::from_reference(r, &sluice_host::values::ValuePath::root("o0")).unwrap()
        }
        other => panic!("not a reference: {other:?}"),
    }
}

/// Every byte of an object, read through the host as `sluice cat` does.
pub async fn read_object(host: &Host, uri: &str) -> Vec<u8> {
    let mut reader = host.open_uri(uri).await.unwrap();
    let mut out = Vec::new();
    loop {
        let chunk = reader.read(1 << 16).await.unwrap();
        if chunk.is_empty() {
            return out;
        }
        out.extend(chunk);
    }
}
