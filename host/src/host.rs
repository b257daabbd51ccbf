//! The embedding API: build a [`Host`], load components, run their tasks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_host::{Host, RunRequest};
//! let host = Host::builder().home("/tmp/sluice-home").build().await?;
//! let env = host.load_file("tasks.wasm").await?;
//! let outcome = host
//!     .run(&env, RunRequest::new("add").input("x", 1i64).input("y", 2i64).scope("acme", "prod"))
//!     .await?;
//! println!("{:?}", outcome.outputs);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;

use crate::data::{DataError, DataStore, Stores};
use crate::engine::{Engine, EngineConfig, EngineError, LoadedComponent};
use crate::executor::context::ComponentError;
use crate::executor::offload::{read_document, OffloadError};
use crate::executor::{
    execute, resume, Limits, Progress, RunContext, RunError, RunOutcome, RunRequest, ROOT_ACTION,
};
use crate::gc::{GcError, GcReport};
use crate::records::heartbeat::{HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL_MAX};
use crate::records::{
    now_micros, ActionRecord, AttemptRecord, EventRecord, Records, RecordsError, RunFilter,
    RunRecord,
};
use crate::values::Value;

/// Environment variable naming the sluice home (default `.sluice` in the working directory).
pub const HOME_ENV: &str = "SLUICE_HOME";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Gc(#[from] GcError),
    /// A builder setting out of its range.
    #[error("{0}")]
    Setting(String),
}

impl From<ComponentError> for HostError {
    fn from(e: ComponentError) -> Self {
        match e {
            ComponentError::Io { path, message } => HostError::Io { path, message },
            ComponentError::Engine(e) => HostError::Engine(e),
            ComponentError::Records(e) => HostError::Records(e),
        }
    }
}

/// Builds a [`Host`]. Every setting has an embedded default: a SQLite file and a local object
/// store directory under the home, so nothing needs a server.
#[derive(Debug, Clone, Default)]
pub struct HostBuilder {
    home: Option<PathBuf>,
    database_url: Option<String>,
    store_url: Option<String>,
    limits: Limits,
    pooling: Option<bool>,
    max_instances: Option<u32>,
    max_memory_bytes: Option<u64>,
    allowed_prefixes: Vec<String>,
    compile_cache_dir: Option<PathBuf>,
    on_demand_inodes: bool,
    heartbeat_interval: Option<Duration>,
}

impl HostBuilder {
    /// The directory holding the default database, object store and compile cache.
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }
    /// `sqlite:///abs/file.db`, `sqlite::memory:`, or (later) `postgres://...`.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }
    /// `file:///abs/dir` or `memory://`.
    pub fn store_url(mut self, url: impl Into<String>) -> Self {
        self.store_url = Some(url.into());
        self
    }
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Pooling instance allocator (on by default).
    pub fn pooling(mut self, on: bool) -> Self {
        self.pooling = Some(on);
        self
    }
    /// Instances alive at once (the pool's size; 256 by default).
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = Some(n);
        self
    }
    /// Largest memory any attempt may be granted (4 GiB by default).
    pub fn max_memory_bytes(mut self, n: u64) -> Self {
        self.max_memory_bytes = Some(n);
        self
    }

    /// Where compiled components are cached (default: `compiled/` in the home). Hosts with the
    /// same engine settings can share one.
    pub fn compile_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.compile_cache_dir = Some(dir.into());
        self
    }

    /// Makes every directory and file of a run's documents when it is written, on the run's
    /// own path. By default a local store makes them ahead on a thread of its own once a host
    /// starts its second run (see `data/spares.rs`), because making inodes is most of a
    /// durable run's time on ext4. The benchmarks use this for their baseline.
    pub fn on_demand_inodes(mut self) -> Self {
        self.on_demand_inodes = true;
        self
    }

    /// How often the host records that its runs still run ([`HEARTBEAT_INTERVAL`] by default,
    /// at most [`HEARTBEAT_INTERVAL_MAX`]). Processes on other machines sharing the database
    /// take a run whose host has been silent for
    /// [`HEARTBEAT_STALE_AFTER`](crate::records::heartbeat::HEARTBEAT_STALE_AFTER) for stopped,
    /// and let `--resume` continue it (see `records/heartbeat.rs`).
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.heartbeat_interval = Some(every);
        self
    }

    /// Lets runs take inputs under this URL prefix (`file:///shared/data`, later `s3://bucket/x`)
    /// without copying them. Anything outside the host's stores and these prefixes is refused.
    pub fn allow_prefix(mut self, url: impl Into<String>) -> Self {
        self.allowed_prefixes.push(url.into());
        self
    }

    pub async fn build(self) -> Result<Host, HostError> {
        let heartbeat = self.heartbeat_interval.unwrap_or(HEARTBEAT_INTERVAL);
        if heartbeat.is_zero() || heartbeat > HEARTBEAT_INTERVAL_MAX {
            return Err(HostError::Setting(format!(
                "heartbeat interval {heartbeat:?}: must be above zero and at most {:?}",
                HEARTBEAT_INTERVAL_MAX
            )));
        }
        let home = match self.home {
            Some(h) => h,
            None => std::env::var_os(HOME_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".sluice")),
        };
        let io_err = |path: &Path, e: std::io::Error| HostError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&home).map_err(|e| io_err(&home, e))?;
        let home = std::fs::canonicalize(&home).map_err(|e| io_err(&home, e))?;
        let compile_cache = self
            .compile_cache_dir
            .unwrap_or_else(|| home.join("compiled"));
        let mut engine_config = EngineConfig::new(compile_cache);
        if let Some(p) = self.pooling {
            engine_config.pooling = p;
        }
        if let Some(n) = self.max_instances {
            engine_config.max_instances = n;
        }
        if let Some(n) = self.max_memory_bytes {
            engine_config.max_memory_bytes = n;
        }
        let database_url = self
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", home.join("sluice.db").display()));
        let store_url = self
            .store_url
            .unwrap_or_else(|| format!("file://{}", home.join("store").display()));
        let engine = Engine::new(engine_config)?;
        let records = Records::connect(&database_url).await?;
        let mut store = DataStore::open(&store_url)?;
        if !self.on_demand_inodes {
            store = store.make_inodes_ahead(&format!("{ROOT_ACTION}/1"));
        }
        let mut stores = Stores::new(store.clone());
        for prefix in &self.allowed_prefixes {
            stores.add(DataStore::open(prefix)?);
            stores.allow_prefix(prefix);
        }
        let ctx = Arc::new(RunContext::new(
            engine,
            records,
            store,
            Arc::new(stores),
            self.limits,
        ));
        report_live_runs(Arc::downgrade(&ctx), heartbeat);
        Ok(Host { ctx, home })
    }
}

/// Records every `every` that the host still runs its live runs, for as long as the host
/// exists (the task holds the host only while it writes).
fn report_live_runs(ctx: Weak<RunContext>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; a run is created with its first heartbeat.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(ctx) = ctx.upgrade() else { break };
            // A beat that fails is skipped: the next comes within `every`, and a run counts as
            // stopped only after three intervals or more of silence.
            let _ = ctx.records.heartbeat(now_micros()).await;
        }
    });
}

/// A run as recorded, with its documents decoded.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetails {
    pub run: RunRecord,
    pub actions: Vec<ActionRecord>,
    pub attempts: Vec<AttemptRecord>,
    pub events: Vec<EventRecord>,
    #[serde(skip)]
    pub inputs: Option<BTreeMap<String, Value>>,
    #[serde(skip)]
    pub outputs: Option<BTreeMap<String, Value>>,
    pub log: Option<String>,
}

/// The sluice host: an engine, a database, an object store, and the loaded components.
pub struct Host {
    ctx: Arc<RunContext>,
    home: PathBuf,
}

impl Host {
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    pub fn home(&self) -> &Path {
        &self.home
    }
    pub fn records(&self) -> &Records {
        &self.ctx.records
    }
    pub fn store(&self) -> &DataStore {
        &self.ctx.store
    }
    /// Every store references resolve against (the default store first).
    pub fn stores(&self) -> &Arc<Stores> {
        &self.ctx.stores
    }
    pub fn limits(&self) -> &Limits {
        &self.ctx.limits
    }

    /// Loads a component file (see [`Host::load_bytes`]).
    pub async fn load_file(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<Arc<LoadedComponent>, HostError> {
        let path = path.as_ref().display().to_string();
        Ok(self.ctx.load_file(&path).await?)
    }

    /// Loads a component: compiles it (or maps its cached machine code), asks it to describe its
    /// tasks, and registers it. Loading the same bytes again returns the same component. Its
    /// tasks can then be called by tasks of other components as `<environment>.<task>`.
    pub async fn load_bytes(
        &self,
        bytes: &[u8],
        source_name: &str,
    ) -> Result<Arc<LoadedComponent>, HostError> {
        Ok(self.ctx.load_bytes(bytes, source_name).await?)
    }

    /// Runs a task of a loaded component and records the run.
    pub async fn run(
        &self,
        component: &Arc<LoadedComponent>,
        request: RunRequest,
    ) -> Result<RunOutcome, RunError> {
        execute(&self.ctx, component, request).await
    }

    /// Continues a run whose host stopped before it ended (see [`resume`]), loading its
    /// component from where it was first loaded; a run that ended is returned as recorded.
    pub async fn resume(&self, run_id: &str) -> Result<RunOutcome, HostError> {
        let Some((run, _, _)) = self.ctx.records.run(run_id).await? else {
            return Err(RunError::UnknownRun(run_id.to_string()).into());
        };
        let source = self
            .ctx
            .records
            .component_source(&run.component_digest)
            .await?
            .unwrap_or_default();
        let component = self.load_file(&source).await?;
        Ok(self.resume_with(&component, run_id, None).await?)
    }

    /// Continues a run with a component the caller loaded (it must be the run's own), counting
    /// its child actions into `progress` when given.
    pub async fn resume_with(
        &self,
        component: &Arc<LoadedComponent>,
        run_id: &str,
        progress: Option<Arc<Progress>>,
    ) -> Result<RunOutcome, RunError> {
        resume(&self.ctx, component, run_id, progress).await
    }

    /// Removes the objects of runs that ended more than `older_than` ago, and the cache
    /// entries pointing into them (see [`crate::gc`]).
    pub async fn gc(
        &self,
        older_than: std::time::Duration,
        dry_run: bool,
    ) -> Result<GcReport, HostError> {
        Ok(crate::gc::collect(&self.ctx.records, &self.ctx.store, older_than, dry_run).await?)
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, HostError> {
        Ok(self.ctx.records.list_runs(filter).await?)
    }

    /// A recorded run with its inputs, outputs and log read back from the store.
    pub async fn run_details(&self, run_id: &str) -> Result<Option<RunDetails>, HostError> {
        let Some((run, actions, attempts)) = self.ctx.records.run(run_id).await? else {
            return Ok(None);
        };
        let root = actions.iter().find(|a| a.parent_id.is_none());
        // Documents that gc removed (or that a cache hit points at and gc removed since) are
        // shown as absent rather than failing the whole view.
        let inputs = self
            .read_if_present(root.and_then(|a| a.inputs_uri.as_deref()), "inputs")
            .await?;
        let outputs = self
            .read_if_present(root.and_then(|a| a.outputs_uri.as_deref()), "outputs")
            .await?;
        let root_attempt = root.and_then(|r| attempts.iter().rfind(|a| a.action_id == r.id));
        let log = match root_attempt.and_then(|a| a.log_uri.as_deref()) {
            Some(uri) => match self.ctx.store.get(uri).await {
                Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                Err(DataError::Missing { .. }) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let events = self.ctx.records.events(run_id).await?;
        Ok(Some(RunDetails {
            run,
            actions,
            attempts,
            events,
            inputs,
            outputs,
            log,
        }))
    }

    async fn read_if_present(
        &self,
        uri: Option<&str>,
        side: &str,
    ) -> Result<Option<BTreeMap<String, Value>>, HostError> {
        let Some(uri) = uri else { return Ok(None) };
        match self.read_document(uri, side).await {
            Ok(doc) => Ok(Some(doc)),
            Err(HostError::Data(DataError::Missing { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A recorded document, with its offloaded values brought back.
    async fn read_document(
        &self,
        uri: &str,
        side: &str,
    ) -> Result<BTreeMap<String, Value>, HostError> {
        read_document(&self.ctx.store, &self.ctx.stores, uri, side)
            .await
            .map_err(|e| match e {
                OffloadError::Document(e) => HostError::Data(e),
                other => HostError::Io {
                    path: uri.to_string(),
                    message: other.to_string(),
                },
            })
    }
}
