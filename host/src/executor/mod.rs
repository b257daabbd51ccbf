//! The run lifecycle, the only place that ties engine, records and data together.
//!
//! A run is a root action and the child actions its tasks call (see [`children`]). Each action:
//! validate and store the inputs, answer from the cache when an entry fits, otherwise record it
//! as running and run attempts in fresh sandboxes until one is accepted or no retry is left;
//! each attempt's outputs are validated and stored before any record says it succeeded.

pub mod attempts;
pub mod cache;
pub mod children;
pub mod context;
pub mod offload;
pub(crate) mod run;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::data::DataError;
use crate::records::RecordsError;
use crate::values::Value;

pub use children::{Progress, ProgressSnapshot};
pub use context::RunContext;
pub use run::{execute, resume, ROOT_ACTION};

/// Host-wide defaults for every attempt; a task's own settings override them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest inputs or outputs MessagePack document (10 MiB).
    pub inline_limit_bytes: u64,
    /// Deadline of one attempt (10 minutes).
    pub timeout: Duration,
    /// Linear memory cap of one attempt (512 MiB); never above the engine's pool slot size.
    pub memory_limit_bytes: u64,
    /// Log kept per attempt: stdout, stderr and `log` calls together (1 MiB).
    pub log_limit_bytes: usize,
    /// An input or output value whose encoding is larger than this is stored as its own object
    /// and referenced from the document (1 MiB).
    pub offload_threshold_bytes: u64,
    /// Child actions running an attempt at once across the host (128, and at most half the
    /// engine's instance pool: parents waiting for children keep their instances). A parent
    /// waiting for its children does not count, so nested calls cannot starve one another.
    pub max_running_children: usize,
    /// Child actions running an attempt at once within one run (64); also the concurrency of a
    /// `map` that does not set its own.
    pub max_running_children_per_run: usize,
    /// How deep calls may nest: the root action is depth 0, its children depth 1 (8).
    pub max_depth: u32,
    /// Actions one run may create, its root included (100,000).
    pub max_actions_per_run: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            inline_limit_bytes: 10 << 20,
            timeout: Duration::from_secs(600),
            memory_limit_bytes: 512 << 20,
            log_limit_bytes: 1 << 20,
            offload_threshold_bytes: 1 << 20,
            max_running_children: 128,
            max_running_children_per_run: 64,
            max_depth: 8,
            max_actions_per_run: 100_000,
        }
    }
}

/// What to run and where it belongs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub task: String,
    pub inputs: BTreeMap<String, Value>,
    pub project: String,
    pub domain: String,
    /// Store URL for the references this run creates (Flyte's raw-data prefix); none: the
    /// host's default store. Inputs and outputs documents stay in the default store.
    pub raw_data_path: Option<String>,
    /// Run even when a cache entry fits, and replace the entry with this run's outputs.
    pub overwrite_cache: bool,
    /// Counts of the run's child actions, updated as they start and end (for progress bars).
    pub progress: Option<Arc<Progress>>,
}

impl RunRequest {
    /// A request for `task` in the default project and domain (`default` / `development`).
    pub fn new(task: impl Into<String>) -> Self {
        RunRequest {
            task: task.into(),
            inputs: BTreeMap::new(),
            project: "default".to_string(),
            domain: "development".to_string(),
            raw_data_path: None,
            overwrite_cache: false,
            progress: None,
        }
    }

    /// Counts the run's child actions into `progress` as they start and end.
    pub fn progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Runs even when the cache holds an entry, and replaces the entry.
    pub fn overwrite_cache(mut self, on: bool) -> Self {
        self.overwrite_cache = on;
        self
    }

    pub fn input(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.inputs.insert(name.into(), value.into());
        self
    }

    pub fn inputs(mut self, inputs: BTreeMap<String, Value>) -> Self {
        self.inputs = inputs;
        self
    }

    /// Sends the references this run creates to another store (`file:///dir`, `s3://bucket/prefix` ...).
    pub fn raw_data_path(mut self, url: impl Into<String>) -> Self {
        self.raw_data_path = Some(url.into());
        self
    }

    pub fn scope(mut self, project: impl Into<String>, domain: impl Into<String>) -> Self {
        self.project = project.into();
        self.domain = domain.into();
        self
    }
}

/// Why a recorded run failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFailure {
    /// user | input | output | failure | trap | deadline | memory | instantiate | lost
    pub kind: String,
    pub message: String,
    /// For user errors: whether the task said another attempt could succeed.
    pub retryable: bool,
}

impl RunFailure {
    /// Errors in the task's own logic or in what it was given, as opposed to system failures.
    pub fn is_user_error(&self) -> bool {
        matches!(self.kind.as_str(), "user" | "input")
    }
}

/// Where the time of a run went.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RunTimings {
    /// Making the store and instantiating the component.
    pub instantiate: Duration,
    pub call: Duration,
    /// Dropping the instance (resetting its pool slot).
    pub teardown: Duration,
    /// Validation, encoding, object store writes and database writes.
    pub record: Duration,
    pub total: Duration,
}

/// A recorded run's outcome.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub outputs: Result<BTreeMap<String, Value>, RunFailure>,
    pub log: Option<String>,
    pub timings: RunTimings,
}

/// A run that could not be started or recorded (a task that failed is an `Ok(RunOutcome)`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("no task named {task:?} in {component} (it has: {known})")]
    UnknownTask {
        task: String,
        component: String,
        known: String,
    },
    #[error("task {task}: asks for {asked} bytes of memory, above the host's maximum of {max}")]
    MemoryAboveMaximum { task: String, asked: u64, max: u64 },
    #[error("no run {0} is recorded")]
    UnknownRun(String),
    #[error("run {run} was made by component {recorded}, not by {given}")]
    WrongComponent {
        run: String,
        recorded: String,
        given: String,
    },
    /// `--resume` of a run another live process is running: both would run its actions.
    #[error(
        "run {run} is still running in process {pid} on {hostname}: let it finish, or stop \
         that process before resuming the run"
    )]
    StillRunning {
        run: String,
        pid: u32,
        hostname: String,
    },
    /// `--resume` of a run whose host, on another machine, reported recently.
    #[error(
        "run {run} is still running {on}: its host reported {seconds_ago} s ago; let it \
         finish, or stop that process and resume the run once its host has been silent for \
         {stale_after_secs} s"
    )]
    StillReporting {
        run: String,
        /// `in process <pid> on <hostname>`, or `on another machine` when the run's row does
        /// not say.
        on: String,
        seconds_ago: u64,
        stale_after_secs: u64,
    },
    /// While this host ran the run, another process claimed it (a resume that took this host
    /// for stopped, its heartbeat having been silent too long): stopped here.
    #[error(
        "run {0} was taken over by another process (a resume that found this host silent): \
         stopped here; that process continues it"
    )]
    TakenOver(String),
    /// Two resumes of one run at once: the other one claimed it first.
    #[error("run {0} was resumed by another process just now")]
    ClaimedElsewhere(String),
    #[error("{uri}: recorded document unreadable: {message}")]
    Corrupt { uri: String, message: String },
    /// Refused before anything is recorded: a run must not point at a store it cannot open.
    #[error("raw-data path: {0}")]
    RawDataPath(#[source] DataError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error(transparent)]
    Component(#[from] context::ComponentError),
}
