//! The attempts of one action: run, record, retry while the task allows it, and accept exactly
//! one attempt's outputs. Each attempt writes under its own prefix
//! (`<project>/<domain>/<run>/<action>/<attempt>/`).

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::cache::CachePlan;
use super::children::{acquire_running, CallSession, RunShared};
use super::context::RunContext;
use super::offload::offload;
use super::{RunError, RunFailure, RunTimings};
use crate::data::{AttemptPrefix, DataError, DataSession};
use crate::engine::{AttemptFailure, AttemptLimits, LoadedComponent};
use crate::records::{now_micros, AfterAttempt, AttemptEnd, Records, StartRecord};
use crate::spec::TaskSpec;
use crate::traces::{TraceSession, TracedAttempt};
use crate::values::reference::{collect_refs, map_refs, RefMeta};
use crate::values::validate::conform_document;
use crate::values::{msgpack, Value, ValueError};

/// Longest wait between two attempts, whatever the task's backoff doubles to.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

/// Everything the attempts of one action share.
pub struct ActionRun<'a> {
    pub component: Arc<LoadedComponent>,
    pub spec: &'a TaskSpec,
    pub limits: AttemptLimits,
    pub inline_limit: u64,
    /// What the run's actions share (limits on children, progress).
    pub run: Arc<RunShared>,
    /// 0 for the run's root action, 1 for its children, and so on.
    pub depth: u32,
    pub run_id: String,
    pub action_id: String,
    /// The action's start: written, or held until its first attempt waits or ends.
    pub start: Arc<StartRecord>,
    pub project: String,
    pub domain: String,
    pub inputs_uri: String,
    /// The inputs, whole and valid, and their encoding as the guest gets it.
    pub inputs: BTreeMap<String, Value>,
    pub inputs_bytes: Vec<u8>,
    /// Set when the inputs were refused: the first attempt fails with it and nothing runs.
    pub input_failure: Option<RunFailure>,
    pub cache: Option<CachePlan>,
}

/// How the action ended.
pub struct ActionOutcome {
    pub outputs: Result<BTreeMap<String, Value>, RunFailure>,
    pub log: Option<String>,
    pub timings: RunTimings,
}

pub(crate) fn failure(kind: &str, message: impl Into<String>) -> RunFailure {
    RunFailure {
        kind: kind.to_string(),
        message: message.into(),
        retryable: false,
    }
}

/// Whether another attempt could succeed where this one failed: user errors when the task
/// says so; system errors (the guest's own failure, traps, deadlines, the memory cap, host
/// faults) always; invalid inputs or outputs never (the same bytes would fail the same way).
pub(crate) fn worth_retrying(f: &RunFailure) -> bool {
    match f.kind.as_str() {
        "user" => f.retryable,
        "input" | "output" => false,
        _ => true,
    }
}

/// The delay before retry number `retry` (1-based): the task's backoff, doubled each time.
fn retry_delay(spec: &TaskSpec, retry: u32) -> Duration {
    let base = Duration::from_millis(spec.retry.backoff_ms);
    base.saturating_mul(1u32 << (retry.saturating_sub(1)).min(20))
        .min(MAX_RETRY_DELAY)
}

/// Runs attempts `first`, `first + 1`, ... of the action until one is accepted or no retry is
/// left. `failed_before` counts attempts that already failed (a resumed run's), which use up
/// retries; the first attempt's row must already exist, or be held in `action.start`.
pub async fn run_attempts(
    ctx: &Arc<RunContext>,
    action: &ActionRun<'_>,
    first: u32,
    failed_before: u32,
) -> Result<ActionOutcome, RunError> {
    let started = Instant::now();
    let mut attempt = first;
    let mut failed = failed_before;
    loop {
        if attempt != first {
            ctx.records
                .start_attempt(
                    &action.run_id,
                    &action.action_id,
                    attempt,
                    &action.inputs_uri,
                )
                .await?;
        }
        let prefix = AttemptPrefix::new(
            &action.project,
            &action.domain,
            &action.run_id,
            &action.action_id,
            attempt,
        );
        // Until the attempt waits for something, its start may still be held (see
        // `records::StartRecord`): it is then written with the end, in one transaction.
        // Pinned where it is made: a future this size costs a copy each time it moves.
        let work = pin!(ended_attempt(ctx, action, attempt, &prefix));
        let (mut outcome, stored, log_uri) =
            writing_start_once_waiting(&action.start, &ctx.records, work).await?;
        let retry = match &stored {
            Err(f) if worth_retrying(f) && failed < action.spec.retry.retries => {
                Some(retry_delay(action.spec, failed + 1))
            }
            _ => None,
        };
        let after = match retry {
            Some(delay) => AfterAttempt::Retry {
                next_attempt: attempt + 1,
                delay_ms: delay.as_millis() as u64,
            },
            None => AfterAttempt::Final {
                cache: match (&stored, &action.cache) {
                    (Ok(uri), Some(plan)) => {
                        Some(Box::new(plan.entry(&action.run_id, &action.action_id, uri)))
                    }
                    _ => None,
                },
            },
        };
        let end = AttemptEnd {
            run_id: action.run_id.clone(),
            action_id: action.action_id.clone(),
            attempt,
            ended_at: now_micros(),
            outcome: stored.map_err(|f| (f.kind.clone(), f.message.clone())),
            log_uri,
            instantiate_us: Some(outcome.timings.instantiate.as_micros() as i64),
            call_us: Some(outcome.timings.call.as_micros() as i64),
            ends_run: action.depth == 0,
        };
        match action.start.take().await {
            Some(held) => ctx.records.finish_held_attempt(held, &end, &after).await?,
            None => ctx.records.finish_attempt(&end, &after).await?,
        }
        match retry {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                failed += 1;
                attempt += 1;
            }
            None => {
                outcome.timings.total = started.elapsed();
                outcome.timings.record = outcome.timings.total.saturating_sub(
                    outcome.timings.instantiate + outcome.timings.call + outcome.timings.teardown,
                );
                return Ok(outcome);
            }
        }
    }
}

/// Awaits `work`, writing the action's start first if the start is still held and `work`
/// has to wait for anything: an attempt that ends within its first poll is recorded with its
/// start in one transaction, any other is seen running from the moment it waits.
async fn writing_start_once_waiting<T>(
    start: &StartRecord,
    records: &Records,
    mut work: Pin<&mut impl Future<Output = Result<T, RunError>>>,
) -> Result<T, RunError> {
    match poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
        Poll::Ready(Ok(done)) => Ok(done),
        // Recorded as the plain way would have left it: running, when the host failed it.
        Poll::Ready(Err(e)) => {
            start.write(records).await?;
            Err(e)
        }
        Poll::Pending => {
            // Not `write`: if a future inside `work` holds the start's lock (recording a trace
            // on a database that answers later), waiting for it here, without polling `work`,
            // would wait forever; that writer finishes the job.
            start.write_unless_busy(records).await?;
            work.await
        }
    }
}

/// One attempt run to its end, with its outputs document (or why there is none) and its log
/// stored: outputs (and the values offloaded from them) are durable before any record says so.
async fn ended_attempt(
    ctx: &Arc<RunContext>,
    action: &ActionRun<'_>,
    attempt: u32,
    prefix: &AttemptPrefix,
) -> Result<(ActionOutcome, Result<String, RunFailure>, Option<String>), RunError> {
    let mut outcome = one_attempt(ctx, action, attempt, prefix).await?;
    let stored = match &outcome.outputs {
        Ok(doc) => {
            let full = msgpack::encode_document(doc);
            match stored_form(ctx, prefix, "outputs", doc, &full, action.inline_limit).await? {
                Ok(bytes) => Ok(ctx.store.put(&prefix.outputs(), bytes).await?),
                Err(f) => Err(f),
            }
        }
        Err(f) => Err(f.clone()),
    };
    if let (Err(f), Ok(_)) = (&stored, &outcome.outputs) {
        outcome.outputs = Err(f.clone());
    }
    let log_uri = match &outcome.log {
        Some(text) => Some(
            ctx.store
                .put(&prefix.log(), text.clone().into_bytes())
                .await?,
        ),
        None => None,
    };
    Ok((outcome, stored, log_uri))
}

/// One attempt in a fresh sandbox, its outputs decoded and checked (not yet stored).
async fn one_attempt(
    ctx: &Arc<RunContext>,
    action: &ActionRun<'_>,
    attempt: u32,
    prefix: &AttemptPrefix,
) -> Result<ActionOutcome, RunError> {
    let mut timings = RunTimings::default();
    if let Some(f) = &action.input_failure {
        return Ok(ActionOutcome {
            outputs: Err(f.clone()),
            log: None,
            timings,
        });
    }
    let session = match data_session(ctx, action, prefix) {
        Ok(session) => session,
        Err(f) => {
            return Ok(ActionOutcome {
                outputs: Err(f),
                log: None,
                timings,
            })
        }
    };
    let trace = TraceSession::new(
        ctx.records.clone(),
        action.start.clone(),
        ctx.store.clone(),
        TracedAttempt {
            run_id: &action.run_id,
            action_id: &action.action_id,
            attempt,
            prefix: prefix.as_str(),
        },
        action.inline_limit,
    );
    // A child waits for a running slot in its run and in the host; the root always runs.
    let permits = match action.depth {
        0 => None,
        _ => acquire_running(ctx, &action.run).await,
    };
    let calls = CallSession::new(ctx.clone(), action, attempt, permits);
    let report = ctx
        .engine
        .run_attempt(
            &action.component,
            &action.limits,
            &action.spec.name,
            &action.inputs_bytes,
            session,
            trace,
            calls,
        )
        .await;
    timings.instantiate = report.instantiate_time;
    timings.call = report.call_time;
    timings.teardown = report.teardown_time;
    let outputs = match (report.result, &report.data) {
        (Ok(bytes), Some(session)) => accept_outputs(&bytes, action.spec, session),
        (Ok(_), None) => Err(failure("failure", "the attempt lost its data session")),
        (Err(f), _) => Err(from_attempt(f)),
    };
    Ok(ActionOutcome {
        outputs,
        log: report.log,
        timings,
    })
}

/// The bytes to store for a document whose full encoding is `full`: the same bytes when it is
/// small, otherwise with its big values offloaded; either way checked against the inline limit.
pub(crate) async fn stored_form(
    ctx: &RunContext,
    prefix: &AttemptPrefix,
    side: &str,
    doc: &BTreeMap<String, Value>,
    full: &[u8],
    inline_limit: u64,
) -> Result<Result<Vec<u8>, RunFailure>, RunError> {
    let threshold = ctx.limits.offload_threshold_bytes;
    if full.len() as u64 <= threshold {
        // No single value can be above the threshold when the whole document is not.
        return Ok(within_limit(full.to_vec(), side, inline_limit));
    }
    let stored = offload(&ctx.store, prefix, side, doc, threshold).await?;
    Ok(within_limit(
        msgpack::encode_document(&stored),
        side,
        inline_limit,
    ))
}

fn within_limit(bytes: Vec<u8>, side: &str, limit: u64) -> Result<Vec<u8>, RunFailure> {
    if bytes.len() as u64 > limit {
        return Err(failure(
            if side == "inputs" { "input" } else { "output" },
            format!(
                "{side}: document is {} bytes, above the inline limit of {limit} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

fn from_attempt(f: AttemptFailure) -> RunFailure {
    let retryable = matches!(
        f,
        AttemptFailure::User {
            retryable: true,
            ..
        }
    );
    RunFailure {
        kind: f.kind().to_string(),
        message: f.to_string(),
        retryable,
    }
}

/// Decodes and validates what the guest returned. (Its size is bounded by the guest's memory;
/// the inline limit applies to the stored document, after offloading.)
fn accept_outputs(
    bytes: &[u8],
    spec: &TaskSpec,
    session: &DataSession,
) -> Result<BTreeMap<String, Value>, RunFailure> {
    let doc =
        msgpack::decode_document(bytes, "outputs").map_err(|e| failure("output", e.to_string()))?;
    let doc = conform_document(doc, &spec.interface.outputs, "outputs")
        .map_err(|e| failure("output", e.to_string()))?;
    check_refs(doc, "outputs", session).map_err(|e| failure("output", e.to_string()))
}

/// The attempt's data session: new objects under the attempt's prefix in the run's raw-data
/// store, and a grant for every reference in the inputs (each checked to be one this project
/// may pass).
fn data_session(
    ctx: &RunContext,
    action: &ActionRun<'_>,
    prefix: &AttemptPrefix,
) -> Result<DataSession, RunFailure> {
    let mut stores = ctx.stores.clone();
    let raw_store = match action.run.raw_data.as_ref().map(|raw| &raw.store) {
        None => ctx.store.clone(),
        Some(Err(why)) => return Err(failure("input", why.clone())),
        Some(Ok(raw)) => {
            Arc::make_mut(&mut stores).add(raw.clone());
            raw.clone()
        }
    };
    let refs =
        collect_refs(&action.inputs, "inputs").map_err(|e| failure("input", e.to_string()))?;
    let mut session = DataSession::new(stores.clone(), raw_store, prefix.as_str().to_string());
    for (path, meta) in refs {
        stores
            .check_input(&meta.uri, &action.project)
            .map_err(|e| failure("input", format!("{path}: {e}")))?;
        session.grant(&meta);
    }
    Ok(session)
}

/// Refuses references (in the attempt's outputs, or in the inputs of a task it calls) that the
/// attempt does not hold, and replaces what the guest said about an object it created by what
/// the host measured (size, hash).
pub(crate) fn check_refs(
    doc: BTreeMap<String, Value>,
    side: &str,
    session: &DataSession,
) -> Result<BTreeMap<String, Value>, ValueError> {
    map_refs(doc, side, &mut |path, meta: RefMeta| {
        let invalid = |e: DataError| ValueError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        };
        session.check(&meta.uri).map_err(invalid)?;
        Ok(match session.created(&meta.uri) {
            Some(known) if known.kind == meta.kind => RefMeta {
                format: known.format.clone().or(meta.format),
                ..known.clone()
            },
            _ => meta,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::NewRun;

    /// The attempt's poller finds the attempt pending while a future inside it holds the start's
    /// lock, writing it on a database that answers later (sqlx answers from its own thread, as
    /// PostgreSQL does over the network): it must go on polling, not wait for the lock.
    #[tokio::test]
    async fn an_attempt_writing_its_start_itself_is_not_blocked_by_its_poller() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlx+sqlite://{}/a.db?mode=rwc", dir.path().display());
        let records = Records::connect(&url).await.unwrap();
        let start = StartRecord::held(
            NewRun {
                run_id: "r1".into(),
                parent_id: None,
                project: "p".into(),
                domain: "d".into(),
                component_digest: "c".into(),
                task: "t".into(),
                action_id: "a0".into(),
                started_at: 1,
                inputs_uri: "memory:///r1/inputs.msgpack".into(),
                raw_data_path: None,
                cache_key: None,
                cache_status: "disabled".into(),
            },
            &[],
        );
        let work = pin!(async {
            start.write(&records).await?;
            Ok::<_, RunError>(7)
        });
        let polled = writing_start_once_waiting(&start, &records, work);
        let done = tokio::time::timeout(Duration::from_secs(20), polled)
            .await
            .expect("the poller waited for a lock its own attempt held");
        assert_eq!(done.unwrap(), 7);
        let (run, _, attempts) = records.run("r1").await.unwrap().expect("written once");
        assert_eq!((run.phase.as_str(), attempts.len()), ("running", 1));
    }
}
