//! Runs, actions and attempts: written at the start and the end of each attempt, read by
//! `sluice runs`.

use serde::Serialize;

use super::backend::{Kind, SqlValue};
use super::heartbeat::{run_host, RunHost};
use super::{now_micros, Records, RecordsError};

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
    /// The store of the references the run created, when not the default one.
    pub raw_data_path: Option<String>,
    /// When `sluice gc` removed the run's objects.
    pub purged_at: Option<i64>,
    /// The process that created the run or resumed it last (see `records::liveness`).
    pub host: Option<String>,
    /// When that process last reported that it still runs the run (see `records::heartbeat`).
    pub heartbeat_at: Option<i64>,
    /// The run is `running` in the records, but the process running it is gone (on this
    /// machine) or its host has been silent too long (elsewhere): it stopped (killed,
    /// interrupted, crashed) and waits for `--resume`. Told when the row is read; false when it
    /// cannot be told (an older row from another machine).
    pub host_gone: bool,
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
    pub cache_key: Option<String>,
    /// disabled | hit | miss | overwrite
    pub cache_status: Option<String>,
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
/// An attempt whose host stopped before it ended (found by a resume).
pub const PHASE_LOST: &str = "lost";

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
                          ended_at, error_kind, error_text, raw_data_path, purged_at, host, \
                          heartbeat_at FROM runs";
const RUN_KINDS: &[Kind] = &[
    Kind::Text, // id
    Kind::Text, // project
    Kind::Text, // domain
    Kind::Text, // component_digest
    Kind::Text, // task
    Kind::Text, // phase
    Kind::Int,  // created_at
    Kind::Int,  // ended_at
    Kind::Text, // error_kind
    Kind::Text, // error_text
    Kind::Text, // raw_data_path
    Kind::Int,  // purged_at
    Kind::Text, // host
    Kind::Int,  // heartbeat_at
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
        raw_data_path: c.text(),
        purged_at: c.int(),
        host: c.text(),
        heartbeat_at: c.int(),
        host_gone: false,
    }
    .with_liveness()
}

impl RunRecord {
    fn with_liveness(mut self) -> RunRecord {
        self.host_gone = self.phase == PHASE_RUNNING && self.host_now().stopped();
        self
    }

    /// How the host of this run stands now (meaningful while the run is `running`).
    pub fn host_now(&self) -> RunHost {
        run_host(self.host.as_deref(), self.heartbeat_at, now_micros())
    }
}

impl Records {
    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, RecordsError> {
        // Each placeholder is used once and in order, as both backends number them.
        let sql = format!(
            "{SELECT_RUN} WHERE (project = $1 OR $2 = 1) AND (domain = $3 OR $4 = 1) \
             ORDER BY id DESC LIMIT $5"
        );
        let rows = self
            .backend()
            .query(
                "listing runs",
                &sql,
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

    /// One run's row alone.
    pub async fn run_record(&self, run_id: &str) -> Result<Option<RunRecord>, RecordsError> {
        let what = format!("reading run {run_id}");
        let sql = format!("{SELECT_RUN} WHERE id = $1");
        let rows = self
            .backend()
            .query(&what, &sql, vec![run_id.into()], RUN_KINDS)
            .await?;
        Ok(rows.first().map(|row| run_from_row(row)))
    }

    /// One run with its actions and attempts.
    pub async fn run(
        &self,
        run_id: &str,
    ) -> Result<Option<(RunRecord, Vec<ActionRecord>, Vec<AttemptRecord>)>, RecordsError> {
        let Some(run) = self.run_record(run_id).await? else {
            return Ok(None);
        };
        let what = format!("reading run {run_id}");
        let actions = self
            .backend()
            .query(
                &what,
                &format!("{SELECT_ACTION} WHERE run_id = $1 ORDER BY started_at, id"),
                vec![run_id.into()],
                ACTION_KINDS,
            )
            .await?
            .iter()
            .map(|r| action_from_row(r))
            .collect();
        let attempts = self
            .backend()
            .query(
                &what,
                &format!("{SELECT_ATTEMPT} WHERE run_id = $1 ORDER BY action_id, attempt"),
                vec![run_id.into()],
                ATTEMPT_KINDS,
            )
            .await?
            .iter()
            .map(|r| attempt_from_row(r))
            .collect();
        Ok(Some((run, actions, attempts)))
    }

    /// One action of a run with its attempts, oldest first.
    pub async fn action(
        &self,
        run_id: &str,
        action_id: &str,
    ) -> Result<Option<(ActionRecord, Vec<AttemptRecord>)>, RecordsError> {
        let what = format!("reading action {action_id} of run {run_id}");
        let rows = self
            .backend()
            .query(
                &what,
                &format!("{SELECT_ACTION} WHERE run_id = $1 AND id = $2"),
                vec![run_id.into(), action_id.into()],
                ACTION_KINDS,
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let attempts = self
            .backend()
            .query(
                &what,
                &format!("{SELECT_ATTEMPT} WHERE run_id = $1 AND action_id = $2 ORDER BY attempt"),
                vec![run_id.into(), action_id.into()],
                ATTEMPT_KINDS,
            )
            .await?
            .iter()
            .map(|r| attempt_from_row(r))
            .collect();
        Ok(Some((action_from_row(row), attempts)))
    }

    /// How many actions a run has, its root included.
    pub async fn count_actions(&self, run_id: &str) -> Result<u64, RecordsError> {
        let rows = self
            .backend()
            .query(
                &format!("counting actions of run {run_id}"),
                "SELECT COUNT(*) FROM actions WHERE run_id = $1",
                vec![run_id.into()],
                &[Kind::Int],
            )
            .await?;
        Ok(rows.first().and_then(|r| r[0].int()).unwrap_or(0) as u64)
    }
}

const SELECT_ACTION: &str = "SELECT id, parent_id, task, phase, started_at, ended_at, \
                             inputs_uri, outputs_uri, error_kind, error_text, cache_key, \
                             cache_status FROM actions";
const ACTION_KINDS: &[Kind] = &[
    Kind::Text, // id
    Kind::Text, // parent_id
    Kind::Text, // task
    Kind::Text, // phase
    Kind::Int,  // started_at
    Kind::Int,  // ended_at
    Kind::Text, // inputs_uri
    Kind::Text, // outputs_uri
    Kind::Text, // error_kind
    Kind::Text, // error_text
    Kind::Text, // cache_key
    Kind::Text, // cache_status
];

fn action_from_row(row: &[SqlValue]) -> ActionRecord {
    let mut c = Columns(row.iter());
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
        cache_key: c.text(),
        cache_status: c.text(),
    }
}

const SELECT_ATTEMPT: &str = "SELECT action_id, attempt, phase, started_at, ended_at, \
                              inputs_uri, outputs_uri, log_uri, error_kind, error_text, \
                              instantiate_us, call_us FROM attempts";
const ATTEMPT_KINDS: &[Kind] = &[
    Kind::Text, // action_id
    Kind::Int,  // attempt
    Kind::Text, // phase
    Kind::Int,  // started_at
    Kind::Int,  // ended_at
    Kind::Text, // inputs_uri
    Kind::Text, // outputs_uri
    Kind::Text, // log_uri
    Kind::Text, // error_kind
    Kind::Text, // error_text
    Kind::Int,  // instantiate_us
    Kind::Int,  // call_us
];

fn attempt_from_row(row: &[SqlValue]) -> AttemptRecord {
    let mut c = Columns(row.iter());
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
}
