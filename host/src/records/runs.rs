//! Runs, actions and attempts: written at the start and the end of each attempt, read by
//! `sluice runs`.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{query_err, Records, RecordsError};

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

const RUN_COLUMNS: &str = "id, project, domain, component_digest, task, phase, created_at, \
                           ended_at, error_kind, error_text";

fn run_from_row(row: &AnyRow) -> Result<RunRecord, sqlx::Error> {
    Ok(RunRecord {
        id: row.try_get("id")?,
        project: row.try_get("project")?,
        domain: row.try_get("domain")?,
        component_digest: row.try_get("component_digest")?,
        task: row.try_get("task")?,
        phase: row.try_get("phase")?,
        created_at: row.try_get("created_at")?,
        ended_at: row.try_get("ended_at")?,
        error_kind: row.try_get("error_kind")?,
        error_text: row.try_get("error_text")?,
    })
}

impl Records {
    /// Records a new run with its root action and first attempt, all running, in one transaction.
    pub async fn start_run(&self, run: &NewRun) -> Result<(), RecordsError> {
        let what = format!("starting run {}", run.run_id);
        let mut tx = self.pool().begin().await.map_err(query_err(&what))?;
        sqlx::query(
            "INSERT INTO runs (id, project, domain, component_digest, task, phase, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&run.run_id)
        .bind(&run.project)
        .bind(&run.domain)
        .bind(&run.component_digest)
        .bind(&run.task)
        .bind(PHASE_RUNNING)
        .bind(run.started_at)
        .execute(&mut *tx)
        .await
        .map_err(query_err(&what))?;
        sqlx::query(
            "INSERT INTO actions (run_id, id, task, phase, started_at, inputs_uri) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&run.run_id)
        .bind(&run.action_id)
        .bind(&run.task)
        .bind(PHASE_RUNNING)
        .bind(run.started_at)
        .bind(&run.inputs_uri)
        .execute(&mut *tx)
        .await
        .map_err(query_err(&what))?;
        sqlx::query(
            "INSERT INTO attempts (run_id, action_id, attempt, phase, started_at, inputs_uri) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&run.run_id)
        .bind(&run.action_id)
        .bind(run.attempt as i64)
        .bind(PHASE_RUNNING)
        .bind(run.started_at)
        .bind(&run.inputs_uri)
        .execute(&mut *tx)
        .await
        .map_err(query_err(&what))?;
        tx.commit().await.map_err(query_err(&what))
    }

    /// Records the end of an attempt and, as it is the only one, of its action and run.
    /// Called only after the outputs document is stored, so no row ever says "succeeded" for
    /// outputs that do not exist.
    pub async fn finish_run(&self, end: &AttemptEnd) -> Result<(), RecordsError> {
        let what = format!("finishing run {}", end.run_id);
        let (phase, outputs_uri, error_kind, error_text) = match &end.outcome {
            Ok(uri) => (PHASE_SUCCEEDED, Some(uri.as_str()), None, None),
            Err((kind, text)) => (PHASE_FAILED, None, Some(kind.as_str()), Some(text.as_str())),
        };
        let mut tx = self.pool().begin().await.map_err(query_err(&what))?;
        sqlx::query(
            "UPDATE attempts SET phase = $1, ended_at = $2, outputs_uri = $3, log_uri = $4, \
             error_kind = $5, error_text = $6, instantiate_us = $7, call_us = $8 \
             WHERE run_id = $9 AND action_id = $10 AND attempt = $11",
        )
        .bind(phase)
        .bind(end.ended_at)
        .bind(outputs_uri)
        .bind(end.log_uri.as_deref())
        .bind(error_kind)
        .bind(error_text)
        .bind(end.instantiate_us)
        .bind(end.call_us)
        .bind(&end.run_id)
        .bind(&end.action_id)
        .bind(end.attempt as i64)
        .execute(&mut *tx)
        .await
        .map_err(query_err(&what))?;
        sqlx::query(
            "UPDATE actions SET phase = $1, ended_at = $2, outputs_uri = $3, error_kind = $4, \
             error_text = $5 WHERE run_id = $6 AND id = $7",
        )
        .bind(phase)
        .bind(end.ended_at)
        .bind(outputs_uri)
        .bind(error_kind)
        .bind(error_text)
        .bind(&end.run_id)
        .bind(&end.action_id)
        .execute(&mut *tx)
        .await
        .map_err(query_err(&what))?;
        sqlx::query(
            "UPDATE runs SET phase = $1, ended_at = $2, error_kind = $3, error_text = $4 \
             WHERE id = $5",
        )
        .bind(phase)
        .bind(end.ended_at)
        .bind(error_kind)
        .bind(error_text)
        .bind(&end.run_id)
        .execute(&mut *tx)
        .await
        .map_err(query_err(&what))?;
        tx.commit().await.map_err(query_err(&what))
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, RecordsError> {
        let what = "listing runs";
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs \
             WHERE (CAST($1 AS TEXT) IS NULL OR project = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR domain = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        )))
        .bind(filter.project.as_deref())
        .bind(filter.domain.as_deref())
        .bind(filter.limit as i64)
        .fetch_all(self.pool())
        .await
        .map_err(query_err(what))?;
        rows.iter()
            .map(run_from_row)
            .collect::<Result<_, _>>()
            .map_err(query_err(what))
    }

    /// One run with its actions and attempts.
    pub async fn run(
        &self,
        run_id: &str,
    ) -> Result<Option<(RunRecord, Vec<ActionRecord>, Vec<AttemptRecord>)>, RecordsError> {
        let what = format!("reading run {run_id}");
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
        )))
        .bind(run_id)
        .fetch_optional(self.pool())
        .await
        .map_err(query_err(&what))?;
        let Some(row) = row else { return Ok(None) };
        let run = run_from_row(&row).map_err(query_err(&what))?;
        let actions = sqlx::query(
            "SELECT id, parent_id, task, phase, started_at, ended_at, inputs_uri, outputs_uri, \
             error_kind, error_text FROM actions WHERE run_id = $1 ORDER BY started_at, id",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .map_err(query_err(&what))?
        .iter()
        .map(|r| {
            Ok(ActionRecord {
                id: r.try_get("id")?,
                parent_id: r.try_get("parent_id")?,
                task: r.try_get("task")?,
                phase: r.try_get("phase")?,
                started_at: r.try_get("started_at")?,
                ended_at: r.try_get("ended_at")?,
                inputs_uri: r.try_get("inputs_uri")?,
                outputs_uri: r.try_get("outputs_uri")?,
                error_kind: r.try_get("error_kind")?,
                error_text: r.try_get("error_text")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(query_err(&what))?;
        let attempts = sqlx::query(
            "SELECT action_id, attempt, phase, started_at, ended_at, inputs_uri, outputs_uri, \
             log_uri, error_kind, error_text, instantiate_us, call_us FROM attempts \
             WHERE run_id = $1 ORDER BY action_id, attempt",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .map_err(query_err(&what))?
        .iter()
        .map(|r| {
            Ok(AttemptRecord {
                action_id: r.try_get("action_id")?,
                attempt: r.try_get("attempt")?,
                phase: r.try_get("phase")?,
                started_at: r.try_get("started_at")?,
                ended_at: r.try_get("ended_at")?,
                inputs_uri: r.try_get("inputs_uri")?,
                outputs_uri: r.try_get("outputs_uri")?,
                log_uri: r.try_get("log_uri")?,
                error_kind: r.try_get("error_kind")?,
                error_text: r.try_get("error_text")?,
                instantiate_us: r.try_get("instantiate_us")?,
                call_us: r.try_get("call_us")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(query_err(&what))?;
        Ok(Some((run, actions, attempts)))
    }
}
