//! Writing a run's life: created, each attempt started and ended, the run finished, with the
//! events that say so in the same transactions. Every write that says "succeeded" comes after
//! the outputs document it points at is stored (the executor's order), so no row ever points at
//! outputs that do not exist.

use super::backend::SqlValue;
use super::cache::{upsert_entry, CacheEntry};
use super::events::{event, events, kind, Statement};
use super::runs::{PHASE_FAILED, PHASE_LOST, PHASE_RUNNING, PHASE_SUCCEEDED};
use super::{now_micros, Records, RecordsError};

/// What is known when a run (its root action) or a child action is created.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: String,
    /// The calling action of a child; none for a run's root action (which creates the run).
    pub parent_id: Option<String>,
    pub project: String,
    pub domain: String,
    pub component_digest: String,
    pub task: String,
    pub action_id: String,
    pub started_at: i64,
    pub inputs_uri: String,
    /// The store of the references the run creates, when not the default one.
    pub raw_data_path: Option<String>,
    /// The action's cache key, when its task caches.
    pub cache_key: Option<String>,
    /// disabled | hit | miss | overwrite
    pub cache_status: String,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    pub run_id: String,
    pub action_id: String,
    pub attempt: u32,
    pub ended_at: i64,
    /// Ok(outputs uri) or Err((error kind, error text)).
    pub outcome: Result<String, (String, String)>,
    pub log_uri: Option<String>,
    pub instantiate_us: Option<i64>,
    pub call_us: Option<i64>,
    /// The action is the run's root: its final attempt ends the run too.
    pub ends_run: bool,
}

/// What follows an attempt's end.
#[derive(Debug, Clone)]
pub enum AfterAttempt {
    /// The action (and, for the root action, the run) ends with this attempt's outcome; a
    /// successful one may also be written to the cache.
    Final { cache: Option<Box<CacheEntry>> },
    /// Another attempt follows after `delay_ms`.
    Retry { next_attempt: u32, delay_ms: u64 },
}

/// How a row ends: its phase, when, and its outputs or its error. A row written while its
/// action runs ends as [`RowEnd::running`].
pub(super) struct RowEnd {
    pub phase: &'static str,
    pub at: Option<i64>,
    pub outputs_uri: SqlValue,
    pub error_kind: SqlValue,
    pub error_text: SqlValue,
}

impl RowEnd {
    pub fn running() -> RowEnd {
        RowEnd {
            phase: PHASE_RUNNING,
            at: None,
            outputs_uri: SqlValue::Null,
            error_kind: SqlValue::Null,
            error_text: SqlValue::Null,
        }
    }

    /// The end of an attempt that ended at `at` with `outcome`.
    pub fn of(at: i64, outcome: &Result<String, (String, String)>) -> RowEnd {
        match outcome {
            Ok(uri) => RowEnd {
                phase: PHASE_SUCCEEDED,
                at: Some(at),
                outputs_uri: uri.as_str().into(),
                error_kind: SqlValue::Null,
                error_text: SqlValue::Null,
            },
            Err((kind, text)) => RowEnd {
                phase: PHASE_FAILED,
                at: Some(at),
                outputs_uri: SqlValue::Null,
                error_kind: kind.as_str().into(),
                error_text: text.as_str().into(),
            },
        }
    }
}

/// An attempt's row as it is at `end` (running, or ended with `ended`'s log and timings).
pub(super) fn attempt_row(
    run_id: &str,
    action_id: &str,
    attempt: u32,
    started_at: i64,
    inputs: &str,
    end: &RowEnd,
    ended: Option<&AttemptEnd>,
) -> Statement {
    (
        "INSERT INTO attempts (run_id, action_id, attempt, phase, started_at, inputs_uri, \
         ended_at, outputs_uri, log_uri, error_kind, error_text, instantiate_us, call_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        vec![
            run_id.into(),
            action_id.into(),
            (attempt as i64).into(),
            end.phase.into(),
            started_at.into(),
            inputs.into(),
            end.at.into(),
            end.outputs_uri.clone(),
            ended.and_then(|e| e.log_uri.as_deref()).into(),
            end.error_kind.clone(),
            end.error_text.clone(),
            ended.and_then(|e| e.instantiate_us).into(),
            ended.and_then(|e| e.call_us).into(),
        ],
    )
}

/// A new attempt's row, running, and its `started` event.
fn attempt_started(run_id: &str, action_id: &str, attempt: u32, inputs: &str) -> [Statement; 2] {
    [
        attempt_row(
            run_id,
            action_id,
            attempt,
            now_micros(),
            inputs,
            &RowEnd::running(),
            None,
        ),
        event(
            run_id,
            action_id,
            kind::STARTED,
            Some(format!("attempt {attempt}")),
        ),
    ]
}

pub(super) fn run_row(run: &NewRun, end: &RowEnd, host: Option<&str>) -> Statement {
    (
        "INSERT INTO runs (id, project, domain, component_digest, task, phase, created_at, \
         ended_at, error_kind, error_text, raw_data_path, host, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $7)",
        vec![
            (&run.run_id).into(),
            (&run.project).into(),
            (&run.domain).into(),
            (&run.component_digest).into(),
            (&run.task).into(),
            end.phase.into(),
            run.started_at.into(),
            end.at.into(),
            end.error_kind.clone(),
            end.error_text.clone(),
            run.raw_data_path.as_deref().into(),
            host.into(),
        ],
    )
}

pub(super) fn action_row(run: &NewRun, end: &RowEnd) -> Statement {
    (
        "INSERT INTO actions (run_id, id, task, phase, started_at, ended_at, inputs_uri, \
         outputs_uri, error_kind, error_text, cache_key, cache_status, parent_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        vec![
            (&run.run_id).into(),
            (&run.action_id).into(),
            (&run.task).into(),
            end.phase.into(),
            run.started_at.into(),
            end.at.into(),
            (&run.inputs_uri).into(),
            end.outputs_uri.clone(),
            end.error_kind.clone(),
            end.error_text.clone(),
            run.cache_key.as_deref().into(),
            (&run.cache_status).into(),
            run.parent_id.as_deref().into(),
        ],
    )
}

/// The events that open an action: `created`, `extra` ones, and `started` (of attempt 1),
/// taken now.
pub(super) fn start_events(run: &NewRun, extra: &[(&str, Option<String>)]) -> Vec<Statement> {
    let mut happened = Vec::with_capacity(2 + extra.len());
    happened.push((kind::CREATED, Some(run.task.clone())));
    happened.extend(extra.iter().map(|(k, detail)| (*k, detail.clone())));
    happened.push((kind::STARTED, Some("attempt 1".into())));
    events(&run.run_id, &run.action_id, happened)
}

/// A new action (for a root action, its run too) with its first attempt, all running, and
/// the events that opened it.
pub(super) fn start_statements(
    run: &NewRun,
    host: Option<&str>,
    opened: Vec<Statement>,
) -> Vec<Statement> {
    let mut statements = Vec::with_capacity(3 + opened.len());
    let running = RowEnd::running();
    if run.parent_id.is_none() {
        statements.push(run_row(run, &running, host));
    }
    statements.extend([
        action_row(run, &running),
        attempt_row(
            &run.run_id,
            &run.action_id,
            1,
            run.started_at,
            &run.inputs_uri,
            &running,
            None,
        ),
    ]);
    statements.extend(opened);
    statements
}

impl Records {
    /// Makes this process the one running `run_id`, if the records still name `recorded` (the
    /// process the caller found stopped, or none): false when another process claimed it in
    /// between (two resumes at once), so only one of them continues it.
    pub async fn claim_run(
        &self,
        run_id: &str,
        recorded: Option<&str>,
    ) -> Result<bool, RecordsError> {
        let what = format!("claiming run {run_id} for this process");
        // COALESCE: `IS` (SQLite) and `IS NOT DISTINCT FROM` (PostgreSQL) are not shared SQL.
        let changed = self
            .backend()
            .transaction(
                &what,
                &[(
                    "UPDATE runs SET host = $1, heartbeat_at = $2 WHERE id = $3 AND phase = $4 \
                     AND COALESCE(host, '') = $5",
                    vec![
                        self.process().into(),
                        super::now_micros().into(),
                        run_id.into(),
                        PHASE_RUNNING.into(),
                        recorded.unwrap_or("").into(),
                    ],
                )],
            )
            .await?;
        Ok(changed.first() == Some(&1))
    }

    /// Records a new action (for a root action, its run too) with its first attempt, all
    /// running, in one transaction, with the events `created`, any `extra` ones, and `started`.
    pub async fn create_action(
        &self,
        run: &NewRun,
        extra: &[(&str, Option<String>)],
    ) -> Result<(), RecordsError> {
        let what = format!("starting action {} of run {}", run.action_id, run.run_id);
        let statements = start_statements(run, self.process(), start_events(run, extra));
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }

    /// Records an action answered from the cache (for a root action, its run too): succeeded
    /// at once, pointing at the cached outputs; no attempt.
    pub async fn record_cache_hit(
        &self,
        run: &NewRun,
        outputs_uri: &str,
        detail: String,
    ) -> Result<(), RecordsError> {
        let what = format!(
            "recording cache hit of action {} of run {}",
            run.action_id, run.run_id
        );
        let (id, action) = (run.run_id.as_str(), run.action_id.as_str());
        let succeeded = RowEnd::of(now_micros(), &Ok(outputs_uri.to_string()));
        let mut statements = Vec::with_capacity(5);
        if run.parent_id.is_none() {
            statements.push(run_row(run, &succeeded, self.process()));
        }
        statements.push(action_row(run, &succeeded));
        statements.extend(events(
            id,
            action,
            vec![
                (kind::CREATED, Some(run.task.clone())),
                (kind::CACHE_HIT, Some(detail)),
                (kind::SUCCEEDED, None),
            ],
        ));
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }

    /// Records that an action that ended (or was left running by a host that stopped) runs
    /// again, because its caller called it again: the action is running once more and
    /// attempt `attempt` starts.
    pub async fn reopen_action(
        &self,
        run_id: &str,
        action_id: &str,
        attempt: u32,
        inputs_uri: &str,
        detail: String,
    ) -> Result<(), RecordsError> {
        let what = format!("reopening action {action_id} of run {run_id}");
        let reopened = (
            "UPDATE actions SET phase = $1, ended_at = $2, error_kind = $3, \
                 error_text = $4 WHERE run_id = $5 AND id = $6",
            vec![
                PHASE_RUNNING.into(),
                SqlValue::NullInt,
                SqlValue::Null,
                SqlValue::Null,
                run_id.into(),
                action_id.into(),
            ],
        );
        // Built in the order they happened: an event's id is taken when it is built.
        let resumed = event(run_id, action_id, kind::RESUMED, Some(detail));
        let [row, started] = attempt_started(run_id, action_id, attempt, inputs_uri);
        let statements = [reopened, resumed, row, started];
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }

    /// Records the start of attempt `attempt` (> 1) of an action.
    pub async fn start_attempt(
        &self,
        run_id: &str,
        action_id: &str,
        attempt: u32,
        inputs_uri: &str,
    ) -> Result<(), RecordsError> {
        let what = format!("starting attempt {attempt} of run {run_id}");
        let statements = attempt_started(run_id, action_id, attempt, inputs_uri);
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }

    /// Records the end of an attempt and what follows it, in one transaction.
    pub async fn finish_attempt(
        &self,
        end: &AttemptEnd,
        after: &AfterAttempt,
    ) -> Result<(), RecordsError> {
        let what = format!("finishing attempt {} of run {}", end.attempt, end.run_id);
        self.backend()
            .transaction(&what, &finish_statements(end, after))
            .await?;
        Ok(())
    }

    /// Marks an attempt whose host stopped before it ended (found when resuming), so a new one
    /// can start.
    pub async fn mark_attempt_lost(
        &self,
        run_id: &str,
        action_id: &str,
        attempt: u32,
    ) -> Result<(), RecordsError> {
        let what = format!("marking attempt {attempt} of run {run_id} lost");
        let text = "the host stopped before the attempt ended";
        let statements = [
            (
                "UPDATE attempts SET phase = $1, ended_at = $2, error_kind = $3, error_text = $4 \
                 WHERE run_id = $5 AND action_id = $6 AND attempt = $7",
                vec![
                    PHASE_LOST.into(),
                    now_micros().into(),
                    "lost".into(),
                    text.into(),
                    run_id.into(),
                    action_id.into(),
                    (attempt as i64).into(),
                ],
            ),
            event(
                run_id,
                action_id,
                kind::ATTEMPT_LOST,
                Some(format!("attempt {attempt}: {text}")),
            ),
        ];
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }
}

/// The end of an attempt whose rows were written when it started: its updates, and what
/// follows it.
pub(super) fn finish_statements(end: &AttemptEnd, after: &AfterAttempt) -> Vec<Statement> {
    let (id, action) = (end.run_id.as_str(), end.action_id.as_str());
    let row_end = RowEnd::of(end.ended_at, &end.outcome);
    let mut statements: Vec<Statement> = vec![(
        "UPDATE attempts SET phase = $1, ended_at = $2, outputs_uri = $3, log_uri = $4, \
         error_kind = $5, error_text = $6, instantiate_us = $7, call_us = $8 \
         WHERE run_id = $9 AND action_id = $10 AND attempt = $11",
        vec![
            row_end.phase.into(),
            end.ended_at.into(),
            row_end.outputs_uri.clone(),
            end.log_uri.as_deref().into(),
            row_end.error_kind.clone(),
            row_end.error_text.clone(),
            end.instantiate_us.into(),
            end.call_us.into(),
            id.into(),
            action.into(),
            (end.attempt as i64).into(),
        ],
    )];
    match after {
        AfterAttempt::Retry {
            next_attempt,
            delay_ms,
        } => {
            let error = match &end.outcome {
                Err((kind, text)) => format!("{kind}: {text}"),
                Ok(_) => String::new(),
            };
            statements.push(event(
                id,
                action,
                kind::RETRY_SCHEDULED,
                Some(format!(
                    "attempt {next_attempt} in {delay_ms} ms after attempt {} failed: {error}",
                    end.attempt
                )),
            ));
        }
        AfterAttempt::Final { cache } => {
            statements.push((
                "UPDATE actions SET phase = $1, ended_at = $2, outputs_uri = $3, \
                 error_kind = $4, error_text = $5 WHERE run_id = $6 AND id = $7",
                vec![
                    row_end.phase.into(),
                    end.ended_at.into(),
                    row_end.outputs_uri.clone(),
                    row_end.error_kind.clone(),
                    row_end.error_text.clone(),
                    id.into(),
                    action.into(),
                ],
            ));
            if end.ends_run {
                statements.push((
                    "UPDATE runs SET phase = $1, ended_at = $2, error_kind = $3, \
                     error_text = $4 WHERE id = $5",
                    vec![
                        row_end.phase.into(),
                        end.ended_at.into(),
                        row_end.error_kind,
                        row_end.error_text,
                        id.into(),
                    ],
                ));
            }
            statements.extend(closing_statements(end, cache.as_deref()));
        }
    }
    statements
}

/// What an action's final attempt adds to its rows: the cache entry, if it writes one, and
/// the events that close the action.
pub(super) fn closing_statements(end: &AttemptEnd, cache: Option<&CacheEntry>) -> Vec<Statement> {
    let mut statements = Vec::with_capacity(2);
    let mut happened = Vec::with_capacity(2);
    if let Some(entry) = cache {
        statements.push(upsert_entry(entry));
        happened.push((
            kind::CACHE_WRITTEN,
            Some(format!("key {} ({})", entry.cache_key, entry.scope)),
        ));
    }
    happened.push(match &end.outcome {
        Ok(_) => (kind::SUCCEEDED, None),
        Err((kind, text)) => (kind::FAILED, Some(format!("{kind}: {text}"))),
    });
    statements.extend(events(&end.run_id, &end.action_id, happened));
    statements
}
