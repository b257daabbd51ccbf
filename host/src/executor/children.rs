//! Tasks calling tasks. A parent attempt's `tasks` calls land in its [`CallSession`], which
//! checks what the parent passes, numbers the call, and spawns the child on the runtime; the
//! child is an action under the parent, recorded (inputs first) before it starts, with its own
//! cache, limits and retries (see [`run_child`]).
//!
//! A child's id is derived from its parent's id, the task, the hash of its inputs and the
//! call's sequence number in the parent's attempt (see [`child_action_id`]). A retried or
//! resumed parent that makes the same calls in the same order therefore meets its children
//! again: one that succeeded gives its recorded outputs back without running, one that failed
//! or was cut off runs again with its attempts numbered on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::attempts::{check_refs, run_attempts, stored_form, ActionRun};
use super::context::RunContext;
use super::offload::read_document;
use super::run::{attempt_limits, begin_action, Begun, NewAction};
use super::{cache, RunError, RunFailure};
use crate::data::{AttemptPrefix, DataSession, DataStore};
use crate::engine::LoadedComponent;
use crate::records::{now_micros, NewRun, StartRecord, PHASE_RUNNING, PHASE_SUCCEEDED};
use crate::values::reference::{collect_refs, RefMeta};
use crate::values::validate::conform_document;
use crate::values::{msgpack, Value};

/// Why a call gave no outputs; reaches the caller as the WIT `call-error`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    /// The task called, `<environment>.<task>`.
    pub task: String,
    /// The child action; empty when the call was refused before a child was made.
    pub action: String,
    /// The child's error kind, or `unknown-task` / `limit` / `input` for a refused call.
    pub kind: String,
    pub message: String,
    pub retryable: bool,
}

impl CallFailure {
    fn refused(task: &str, kind: &str, message: impl Into<String>) -> Self {
        CallFailure {
            task: task.to_string(),
            action: String::new(),
            kind: kind.to_string(),
            message: message.into(),
            retryable: false,
        }
    }

    fn of_child(task: &str, action: &str, f: RunFailure) -> Self {
        CallFailure {
            task: task.to_string(),
            action: action.to_string(),
            retryable: super::attempts::worth_retrying(&f),
            kind: f.kind,
            message: f.message,
        }
    }

    fn host(task: &str, action: &str, e: RunError) -> Self {
        CallFailure {
            task: task.to_string(),
            action: action.to_string(),
            kind: "failure".into(),
            message: format!("the host could not run the call: {e}"),
            retryable: true,
        }
    }
}

/// What a finished child gave back.
pub type CallResult = Result<BTreeMap<String, Value>, CallFailure>;

/// Counts of a run's child actions, for progress displays.
#[derive(Debug, Default)]
pub struct Progress {
    /// Calls made so far.
    pub total: AtomicU64,
    /// Calls finished, successfully or not.
    pub done: AtomicU64,
    pub failed: AtomicU64,
    /// Calls answered by an earlier success of the same child or by the cache.
    pub reused: AtomicU64,
    /// The run's id, once it is recorded (a command that is interrupted says which run).
    pub run_id: std::sync::OnceLock<String>,
}

impl Progress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            total: self.total.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub reused: u64,
}

/// A run's raw-data path (`--raw-data-path`) and its store, opened once for the whole run:
/// every attempt of every action writes its new objects there.
pub struct RawData {
    pub url: String,
    /// Why the store would not open, when it did not: each attempt fails with it as an input
    /// error (a resumed run whose store has gone since).
    pub store: Result<DataStore, String>,
}

/// What the actions of one run share.
pub struct RunShared {
    pub run_id: String,
    pub project: String,
    pub domain: String,
    /// Where the run's new objects go when not in the host's store.
    pub raw_data: Option<RawData>,
    /// Actions created so far, the root included (`Limits::max_actions_per_run`).
    actions: AtomicU64,
    /// Children of this run running an attempt (`Limits::max_running_children_per_run`).
    running: Arc<Semaphore>,
    pub progress: Arc<Progress>,
}

impl RunShared {
    pub fn new(
        ctx: &RunContext,
        run_id: &str,
        project: &str,
        domain: &str,
        raw_data: Option<RawData>,
        existing_actions: u64,
        progress: Arc<Progress>,
    ) -> Arc<Self> {
        // The first run to use a progress counter names it (children share their run's).
        let _ = progress.run_id.set(run_id.to_string());
        Arc::new(RunShared {
            run_id: run_id.to_string(),
            project: project.to_string(),
            domain: domain.to_string(),
            raw_data,
            actions: AtomicU64::new(existing_actions),
            running: Arc::new(Semaphore::new(
                ctx.limits.max_running_children_per_run.max(1),
            )),
            progress,
        })
    }
}

/// The permits a running child holds: one of its run's, one of the host's.
pub struct RunningPermits {
    _run: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

/// Waits for a running slot in the run and in the host (always in that order).
pub async fn acquire_running(ctx: &RunContext, run: &RunShared) -> Option<RunningPermits> {
    let run_permit = run.running.clone().acquire_owned().await.ok()?;
    let host_permit = ctx.running_children.clone().acquire_owned().await.ok()?;
    Some(RunningPermits {
        _run: run_permit,
        _host: host_permit,
    })
}

/// A child action's id: `a` and 24 hex digits of SHA-256 over the parent's id, the task's
/// qualified name, the input hash and the call's sequence number in the parent's attempt.
pub fn child_action_id(parent: &str, task: &str, input_hash: &str, seq: u64) -> String {
    let mut h = Sha256::new();
    for part in [parent, task, input_hash, &seq.to_string()] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("a{}", &hex::encode(h.finalize())[..24])
}

/// A spawned child; dropping it (its caller's attempt ended) stops the child, since nobody
/// waits for it any more (a retried caller calls it again and finds it cut off).
struct Child(JoinHandle<(u64, CallResult)>);

impl Drop for Child {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::future::Future for Child {
    type Output = Result<(u64, CallResult), tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// One call, checked and numbered, ready to run.
struct Call {
    task: String,
    seq: u64,
    inputs: BTreeMap<String, Value>,
}

/// A parent attempt's calls.
pub struct CallSession {
    ctx: Arc<RunContext>,
    run: Arc<RunShared>,
    caller: Arc<LoadedComponent>,
    parent_id: String,
    /// The caller's start, written before any child's row (it may still be held).
    caller_start: Arc<StartRecord>,
    /// The caller's depth: the root action is 0.
    depth: u32,
    /// The caller's attempt: on attempt 1 it has no children from before (a resumed or retried
    /// action always gets a later attempt), so looking them up can be skipped.
    attempt: u32,
    next_seq: u64,
    /// The caller's own running permits when it is a child; given up while it waits.
    held: Option<RunningPermits>,
    pending: FuturesUnordered<Child>,
}

impl CallSession {
    /// The calls of attempt `attempt` of `caller`, which holds `held` when it is a child.
    pub fn new(
        ctx: Arc<RunContext>,
        caller: &ActionRun<'_>,
        attempt: u32,
        held: Option<RunningPermits>,
    ) -> Self {
        CallSession {
            ctx,
            run: caller.run.clone(),
            caller: caller.component.clone(),
            parent_id: caller.action_id.clone(),
            caller_start: caller.start.clone(),
            depth: caller.depth,
            attempt,
            next_seq: 0,
            held,
            pending: FuturesUnordered::new(),
        }
    }

    /// Decodes and checks a call's inputs: every reference in them must be one the caller may
    /// open (one it created is passed with what the host measured of it).
    fn prepare(
        &mut self,
        task: &str,
        inputs: &[u8],
        data: &DataSession,
    ) -> Result<Call, CallFailure> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.run.progress.total.fetch_add(1, Ordering::Relaxed);
        let refuse = |kind: &str, message: String| CallFailure::refused(task, kind, message);
        let doc = msgpack::decode_document(inputs, "inputs")
            .map_err(|e| refuse("input", e.to_string()))?;
        let doc = check_refs(doc, "inputs", data).map_err(|e| refuse("input", e.to_string()))?;
        if self.depth + 1 > self.ctx.limits.max_depth {
            return Err(refuse(
                "limit",
                format!(
                    "calls nest {} deep, above the limit of {} (Limits::max_depth)",
                    self.depth + 1,
                    self.ctx.limits.max_depth
                ),
            ));
        }
        let made = self.run.actions.fetch_add(1, Ordering::Relaxed) + 1;
        if made > self.ctx.limits.max_actions_per_run {
            self.run.actions.fetch_sub(1, Ordering::Relaxed);
            return Err(refuse(
                "limit",
                format!(
                    "run {} would have more than {} actions (Limits::max_actions_per_run)",
                    self.run.run_id, self.ctx.limits.max_actions_per_run
                ),
            ));
        }
        Ok(Call {
            task: task.to_string(),
            seq,
            inputs: doc,
        })
    }

    fn spawn(&self, call: Call) -> Child {
        let ctx = self.ctx.clone();
        let run = self.run.clone();
        let caller = self.caller.clone();
        let parent = self.parent_id.clone();
        let parent_start = self.caller_start.clone();
        let depth = self.depth + 1;
        let may_exist = self.attempt > 1;
        Child(tokio::spawn(async move {
            let seq = call.seq;
            let result = match parent_start.write(&ctx.records).await {
                Ok(()) => run_child(&ctx, &run, &caller, &parent, depth, may_exist, call).await,
                Err(e) => Err(CallFailure::host(&call.task, "", e.into())),
            };
            let progress = &run.progress;
            if result.is_err() {
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
            progress.done.fetch_add(1, Ordering::Relaxed);
            (seq, result)
        }))
    }

    fn finished(&self, failure: CallFailure) -> CallResult {
        self.run.progress.failed.fetch_add(1, Ordering::Relaxed);
        self.run.progress.done.fetch_add(1, Ordering::Relaxed);
        Err(failure)
    }

    /// Gives up the caller's running permits while it waits, so its children can run.
    fn pause(&mut self) {
        self.held = None;
    }

    async fn resume(&mut self, was_holding: bool) {
        if was_holding {
            self.held = acquire_running(&self.ctx, &self.run).await;
        }
    }

    /// Runs one call and waits for it.
    pub async fn call(&mut self, task: &str, inputs: &[u8], data: &DataSession) -> CallResult {
        let call = match self.prepare(task, inputs, data) {
            Ok(call) => call,
            Err(f) => return self.finished(f),
        };
        let holding = self.held.is_some();
        self.pause();
        let handle = self.spawn(call);
        let result = joined(task, handle.await);
        self.resume(holding).await;
        result
    }

    /// Starts a call; its result comes from [`CallSession::wait_next`].
    pub fn submit(&mut self, task: &str, inputs: &[u8], data: &DataSession) -> u64 {
        let seq = self.next_seq;
        match self.prepare(task, inputs, data) {
            Ok(call) => self.pending.push(self.spawn(call)),
            Err(f) => {
                let result = self.finished(f);
                self.pending
                    .push(Child(tokio::spawn(async move { (seq, result) })));
            }
        }
        seq
    }

    /// The next submitted call to finish; none when none is left.
    pub async fn wait_next(&mut self) -> Option<(u64, CallResult)> {
        if self.pending.is_empty() {
            return None;
        }
        let holding = self.held.is_some();
        self.pause();
        let next = self.pending.next().await;
        self.resume(holding).await;
        next.map(|joined_result| match joined_result {
            Ok(done) => done,
            Err(e) => (
                u64::MAX,
                Err(CallFailure::refused("", "failure", e.to_string())),
            ),
        })
    }

    /// Runs `task` once per inputs document, at most `concurrency` at a time, and returns the
    /// results in the order of `inputs`.
    pub async fn map(
        &mut self,
        task: &str,
        inputs: &[Vec<u8>],
        concurrency: u32,
        data: &DataSession,
    ) -> Vec<CallResult> {
        // Numbered and checked in order before any starts, so ids do not depend on timing.
        let calls: Vec<Result<Call, CallFailure>> = inputs
            .iter()
            .map(|doc| self.prepare(task, doc, data))
            .collect();
        let concurrency = match concurrency {
            0 => self.ctx.limits.max_running_children_per_run,
            n => n as usize,
        };
        let holding = self.held.is_some();
        self.pause();
        let this = &*self;
        let results = futures::stream::iter(calls)
            .map(|call| async move {
                match call {
                    Ok(call) => joined(task, this.spawn(call).await),
                    Err(f) => this.finished(f),
                }
            })
            .buffered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        self.resume(holding).await;
        results
    }
}

fn joined(task: &str, result: Result<(u64, CallResult), tokio::task::JoinError>) -> CallResult {
    match result {
        Ok((_, result)) => result,
        Err(e) => Err(CallFailure::refused(
            task,
            "failure",
            format!("the call stopped: {e}"),
        )),
    }
}

/// Finds the component and spec `task` names: a task of the caller's environment, or
/// `<environment>.<task>` of another registered one.
async fn resolve(
    ctx: &RunContext,
    caller: &Arc<LoadedComponent>,
    task: &str,
) -> Result<(Arc<LoadedComponent>, String), CallFailure> {
    if caller.task(task).is_some() {
        return Ok((caller.clone(), task.to_string()));
    }
    let unknown = |message: String| CallFailure::refused(task, "unknown-task", message);
    let Some((environment, name)) = task.rsplit_once('.') else {
        return Err(unknown(format!(
            "no task named {task:?} in environment {} (for another environment's task, call \
             \"<environment>.<task>\")",
            caller.environment
        )));
    };
    let component = if environment == caller.environment {
        caller.clone()
    } else {
        ctx.environment(environment)
            .await
            .map_err(|e| unknown(format!("environment {environment}: {e}")))?
            .ok_or_else(|| {
                unknown(format!(
                    "no environment named {environment:?} is loaded or registered"
                ))
            })?
    };
    if component.task(name).is_none() {
        return Err(unknown(format!(
            "environment {environment} has no task named {name:?}"
        )));
    }
    Ok((component, name.to_string()))
}

/// Runs one child action to its end and gives back its outputs (whole).
async fn run_child(
    ctx: &Arc<RunContext>,
    run: &Arc<RunShared>,
    caller: &Arc<LoadedComponent>,
    parent_id: &str,
    depth: u32,
    may_exist: bool,
    call: Call,
) -> CallResult {
    let (component, name) = resolve(ctx, caller, &call.task).await?;
    let qualified = component.qualified_name(&name);
    let Some(spec) = component.task(&name) else {
        return Err(CallFailure::refused(
            &qualified,
            "unknown-task",
            "task vanished",
        ));
    };
    let inputs = conform_document(call.inputs, &spec.interface.inputs, "inputs")
        .map_err(|e| CallFailure::refused(&qualified, "input", e.to_string()))?;
    let inputs_bytes = msgpack::encode_document(&inputs);
    let input_hash = hex::encode(Sha256::digest(&inputs_bytes));
    let action_id = child_action_id(parent_id, &qualified, &input_hash, call.seq);
    let host_err = |e: RunError| CallFailure::host(&qualified, &action_id, e);
    let limits = attempt_limits(spec, &ctx.limits, ctx.engine.config().max_memory_bytes)
        .map_err(|e| CallFailure::refused(&qualified, "limit", e.to_string()))?;
    let inline_limit = spec
        .inline_limit_bytes
        .unwrap_or(ctx.limits.inline_limit_bytes);
    // The name recorded for the child: plain in the caller's environment, qualified otherwise.
    let recorded_task = if Arc::ptr_eq(&component, caller) {
        name.clone()
    } else {
        qualified.clone()
    };
    let mut action = ActionRun {
        component: component.clone(),
        spec,
        limits,
        inline_limit,
        run: run.clone(),
        depth,
        run_id: run.run_id.clone(),
        action_id: action_id.clone(),
        start: StartRecord::written(),
        project: run.project.clone(),
        domain: run.domain.clone(),
        inputs_uri: String::new(),
        inputs,
        inputs_bytes,
        input_failure: None,
        cache: None,
    };

    let recorded = match may_exist {
        true => ctx
            .records
            .action(&run.run_id, &action_id)
            .await
            .map_err(|e| host_err(e.into()))?,
        false => None,
    };
    let (first, reserved) = match recorded {
        Some((record, _)) if record.phase == PHASE_SUCCEEDED => {
            run.progress.reused.fetch_add(1, Ordering::Relaxed);
            let uri = record.outputs_uri.unwrap_or_default();
            return read_document(&ctx.store, &ctx.stores, &uri, "outputs")
                .await
                .map_err(|e| {
                    host_err(RunError::Corrupt {
                        uri,
                        message: e.to_string(),
                    })
                });
        }
        Some((record, attempts)) => {
            // Called again after it failed, or after a host stop cut it off.
            let mut last = 0;
            for a in &attempts {
                last = last.max(a.attempt as u32);
                if a.phase == PHASE_RUNNING {
                    ctx.records
                        .mark_attempt_lost(&run.run_id, &action_id, a.attempt as u32)
                        .await
                        .map_err(|e| host_err(e.into()))?;
                }
            }
            action.inputs_uri = record.inputs_uri.unwrap_or_default();
            let next = last + 1;
            ctx.records
                .reopen_action(
                    &run.run_id,
                    &action_id,
                    next,
                    &action.inputs_uri,
                    format!("called again by {parent_id}; attempt {next}"),
                )
                .await
                .map_err(|e| host_err(e.into()))?;
            (next, false)
        }
        None => match start_new(ctx, &mut action, parent_id, &recorded_task).await? {
            Started::Answered(outputs) => {
                run.progress.reused.fetch_add(1, Ordering::Relaxed);
                return Ok(outputs);
            }
            Started::Recorded { reserved } => (1, reserved),
        },
    };
    let result = run_attempts(ctx, &action, first, 0).await;
    if let (true, Some(plan)) = (reserved, &action.cache) {
        // Given back whatever happened, or waiting runs would wait for nothing.
        let _ = ctx
            .records
            .cache_release(&plan.key, &plan.scope, &run.run_id)
            .await;
    }
    match result {
        Ok(done) => done
            .outputs
            .map_err(|f| CallFailure::of_child(&qualified, &action_id, f)),
        Err(e) => Err(host_err(e)),
    }
}

enum Started {
    /// The cache answered: the child is recorded as a hit and nothing runs.
    Answered(BTreeMap<String, Value>),
    /// The child is recorded and its first attempt may start; `reserved` when it holds the key
    /// of a serialized cache.
    Recorded { reserved: bool },
}

/// Stores a new child's inputs and records it, unless the cache answers it.
async fn start_new(
    ctx: &Arc<RunContext>,
    action: &mut ActionRun<'_>,
    parent_id: &str,
    recorded_task: &str,
) -> Result<Started, CallFailure> {
    let qualified = action.component.qualified_name(&action.spec.name);
    let host_err = |e: RunError| CallFailure::host(&qualified, &action.action_id, e);
    let prefix = AttemptPrefix::new(
        &action.project,
        &action.domain,
        &action.run_id,
        &action.action_id,
        1,
    );
    let stored = stored_form(
        ctx,
        &prefix,
        "inputs",
        &action.inputs,
        &action.inputs_bytes,
        action.inline_limit,
    )
    .await
    .map_err(host_err)?
    .map_err(|f| CallFailure::refused(&qualified, &f.kind, f.message))?;
    let mut plan = cache::plan(
        &action.component,
        action.spec,
        &action.inputs,
        &action.project,
        &action.domain,
    );
    let inputs_path = prefix.inputs();
    if let Some(plan) = &mut plan {
        plan.inputs = Some((
            ctx.store.uri_of(&inputs_path),
            hex::encode(Sha256::digest(&stored)),
        ));
    }
    let record = NewRun {
        run_id: action.run_id.clone(),
        parent_id: Some(parent_id.to_string()),
        project: action.project.clone(),
        domain: action.domain.clone(),
        component_digest: action.component.digest.clone(),
        task: recorded_task.to_string(),
        action_id: action.action_id.clone(),
        started_at: now_micros(),
        inputs_uri: String::new(),
        raw_data_path: action.run.raw_data.as_ref().map(|raw| raw.url.clone()),
        cache_key: plan.as_ref().map(|p| p.key.clone()),
        cache_status: if plan.is_some() { "miss" } else { "disabled" }.to_string(),
    };
    let start = NewAction {
        record,
        plan: plan.as_ref(),
        overwrite_cache: false,
        spec: action.spec,
        limits: &action.limits,
        inputs_path: &inputs_path,
        stored,
    };
    match begin_action(ctx, start).await.map_err(host_err)? {
        Begun::Answered(outputs) => Ok(Started::Answered(outputs)),
        Begun::Recorded {
            inputs_uri,
            reserved,
            start,
        } => {
            action.inputs_uri = inputs_uri;
            action.start = start;
            action.cache = plan;
            Ok(Started::Recorded { reserved })
        }
    }
}

/// The references in a child's outputs, which become its caller's to open.
pub fn returned_refs(outputs: &BTreeMap<String, Value>) -> Vec<RefMeta> {
    collect_refs(outputs, "outputs")
        .map(|refs| refs.into_iter().map(|(_, meta)| meta).collect())
        .unwrap_or_default()
}

/// Marks attempts of a run left running by a host that stopped (all of them: nothing runs
/// while a run is resumed), so the actions they belong to can run again when called.
pub async fn mark_all_lost(ctx: &RunContext, run_id: &str) -> Result<(), RunError> {
    let Some((_, _, attempts)) = ctx.records.run(run_id).await? else {
        return Ok(());
    };
    for a in attempts.iter().filter(|a| a.phase == PHASE_RUNNING) {
        ctx.records
            .mark_attempt_lost(run_id, &a.action_id, a.attempt as u32)
            .await?;
    }
    Ok(())
}
