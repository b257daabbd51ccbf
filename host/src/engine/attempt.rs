//! One attempt: a fresh store with its limits, an instance from the component's `InstancePre`,
//! one call, and a report of what happened.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::describe::{check_name, spec_from_wit};
use super::log::AttemptLog;
use super::EngineError;
use crate::bindings::{log as wit_log, types::TaskError, TaskEnvironmentPre};
use crate::data::DataSession;
use crate::executor::children::CallSession;
use crate::spec::TaskSpec;
use crate::traces::TraceSession;

/// Deadline for a component's `describe` call at load time.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Log kept for a `describe` call (only shown when describe fails).
const DESCRIBE_LOG_BYTES: usize = 16 * 1024;
/// Table growth allowed to a guest (function tables of big runtimes reach tens of thousands).
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// How much of the log's end is quoted in a trap's error text.
const TRAP_LOG_TAIL_BYTES: usize = 1024;

/// The limits of one attempt (host defaults overridden by the task's own settings).
#[derive(Debug, Clone)]
pub struct AttemptLimits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub log_bytes: usize,
}

impl AttemptLimits {
    pub(crate) fn for_describe(memory_bytes: u64) -> Self {
        AttemptLimits {
            timeout: DESCRIBE_TIMEOUT,
            memory_bytes,
            log_bytes: DESCRIBE_LOG_BYTES,
        }
    }
}

/// Why an attempt did not produce outputs.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum AttemptFailure {
    #[error("{message}")]
    User { message: String, retryable: bool },
    #[error("task failed: {0}")]
    GuestFailure(String),
    #[error("guest trapped: {0}")]
    Trap(String),
    #[error("deadline of {} ms exceeded", .limit.as_millis())]
    Deadline { limit: Duration },
    #[error("memory limit of {limit} bytes exceeded (the guest asked for {requested} bytes)")]
    MemoryLimit { limit: u64, requested: u64 },
    #[error("could not instantiate the component: {0}")]
    Instantiate(String),
}

impl AttemptFailure {
    /// Short kind stored in records: user, failure, trap, deadline, memory, instantiate.
    pub fn kind(&self) -> &'static str {
        match self {
            AttemptFailure::User { .. } => "user",
            AttemptFailure::GuestFailure(_) => "failure",
            AttemptFailure::Trap(_) => "trap",
            AttemptFailure::Deadline { .. } => "deadline",
            AttemptFailure::MemoryLimit { .. } => "memory",
            AttemptFailure::Instantiate(_) => "instantiate",
        }
    }
}

/// What one attempt did.
pub struct AttemptReport {
    /// The outputs document the guest returned (not yet validated), or why there is none.
    pub result: Result<Vec<u8>, AttemptFailure>,
    pub log: Option<String>,
    /// The attempt's data session, holding what it created (to check its outputs against).
    pub data: Option<DataSession>,
    /// Making the store and instantiating.
    pub instantiate_time: Duration,
    pub call_time: Duration,
    /// Dropping the store, which resets the instance's pool slot. Done at once rather than
    /// deferred to another thread: the next instance then reuses the same, cache-warm slot
    /// (deferring measured slower: 37-48 µs against 35 µs per recorded run in memory).
    pub teardown_time: Duration,
}

/// Caps linear memory and tables, and remembers a refused growth so the trap it causes is
/// reported as the memory limit rather than as a bare trap.
struct Limiter {
    memory_cap: u64,
    refused_request: Option<u64>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_cap {
            self.refused_request = Some(desired as u64);
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The store's data for one attempt.
pub struct AttemptState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    limiter: Limiter,
    log: AttemptLog,
    deadline_hit: bool,
    /// The attempt's view of the data plane; none while a component is described.
    pub(super) data: Option<DataSession>,
    /// Data handles (readers, writers) the guest holds open.
    pub(super) data_handles: usize,
    /// The action's checkpoints; none while a component is described.
    pub(super) trace: Option<TraceSession>,
    /// The attempt's calls to other tasks; none while a component is described.
    pub(super) calls: Option<CallSession>,
}

/// What the host hands one attempt: its data plane, its checkpoints, its calls.
pub(crate) struct Sessions {
    pub data: DataSession,
    pub trace: TraceSession,
    pub calls: CallSession,
}

impl AttemptState {
    /// Adds a line from the host itself to the attempt's log.
    pub(super) fn log_host_message(&mut self, message: &str) {
        self.log.append(format!("[HOST] {message}\n").as_bytes());
    }
}

impl WasiView for AttemptState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit_log::Host for AttemptState {
    async fn log(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            wit_log::Level::Trace => "TRACE",
            wit_log::Level::Debug => "DEBUG",
            wit_log::Level::Info => "INFO",
            wit_log::Level::Warn => "WARN",
            wit_log::Level::Error => "ERROR",
        };
        self.log.append(format!("[{level}] {message}\n").as_bytes());
        Ok(())
    }
}

impl crate::bindings::types::Host for AttemptState {}

fn new_store(
    engine: &wasmtime::Engine,
    limits: &AttemptLimits,
    sessions: Option<Sessions>,
) -> Store<AttemptState> {
    let log = AttemptLog::new(limits.log_bytes);
    // No preopened directories, environment, arguments or network: the guest gets only what the
    // host hands it through sluice's own interfaces.
    let wasi = WasiCtxBuilder::new()
        .stdout(log.clone())
        .stderr(log.clone())
        .build();
    let (data, trace, calls) = match sessions {
        Some(s) => (Some(s.data), Some(s.trace), Some(s.calls)),
        None => (None, None, None),
    };
    let state = AttemptState {
        wasi,
        table: ResourceTable::new(),
        limiter: Limiter {
            memory_cap: limits.memory_bytes,
            refused_request: None,
        },
        log,
        deadline_hit: false,
        data,
        data_handles: 0,
        trace,
        calls,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    let deadline = Instant::now() + limits.timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| {
        if Instant::now() >= deadline {
            ctx.data_mut().deadline_hit = true;
            return Err(wasmtime::Error::msg("deadline exceeded"));
        }
        // Yield at every tick so a busy guest does not hold a runtime worker to itself, through
        // tokio's own yield, which lets the runtime look at its timers and I/O before the guest
        // goes on: wasmtime's plain yield wakes the task at once, and a runtime polls its
        // drivers only every 61 tasks it runs while tasks are ready, so spinning guests held
        // back the host's heartbeats and other runs' I/O by up to 61 ticks (CI saw a run's
        // heartbeats stop 136 ms before its end at a 20 ms interval).
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store
}

/// Turns a wasmtime error from inside the guest into the failure it stands for.
fn classify(
    store: &Store<AttemptState>,
    limits: &AttemptLimits,
    err: wasmtime::Error,
) -> AttemptFailure {
    let state = store.data();
    if state.deadline_hit {
        return AttemptFailure::Deadline {
            limit: limits.timeout,
        };
    }
    if let Some(requested) = state.limiter.refused_request {
        return AttemptFailure::MemoryLimit {
            limit: limits.memory_bytes,
            requested,
        };
    }
    let mut text = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    if let Some(log) = state.log.text() {
        let start = log.len().saturating_sub(TRAP_LOG_TAIL_BYTES);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        text.push_str(&format!("; log: {}", log[start..].trim()));
    }
    AttemptFailure::Trap(text)
}

/// Runs `task` once in a fresh instance.
pub(crate) async fn run_attempt(
    engine: &wasmtime::Engine,
    pre: &TaskEnvironmentPre<AttemptState>,
    limits: &AttemptLimits,
    task: &str,
    inputs: &[u8],
    sessions: Sessions,
) -> AttemptReport {
    let started = Instant::now();
    let mut store = new_store(engine, limits, Some(sessions));
    let instance = match pre.instantiate_async(&mut store).await {
        Ok(instance) => instance,
        Err(e) => {
            let failure = match classify(&store, limits, e) {
                AttemptFailure::Trap(text) => AttemptFailure::Instantiate(text),
                other => other,
            };
            return AttemptReport {
                result: Err(failure),
                log: store.data().log.text(),
                data: store.data_mut().data.take(),
                instantiate_time: started.elapsed(),
                call_time: Duration::ZERO,
                teardown_time: Duration::ZERO,
            };
        }
    };
    let instantiated = Instant::now();
    let call = instance
        .sluice_task_environment()
        .call_run(&mut store, task, inputs)
        .await;
    let call_time = instantiated.elapsed();
    let result = match call {
        Ok(Ok(outputs)) => Ok(outputs),
        Ok(Err(TaskError::User(e))) => Err(AttemptFailure::User {
            message: e.message,
            retryable: e.retryable,
        }),
        Ok(Err(TaskError::Failure(text))) => Err(AttemptFailure::GuestFailure(text)),
        Err(e) => Err(classify(&store, limits, e)),
    };
    let log = store.data().log.text();
    let data = store.data_mut().data.take();
    let ended = Instant::now();
    drop(store);
    AttemptReport {
        result,
        log,
        data,
        instantiate_time: instantiated - started,
        call_time,
        teardown_time: ended.elapsed(),
    }
}

/// Instantiates the component once and reads its task descriptions.
pub(crate) async fn describe_component(
    engine: &wasmtime::Engine,
    pre: &TaskEnvironmentPre<AttemptState>,
    limits: &AttemptLimits,
    source_name: &str,
) -> Result<(String, Vec<TaskSpec>), EngineError> {
    let fail = |message: String| EngineError::Describe {
        source_name: source_name.to_string(),
        message,
    };
    let mut store = new_store(engine, limits, None);
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| fail(classify(&store, limits, e).to_string()))?;
    let environment = instance
        .sluice_task_environment()
        .call_name(&mut store)
        .await
        .map_err(|e| fail(classify(&store, limits, e).to_string()))?;
    check_name(&environment, "environment").map_err(|e| fail(e.to_string()))?;
    let specs = instance
        .sluice_task_environment()
        .call_describe(&mut store)
        .await
        .map_err(|e| fail(classify(&store, limits, e).to_string()))?;
    let mut tasks: Vec<TaskSpec> = Vec::with_capacity(specs.len());
    for spec in specs {
        let converted = spec_from_wit(spec).map_err(|e| fail(e.to_string()))?;
        if tasks.iter().any(|t| t.name == converted.name) {
            return Err(fail(format!(
                "task {:?} is described twice",
                converted.name
            )));
        }
        tasks.push(converted);
    }
    Ok((environment, tasks))
}
