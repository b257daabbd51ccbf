//! One run, start to end: take the inputs, answer from the cache when an entry fits, otherwise
//! record the run and run its attempts; and resuming a run whose host stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::attempts::{failure, run_attempts, stored_form, ActionOutcome, ActionRun};
use super::cache::{self, CachePlan, Lookup};
use super::children::{mark_all_lost, Progress, RawData, RunShared};
use super::context::RunContext;
use super::offload::{self, inline_offloaded, OffloadError};
use super::{Limits, RunError, RunFailure, RunOutcome, RunRequest, RunTimings};
use crate::data::{check_scope_name, AttemptPrefix, DataStore};
use crate::engine::{AttemptLimits, LoadedComponent};
use crate::records::events::kind;
use crate::records::heartbeat::{LiveRun, RunHost, HEARTBEAT_STALE_AFTER};
use crate::records::liveness::HostProcess;
use crate::records::{now_micros, NewRun, RunRecord, StartRecord, PHASE_RUNNING};
use crate::spec::TaskSpec;
use crate::values::validate::conform_document;
use crate::values::{msgpack, Value};

/// The id of a new run: a ULID, so ids sort by creation time.
fn new_run_id() -> String {
    let mut id = crate::data::concat(&["r", &ulid::Ulid::generate().to_string()]);
    id.make_ascii_lowercase();
    id
}

/// The root action of a run (child actions of later versions get ids under it).
pub const ROOT_ACTION: &str = "a0";

pub(crate) fn attempt_limits(
    spec: &TaskSpec,
    limits: &Limits,
    max_memory: u64,
) -> Result<AttemptLimits, RunError> {
    let memory_bytes = spec.memory_limit_bytes.unwrap_or(limits.memory_limit_bytes);
    if memory_bytes > max_memory {
        return Err(RunError::MemoryAboveMaximum {
            task: spec.name.clone(),
            asked: memory_bytes,
            max: max_memory,
        });
    }
    Ok(AttemptLimits {
        timeout: spec
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(limits.timeout),
        memory_bytes,
        log_bytes: limits.log_limit_bytes,
    })
}

fn task_of<'a>(component: &'a LoadedComponent, task: &str) -> Result<&'a TaskSpec, RunError> {
    component.task(task).ok_or_else(|| RunError::UnknownTask {
        task: task.to_string(),
        component: component.source_name.clone(),
        known: component
            .tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Runs `req` and records it. Task failures are an `Ok` outcome; `Err` means the run could
/// not be started or its record could not be written.
pub async fn execute(
    ctx: &Arc<RunContext>,
    component: &Arc<LoadedComponent>,
    req: RunRequest,
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let spec = task_of(component, &req.task)?;
    check_scope_name("project", &req.project)?;
    check_scope_name("domain", &req.domain)?;
    // Opened before anything is recorded (a run must not point at a store that never opened)
    // and then used by every attempt of the run.
    let raw_data = match &req.raw_data_path {
        Some(url) => Some(RawData {
            url: url.clone(),
            store: Ok(DataStore::open(url).map_err(RunError::RawDataPath)?),
        }),
        None => None,
    };
    let limits = attempt_limits(spec, &ctx.limits, ctx.engine.config().max_memory_bytes)?;
    let inline_limit = spec
        .inline_limit_bytes
        .unwrap_or(ctx.limits.inline_limit_bytes);
    let run_id = new_run_id();
    let prefix = AttemptPrefix::new(&req.project, &req.domain, &run_id, ROOT_ACTION, 1);

    // Inputs: bring back offloaded values, conform, offload big values, encode, store. An
    // invalid document is still stored (as given) when it fits, so `runs show` can display
    // what was rejected.
    let given = inline_offloaded(
        &ctx.stores,
        req.inputs.clone(),
        "inputs",
        Some(&req.project),
    )
    .await
    .map_err(|e| failure("input", e.to_string()));
    let checked = given.and_then(|doc| {
        conform_document(doc, &spec.interface.inputs, "inputs")
            .map_err(|e| failure("input", e.to_string()))
    });
    let inputs_doc = checked.as_ref().unwrap_or(&req.inputs);
    // The guest gets every value whole; the stored document may reference offloaded ones.
    let inputs_bytes = msgpack::encode_document(inputs_doc);
    let stored = stored_form(
        ctx,
        &prefix,
        "inputs",
        inputs_doc,
        &inputs_bytes,
        inline_limit,
    )
    .await?;
    let input_failure = match (&checked, &stored) {
        (Err(e), _) | (_, Err(e)) => Some(e.clone()),
        _ => None,
    };
    let stored_bytes = stored.unwrap_or_else(|_| msgpack::encode_document(&BTreeMap::new()));
    let inputs_path = prefix.inputs();
    let mut plan = match &input_failure {
        None => cache::plan(component, spec, inputs_doc, &req.project, &req.domain),
        Some(_) => None,
    };
    if let Some(plan) = &mut plan {
        let sha = hex::encode(Sha256::digest(&stored_bytes));
        plan.inputs = Some((ctx.store.uri_of(&inputs_path), sha));
    }
    let new_run = NewRun {
        run_id: run_id.clone(),
        parent_id: None,
        project: req.project.clone(),
        domain: req.domain.clone(),
        component_digest: component.digest.clone(),
        task: spec.name.clone(),
        action_id: ROOT_ACTION.to_string(),
        started_at: now_micros(),
        inputs_uri: String::new(), // set once stored (a cache hit may not store it)
        raw_data_path: req.raw_data_path.clone(),
        cache_key: plan.as_ref().map(|p| p.key.clone()),
        cache_status: match (&plan, req.overwrite_cache) {
            (None, _) => "disabled",
            (Some(_), true) => "overwrite",
            (Some(_), false) => "miss",
        }
        .to_string(),
    };

    let start = NewAction {
        record: new_run,
        plan: plan.as_ref(),
        overwrite_cache: req.overwrite_cache,
        spec,
        limits: &limits,
        inputs_path: &inputs_path,
        stored: stored_bytes,
    };
    let (inputs_uri, reserved, start) = match begin_action(ctx, start).await? {
        Begun::Answered(outputs) => {
            let total = started.elapsed();
            return Ok(RunOutcome {
                run_id,
                outputs: Ok(outputs),
                log: None,
                timings: RunTimings {
                    record: total,
                    total,
                    ..RunTimings::default()
                },
            });
        }
        Begun::Recorded {
            inputs_uri,
            reserved,
            start,
        } => (inputs_uri, reserved, start),
    };
    let reported = ctx.records.live_run(&run_id);
    let run = RunShared::new(
        ctx,
        &run_id,
        &req.project,
        &req.domain,
        raw_data,
        1,
        req.progress.clone().unwrap_or_default(),
    );
    let action = ActionRun {
        component: component.clone(),
        spec,
        run,
        depth: 0,
        limits,
        inline_limit,
        run_id: run_id.clone(),
        action_id: ROOT_ACTION.to_string(),
        start,
        project: req.project.clone(),
        domain: req.domain.clone(),
        inputs_uri,
        inputs: checked.unwrap_or_default(),
        inputs_bytes,
        input_failure,
        cache: plan.clone(),
    };
    // A reservation is given back whatever happens next, or waiting runs would wait for a
    // run that never writes its entry.
    let result = unless_taken_over(&reported, run_attempts(ctx, &action, 1, 0)).await;
    if let (true, Some(plan)) = (reserved, &plan) {
        ctx.records
            .cache_release(&plan.key, &plan.scope, &run_id)
            .await?;
    }
    let ActionOutcome {
        outputs,
        log,
        mut timings,
    } = result?;
    timings.total = started.elapsed();
    timings.record = timings
        .total
        .saturating_sub(timings.instantiate + timings.call + timings.teardown);
    Ok(RunOutcome {
        run_id,
        outputs,
        log,
        timings,
    })
}

/// A new action about to be recorded: its record, its cache plan and its stored inputs.
pub(crate) struct NewAction<'a> {
    pub record: NewRun,
    pub plan: Option<&'a CachePlan>,
    /// `--overwrite-cache`: run and replace the entry instead of looking it up.
    pub overwrite_cache: bool,
    pub spec: &'a TaskSpec,
    pub limits: &'a AttemptLimits,
    pub inputs_path: &'a str,
    /// The inputs document as stored (offloaded values as references).
    pub stored: Vec<u8>,
}

/// How a new action began.
pub(crate) enum Begun {
    /// The cache answered: the action is recorded as a hit and nothing runs.
    Answered(BTreeMap<String, Value>),
    /// The action's start is ready in `start` (held), with its inputs document at
    /// `inputs_uri`; `reserved` when it holds the key of a serialized cache (to be given back
    /// when it ends).
    Recorded {
        inputs_uri: String,
        reserved: bool,
        start: Arc<StartRecord>,
    },
}

/// Begins an action (a run's root or a child): answers it from its cache when it caches and
/// an entry is usable, else stores its inputs document and makes its start ready (running,
/// with the events `created`, `cache-miss` (and why) and `started`), held until its first
/// attempt waits or ends (`records::StartRecord`).
pub(crate) async fn begin_action(ctx: &RunContext, new: NewAction<'_>) -> Result<Begun, RunError> {
    let NewAction {
        mut record,
        plan,
        overwrite_cache,
        spec,
        limits,
        inputs_path,
        stored,
    } = new;
    let mut extra_events = Vec::new();
    let mut reserved = false;
    if let Some(plan) = plan {
        if overwrite_cache {
            extra_events.push((
                kind::CACHE_MISS,
                Some("--overwrite-cache: running and replacing the entry".to_string()),
            ));
        } else {
            match answer_from_cache(ctx, plan, spec, limits, &record.run_id).await? {
                CacheAnswer::Hit {
                    outputs,
                    outputs_uri,
                    detail,
                    entry_inputs,
                } => {
                    record.cache_status = "hit".to_string();
                    // The same inputs document as the entry's run: point at it rather than
                    // storing a copy (a hit then writes no object at all).
                    record.inputs_uri = match (entry_inputs, &plan.inputs) {
                        (Some((uri, sha)), Some((_, ours))) if &sha == ours => uri,
                        _ => ctx.store.put(inputs_path, stored).await?,
                    };
                    ctx.records
                        .record_cache_hit(&record, &outputs_uri, detail)
                        .await?;
                    return Ok(Begun::Answered(outputs));
                }
                CacheAnswer::Miss {
                    reason,
                    reserved: r,
                } => {
                    reserved = r;
                    extra_events.push((kind::CACHE_MISS, Some(reason)));
                }
            }
        }
    }
    match ctx.store.put(inputs_path, stored).await {
        Ok(inputs_uri) => {
            record.inputs_uri = inputs_uri.clone();
            Ok(Begun::Recorded {
                inputs_uri,
                reserved,
                start: StartRecord::held(record, &extra_events),
            })
        }
        Err(e) => {
            // Given back, or waiting runs would wait for a run that never writes its entry.
            if let Some(plan) = plan.filter(|_| reserved) {
                let _ = ctx
                    .records
                    .cache_release(&plan.key, &plan.scope, &record.run_id)
                    .await;
            }
            Err(e.into())
        }
    }
}

pub(crate) enum CacheAnswer {
    Hit {
        outputs: BTreeMap<String, Value>,
        outputs_uri: String,
        detail: String,
        /// The entry's inputs document and its SHA-256.
        entry_inputs: Option<(String, String)>,
    },
    /// Run the task; `reserved` when this run holds the key of a serialized cache.
    Miss { reason: String, reserved: bool },
}

/// Looks the run up in the cache; with `serialize`, waits while another run holds the key.
pub(crate) async fn answer_from_cache(
    ctx: &RunContext,
    plan: &CachePlan,
    spec: &TaskSpec,
    limits: &AttemptLimits,
    run_id: &str,
) -> Result<CacheAnswer, RunError> {
    let mut waited = false;
    loop {
        match cache::lookup(ctx, plan).await? {
            Lookup::Hit { entry, outputs } => {
                let detail = format!(
                    "key {} ({}) from run {}{}",
                    plan.key,
                    plan.scope,
                    entry.run_id,
                    if waited {
                        ", after waiting for it to finish"
                    } else {
                        ""
                    }
                );
                return Ok(CacheAnswer::Hit {
                    outputs,
                    outputs_uri: entry.outputs_uri,
                    detail,
                    entry_inputs: entry.inputs_uri.zip(entry.inputs_sha256),
                });
            }
            Lookup::Miss(reason) if !plan.serialize => {
                return Ok(CacheAnswer::Miss {
                    reason,
                    reserved: false,
                })
            }
            Lookup::Miss(reason) => {
                let lifetime = cache::reservation_lifetime(spec, limits.timeout);
                let expires = now_micros() + lifetime.as_micros() as i64;
                if ctx
                    .records
                    .cache_reserve(&plan.key, &plan.scope, run_id, expires)
                    .await?
                {
                    // The holder may have written its entry and released the key between our
                    // lookup and our reservation: look once more before running.
                    if let Lookup::Hit { .. } = cache::lookup(ctx, plan).await? {
                        ctx.records
                            .cache_release(&plan.key, &plan.scope, run_id)
                            .await?;
                        continue;
                    }
                    return Ok(CacheAnswer::Miss {
                        reason,
                        reserved: true,
                    });
                }
                waited = true;
                tokio::time::sleep(cache::SERIALIZE_POLL_INTERVAL).await;
            }
        }
    }
}

/// Refuses a run that another live process is running (on this machine, by `/proc`; elsewhere,
/// while its host's heartbeat is fresh), then records this process as the one running it. A
/// run of this very process is the embedder's to resume.
async fn claim_stopped_run(ctx: &RunContext, run: &RunRecord) -> Result<(), RunError> {
    let recorded = run.host.as_deref();
    if recorded != ctx.records.process() {
        let process = recorded.and_then(HostProcess::parse);
        match (run.host_now(), process) {
            (RunHost::Alive, Some(process)) => {
                return Err(RunError::StillRunning {
                    run: run.id.clone(),
                    pid: process.pid(),
                    hostname: process.hostname().to_string(),
                })
            }
            (RunHost::Reporting { seconds_ago }, process) => {
                return Err(RunError::StillReporting {
                    run: run.id.clone(),
                    on: match process {
                        Some(p) => format!("in process {} on {}", p.pid(), p.hostname()),
                        None => "on another machine".to_string(),
                    },
                    seconds_ago,
                    stale_after_secs: HEARTBEAT_STALE_AFTER.as_secs(),
                })
            }
            _ => {}
        }
    }
    if ctx.records.claim_run(&run.id, recorded).await? {
        Ok(())
    } else {
        Err(RunError::ClaimedElsewhere(run.id.clone()))
    }
}

/// Continues a run whose host stopped: attempts left running are marked lost and a new attempt
/// runs, replaying the traces the lost ones recorded. A run that already ended is returned as
/// recorded, running nothing.
pub async fn resume(
    ctx: &Arc<RunContext>,
    component: &Arc<LoadedComponent>,
    run_id: &str,
    progress: Option<Arc<Progress>>,
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let Some((run, actions, attempts)) = ctx.records.run(run_id).await? else {
        return Err(RunError::UnknownRun(run_id.to_string()));
    };
    if run.component_digest != component.digest {
        return Err(RunError::WrongComponent {
            run: run_id.to_string(),
            recorded: run.component_digest,
            given: component.digest.clone(),
        });
    }
    let spec = task_of(component, &run.task)?;
    let root = actions
        .iter()
        .find(|a| a.id == ROOT_ACTION)
        .ok_or_else(|| RunError::UnknownRun(format!("{run_id} (no root action)")))?;
    let inputs_uri = root
        .inputs_uri
        .clone()
        .ok_or_else(|| RunError::UnknownRun(format!("{run_id} (no inputs document)")))?;
    if run.phase != PHASE_RUNNING {
        let outputs = match &root.outputs_uri {
            Some(uri) => Ok(read_document(ctx, uri, "outputs").await?),
            None => Err(RunFailure {
                kind: run.error_kind.unwrap_or_else(|| "failure".into()),
                message: run.error_text.unwrap_or_default(),
                retryable: false,
            }),
        };
        return Ok(RunOutcome {
            run_id: run_id.to_string(),
            outputs,
            log: None,
            timings: RunTimings {
                total: started.elapsed(),
                ..RunTimings::default()
            },
        });
    }

    claim_stopped_run(ctx, &run).await?;
    let reported = ctx.records.live_run(run_id);
    // Nothing of the run is running any more: every attempt left running is lost (children
    // left running run again when the resumed root calls them).
    mark_all_lost(ctx, run_id).await?;
    let mut last = 0;
    let mut failed = 0;
    for a in attempts.iter().filter(|a| a.action_id == ROOT_ACTION) {
        last = last.max(a.attempt as u32);
        if a.phase != PHASE_RUNNING && a.phase != crate::records::PHASE_LOST {
            failed += 1;
        }
    }
    let next = last + 1;
    ctx.records
        .append_event(
            run_id,
            ROOT_ACTION,
            kind::RESUMED,
            Some(format!("continuing with attempt {next}")),
        )
        .await?;
    ctx.records
        .start_attempt(run_id, ROOT_ACTION, next, &inputs_uri)
        .await?;

    let inputs = read_document(ctx, &inputs_uri, "inputs").await?;
    let checked = conform_document(inputs, &spec.interface.inputs, "inputs")
        .map_err(|e| failure("input", e.to_string()));
    let inputs_bytes = msgpack::encode_document(checked.as_ref().unwrap_or(&BTreeMap::new()));
    let plan = match &checked {
        Ok(doc) => cache::plan(component, spec, doc, &run.project, &run.domain),
        Err(_) => None,
    };
    let run_shared = RunShared::new(
        ctx,
        run_id,
        &run.project,
        &run.domain,
        run.raw_data_path.as_ref().map(|url| RawData {
            url: url.clone(),
            store: DataStore::open(url).map_err(|e| e.to_string()),
        }),
        actions.len() as u64,
        progress.unwrap_or_default(),
    );
    let action = ActionRun {
        component: component.clone(),
        spec,
        run: run_shared,
        depth: 0,
        limits: attempt_limits(spec, &ctx.limits, ctx.engine.config().max_memory_bytes)?,
        inline_limit: spec
            .inline_limit_bytes
            .unwrap_or(ctx.limits.inline_limit_bytes),
        run_id: run_id.to_string(),
        action_id: ROOT_ACTION.to_string(),
        start: StartRecord::written(),
        project: run.project.clone(),
        domain: run.domain.clone(),
        inputs_uri,
        input_failure: checked.as_ref().err().cloned(),
        inputs: checked.unwrap_or_default(),
        inputs_bytes,
        cache: plan,
    };
    let outcome = unless_taken_over(&reported, run_attempts(ctx, &action, next, failed)).await?;
    Ok(RunOutcome {
        run_id: run_id.to_string(),
        outputs: outcome.outputs,
        log: outcome.log,
        timings: outcome.timings,
    })
}

/// Runs a run's root action unless a heartbeat finds the run claimed by another process first;
/// then the action (its attempt and every child) is dropped where it is, and writes nothing
/// more: the run is the other process's.
async fn unless_taken_over(
    reported: &LiveRun,
    root: impl std::future::Future<Output = Result<ActionOutcome, RunError>>,
) -> Result<ActionOutcome, RunError> {
    tokio::select! {
        biased;
        outcome = root => outcome,
        () = reported.taken_over() => Err(RunError::TakenOver(reported.run_id().to_string())),
    }
}

/// A recorded document, with its offloaded values brought back.
async fn read_document(
    ctx: &RunContext,
    uri: &str,
    side: &str,
) -> Result<BTreeMap<String, Value>, RunError> {
    offload::read_document(&ctx.store, &ctx.stores, uri, side)
        .await
        .map_err(|e| match e {
            OffloadError::Document(e) => RunError::Data(e),
            other => RunError::Corrupt {
                uri: uri.to_string(),
                message: other.to_string(),
            },
        })
}
