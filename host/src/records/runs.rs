//! Runs, actions and attempts: written at the start and the end of each attempt, read by
//! `sluice runs`.

use serde::Serialize;

use super::backend::{Kind, SqlValue};
use super::{Records, RecordsError};

/// What is known when an attempt starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: String,
    pub project: String,
    pub domain: String,
    pub component_digest: String,
    pub task: String,
    pub action_id: String,
    pub attempt: u32,
    pub started_at: i64,
    pub inputs_uri: String,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub project: String,
    pub domain: String,
    pub component_digest: String,
    pub task: String,
    pub phase: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub error_kind: Option<String>,
    pub error_text: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    pub id: String,
    pub parent_id: Option<String>,
    pub task: String,
    pub phase: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub inputs_uri: Option<String>,
    pub outputs_uri: Option<String>,
    pub error_kind: Option<String>,
    pub error_text: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub action_id: String,
    pub attempt: i64,
    pub phase: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub inputs_uri: Option<String>,
    pub outputs_uri: Option<String>,
    pub log_uri: Option<String>,
    pub error_kind: Option<String>,
    pub error_text: Option<String>,
    pub instantiate_us: Option<i64>,
    pub call_us: Option<i64>,
}

/// Which runs `list_runs` returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub project: Option<String>,
    pub domain: Option<String>,
    pub limit: u32,
}

pub const PHASE_RUNNING: &str = "running";
pub const PHASE_SUCCEEDED: &str = "succeeded";
pub const PHASE_FAILED: &str = "failed";

/// Reads the columns of one row in order.
struct Columns<'a>(std::slice::Iter<'a, SqlValue>);

impl Columns<'_> {
    fn text(&mut self) -> Option<String> {
        self.0.next().and_then(SqlValue::text)
    }
    fn int(&mut self) -> Option<i64> {
        self.0.next().and_then(SqlValue::int)
    }
}

const SELECT_RUN: &str = "SELECT id, project, domain, component_digest, task, phase, created_at, \
                          ended_at, error_kind, error_text FROM runs";
const RUN_KINDS: &[Kind] = &[
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Text,
    Kind::Text,
];

fn run_from_row(row: &[SqlValue]) -> RunRecord {
    let mut c = Columns(row.iter());
    RunRecord {
        id: c.text().unwrap_or_default(),
        project: c.text().unwrap_or_default(),
        domain: c.text().unwrap_or_default(),
        component_digest: c.text().unwrap_or_default(),
        task: c.text().unwrap_or_default(),
        phase: c.text().unwrap_or_default(),
        created_at: c.int().unwrap_or_default(),
        ended_at: c.int(),
        error_kind: c.text(),
        error_text: c.text(),
    }
}

impl Records {
    /// Records a new run with its root action and first attempt, all running, in one transaction.
    pub async fn start_run(&self, run: &NewRun) -> Result<(), RecordsError> {
        let what = format!("starting run {}", run.run_id);
        let statements = [
            (
                "INSERT INTO runs (id, project, domain, component_digest, task, phase, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    (&run.run_id).into(),
                    (&run.project).into(),
                    (&run.domain).into(),
                    (&run.component_digest).into(),
                    (&run.task).into(),
                    PHASE_RUNNING.into(),
                    run.started_at.into(),
                ],
            ),
            (
                "INSERT INTO actions (run_id, id, task, phase, started_at, inputs_uri) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    (&run.run_id).into(),
                    (&run.action_id).into(),
                    (&run.task).into(),
                    PHASE_RUNNING.into(),
                    run.started_at.into(),
                    (&run.inputs_uri).into(),
                ],
            ),
            (
                "INSERT INTO attempts (run_id, action_id, attempt, phase, started_at, inputs_uri) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    (&run.run_id).into(),
                    (&run.action_id).into(),
                    (run.attempt as i64).into(),
                    PHASE_RUNNING.into(),
                    run.started_at.into(),
                    (&run.inputs_uri).into(),
                ],
            ),
        ];
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }

    /// Records the end of an attempt and, as it is the only one, of its action and run.
    /// Called only after the outputs document is stored, so no row ever says "succeeded" for
    /// outputs that do not exist.
    pub async fn finish_run(&self, end: &AttemptEnd) -> Result<(), RecordsError> {
        let what = format!("finishing run {}", end.run_id);
        let (phase, outputs_uri, error_kind, error_text): (&str, SqlValue, SqlValue, SqlValue) =
            match &end.outcome {
                Ok(uri) => (PHASE_SUCCEEDED, uri.into(), SqlValue::Null, SqlValue::Null),
                Err((kind, text)) => (PHASE_FAILED, SqlValue::Null, kind.into(), text.into()),
            };
        let statements = [
            (
                "UPDATE attempts SET phase = $1, ended_at = $2, outputs_uri = $3, log_uri = $4, \
                 error_kind = $5, error_text = $6, instantiate_us = $7, call_us = $8 \
                 WHERE run_id = $9 AND action_id = $10 AND attempt = $11",
                vec![
                    phase.into(),
                    end.ended_at.into(),
                    outputs_uri.clone(),
                    end.log_uri.as_deref().into(),
                    error_kind.clone(),
                    error_text.clone(),
                    end.instantiate_us.into(),
                    end.call_us.into(),
                    (&end.run_id).into(),
                    (&end.action_id).into(),
                    (end.attempt as i64).into(),
                ],
            ),
            (
                "UPDATE actions SET phase = $1, ended_at = $2, outputs_uri = $3, error_kind = $4, \
                 error_text = $5 WHERE run_id = $6 AND id = $7",
                vec![
                    phase.into(),
                    end.ended_at.into(),
                    outputs_uri,
                    error_kind.clone(),
                    error_text.clone(),
                    (&end.run_id).into(),
                    (&end.action_id).into(),
                ],
            ),
            (
                "UPDATE runs SET phase = $1, ended_at = $2, error_kind = $3, error_text = $4 \
                 WHERE id = $5",
                vec![
                    phase.into(),
                    end.ended_at.into(),
                    error_kind,
                    error_text,
                    (&end.run_id).into(),
                ],
            ),
        ];
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, RecordsError> {
        let rows = self
            .backend()
            .query(
                "listing runs",
                // Each placeholder is used once and in order, as both backends number them.
                "SELECT id, project, domain, component_digest, task, phase, created_at, \
                 ended_at, error_kind, error_text FROM runs \
                 WHERE (project = $1 OR $2 = 1) AND (domain = $3 OR $4 = 1) \
                 ORDER BY id DESC LIMIT $5",
                vec![
                    filter.project.as_deref().unwrap_or("").into(),
                    (filter.project.is_none() as i64).into(),
                    filter.domain.as_deref().unwrap_or("").into(),
                    (filter.domain.is_none() as i64).into(),
                    (filter.limit as i64).into(),
                ],
                RUN_KINDS,
            )
            .await?;
        Ok(rows.iter().map(|r| run_from_row(r)).collect())
    }

    /// One run with its actions and attempts.
    pub async fn run(
        &self,
        run_id: &str,
    ) -> Result<Option<(RunRecord, Vec<ActionRecord>, Vec<AttemptRecord>)>, RecordsError> {
        let what = format!("reading run {run_id}");
        let sql = format!("{SELECT_RUN} WHERE id = $1");
        let rows = self
            .backend()
            .query(&what, &sql, vec![run_id.into()], RUN_KINDS)
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let run = run_from_row(row);
        let actions = self
            .backend()
            .query(
                &what,
                "SELECT id, parent_id, task, phase, started_at, ended_at, inputs_uri, \
                 outputs_uri, error_kind, error_text FROM actions WHERE run_id = $1 \
                 ORDER BY started_at, id",
                vec![run_id.into()],
                &[
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Int,
                    Kind::Int,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                ],
            )
            .await?
            .iter()
            .map(|r| {
                let mut c = Columns(r.iter());
                ActionRecord {
                    id: c.text().unwrap_or_default(),
                    parent_id: c.text(),
                    task: c.text().unwrap_or_default(),
                    phase: c.text().unwrap_or_default(),
                    started_at: c.int().unwrap_or_default(),
                    ended_at: c.int(),
                    inputs_uri: c.text(),
                    outputs_uri: c.text(),
                    error_kind: c.text(),
                    error_text: c.text(),
                }
            })
            .collect();
        let attempts = self
            .backend()
            .query(
                &what,
                "SELECT action_id, attempt, phase, started_at, ended_at, inputs_uri, \
                 outputs_uri, log_uri, error_kind, error_text, instantiate_us, call_us \
                 FROM attempts WHERE run_id = $1 ORDER BY action_id, attempt",
                vec![run_id.into()],
                &[
                    Kind::Text,
                    Kind::Int,
                    Kind::Text,
                    Kind::Int,
                    Kind::Int,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Int,
                    Kind::Int,
                ],
            )
            .await?
            .iter()
            .map(|r| {
                let mut c = Columns(r.iter());
                AttemptRecord {
                    action_id: c.text().unwrap_or_default(),
                    attempt: c.int().unwrap_or_default(),
                    phase: c.text().unwrap_or_default(),
                    started_at: c.int().unwrap_or_default(),
                    ended_at: c.int(),
                    inputs_uri: c.text(),
                    outputs_uri: c.text(),
                    log_uri: c.text(),
                    error_kind: c.text(),
                    error_text: c.text(),
                    instantiate_us: c.int(),
                    call_us: c.int(),
                }
            })
            .collect();
        Ok(Some((run, actions, attempts)))
    }
}
