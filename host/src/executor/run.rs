//! One run, start to end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::offload::{inline_offloaded, offload};
use super::{Limits, RunError, RunFailure, RunOutcome, RunRequest, RunTimings};
use crate::data::{check_scope_name, AttemptPrefix, DataError, DataSession, DataStore, Stores};
use crate::engine::{AttemptFailure, AttemptLimits, Engine, LoadedComponent};
use crate::records::{now_micros, AttemptEnd, NewRun, Records};
use crate::spec::TaskSpec;
use crate::values::reference::{collect_refs, map_refs, RefMeta};
use crate::values::validate::conform_document;
use crate::values::{msgpack, Value, ValueError};

/// The parts a run uses.
pub struct RunContext<'a> {
    pub engine: &'a Engine,
    pub records: &'a Records,
    /// The default store: documents, and raw data unless the run names another place.
    pub store: &'a DataStore,
    /// Every store references may live in (the default one first).
    pub stores: &'a Arc<Stores>,
    pub limits: &'a Limits,
}

/// The id of a new run: a ULID, so ids sort by creation time.
fn new_run_id() -> String {
    format!("r{}", ulid::Ulid::generate().to_string().to_lowercase())
}

/// The root action of a run (child actions of later versions get ids under it).
const ROOT_ACTION: &str = "a0";

fn failure(kind: &str, message: impl Into<String>) -> RunFailure {
    RunFailure {
        kind: kind.to_string(),
        message: message.into(),
        retryable: false,
    }
}

fn attempt_limits(
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

/// The bytes to store for a document whose full encoding is `full`: the same bytes when it is
/// small, otherwise with its big values offloaded; either way checked against the inline limit.
async fn stored_form(
    ctx: &RunContext<'_>,
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
    let stored = offload(ctx.store, prefix, side, doc, threshold).await?;
    Ok(encode_within(&stored, side, inline_limit))
}

/// Encodes a document and checks it against the inline limit.
fn encode_within(
    doc: &BTreeMap<String, Value>,
    side: &str,
    limit: u64,
) -> Result<Vec<u8>, RunFailure> {
    within_limit(msgpack::encode_document(doc), side, limit)
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

/// Runs `req` once and records it. Task failures are an `Ok` outcome; `Err` means the run could
/// not be started or its record could not be written.
pub async fn execute(
    ctx: &RunContext<'_>,
    component: &LoadedComponent,
    req: RunRequest,
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let spec = component
        .task(&req.task)
        .ok_or_else(|| RunError::UnknownTask {
            task: req.task.clone(),
            component: component.source_name.clone(),
            known: component
                .tasks
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    check_scope_name("project", &req.project)?;
    check_scope_name("domain", &req.domain)?;
    let limits = attempt_limits(spec, ctx.limits, ctx.engine.config().max_memory_bytes)?;
    let inline_limit = spec
        .inline_limit_bytes
        .unwrap_or(ctx.limits.inline_limit_bytes);

    let run_id = new_run_id();
    let attempt = 1;
    let prefix = AttemptPrefix::new(&req.project, &req.domain, &run_id, ROOT_ACTION, attempt);

    // Inputs: bring back offloaded values, conform, offload big values, encode, store. An
    // invalid document is still stored (as given) when it fits, so `runs show` can display
    // what was rejected.
    let given = inline_offloaded(ctx.stores, req.inputs.clone(), "inputs", Some(&req.project))
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
    let inputs_uri = ctx.store.put(&prefix.inputs(), stored_bytes).await?;
    ctx.records
        .start_run(&NewRun {
            run_id: run_id.clone(),
            project: req.project.clone(),
            domain: req.domain.clone(),
            component_digest: component.digest.clone(),
            task: spec.name.clone(),
            action_id: ROOT_ACTION.to_string(),
            attempt,
            started_at: now_micros(),
            inputs_uri,
        })
        .await?;

    let session = match input_failure {
        Some(f) => Err(f),
        None => data_session(ctx, &req, &prefix, inputs_doc).await,
    };
    let mut timings = RunTimings::default();
    let mut log = None;
    let result = match session {
        Err(f) => Err(f),
        Ok(session) => {
            let report = ctx
                .engine
                .run_attempt(component, &limits, &spec.name, &inputs_bytes, session)
                .await;
            timings.instantiate = report.instantiate_time;
            timings.call = report.call_time;
            timings.teardown = report.teardown_time;
            log = report.log;
            match (report.result, &report.data) {
                (Ok(bytes), Some(session)) => accept_outputs(&bytes, spec, session),
                (Ok(_), None) => Err(failure("failure", "the attempt lost its data session")),
                (Err(f), _) => Err(from_attempt(f)),
            }
        }
    };

    // Outputs (and the values offloaded from them) are durable before any record says so.
    let result = match result {
        Ok(doc) => {
            let full = msgpack::encode_document(&doc);
            stored_form(ctx, &prefix, "outputs", &doc, &full, inline_limit)
                .await?
                .map(|bytes| (doc, bytes))
        }
        Err(f) => Err(f),
    };
    let outcome = match &result {
        Ok((_, bytes)) => Ok(ctx.store.put(&prefix.outputs(), bytes.clone()).await?),
        Err(f) => Err((f.kind.clone(), f.message.clone())),
    };
    let log_uri = match &log {
        Some(text) => Some(
            ctx.store
                .put(&prefix.log(), text.clone().into_bytes())
                .await?,
        ),
        None => None,
    };
    ctx.records
        .finish_run(&AttemptEnd {
            run_id: run_id.clone(),
            action_id: ROOT_ACTION.to_string(),
            attempt,
            ended_at: now_micros(),
            outcome,
            log_uri,
            instantiate_us: Some(timings.instantiate.as_micros() as i64),
            call_us: Some(timings.call.as_micros() as i64),
        })
        .await?;
    timings.total = started.elapsed();
    timings.record = timings
        .total
        .saturating_sub(timings.instantiate + timings.call + timings.teardown);
    Ok(RunOutcome {
        run_id,
        outputs: result.map(|(doc, _)| doc),
        log,
        timings,
    })
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
    check_output_refs(doc, session).map_err(|e| failure("output", e.to_string()))
}

/// The attempt's data session: new objects under the run's raw-data prefix, and a grant for
/// every reference in the inputs (each checked to be one this project may pass).
async fn data_session(
    ctx: &RunContext<'_>,
    req: &RunRequest,
    prefix: &AttemptPrefix,
    inputs: &BTreeMap<String, Value>,
) -> Result<DataSession, RunFailure> {
    let mut stores = ctx.stores.clone();
    let raw_store = match &req.raw_data_path {
        None => ctx.store.clone(),
        Some(url) => {
            let raw = DataStore::open(url).map_err(|e| failure("input", e.to_string()))?;
            Arc::make_mut(&mut stores).add(raw.clone());
            raw
        }
    };
    let refs = collect_refs(inputs, "inputs").map_err(|e| failure("input", e.to_string()))?;
    let mut session = DataSession::new(stores.clone(), raw_store, prefix.as_str().to_string());
    for (path, meta) in refs {
        stores
            .check_input(&meta.uri, &req.project)
            .map_err(|e| failure("input", format!("{path}: {e}")))?;
        session.grant(&meta);
    }
    Ok(session)
}

/// Refuses output references the attempt does not hold, and replaces what the guest said about
/// an object it created by what the host measured (size, hash).
fn check_output_refs(
    doc: BTreeMap<String, Value>,
    session: &DataSession,
) -> Result<BTreeMap<String, Value>, ValueError> {
    map_refs(doc, "outputs", &mut |path, meta: RefMeta| {
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
