//! The system of record: components, tasks, runs, actions, attempts, the event log of each
//! run, cache entries and trace checkpoints.
//!
//! Only pointers and small facts live here; input and output documents are in the object store.
//! Every statement is written once (see [`backend`] for the two ways they reach a database).

mod backend;
mod cache;
mod combined;
pub mod events;
mod gc;
pub mod heartbeat;
mod held_start;
mod lifecycle;
pub mod liveness;
mod prepared;
mod runs;
mod sqlite;
mod traces;
pub mod wal_vfs;

use std::time::{SystemTime, UNIX_EPOCH};

pub use backend::{Backend, Kind, SqlValue};
pub use cache::CacheEntry;
pub use events::EventRecord;
pub use gc::PurgeCandidate;
pub use held_start::{HeldStart, StartRecord};
pub use lifecycle::{AfterAttempt, AttemptEnd, NewRun};
pub use runs::{
    ActionRecord, AttemptRecord, RunFilter, RunRecord, PHASE_FAILED, PHASE_LOST, PHASE_RUNNING,
    PHASE_SUCCEEDED,
};
pub use traces::TraceKey;

use crate::spec::TaskSpec;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    #[error("database {url}: {message}")]
    Url { url: String, message: String },
    #[error("database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database {url}: migrating the schema: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database: {what}: {source}")]
    Query {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database: {what}: {source}")]
    Sqlite {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {url}: {source}")]
    Vfs {
        url: String,
        #[source]
        source: wal_vfs::WalVfsError,
    },
    /// A transaction committed together with others (group commit) failed with them.
    #[error("database: {what}: {message}")]
    Shared { what: String, message: String },
    #[error("database: {what}: stored {field} is unreadable: {message}")]
    Corrupt {
        what: String,
        field: String,
        message: String,
    },
}

/// Microseconds since the Unix epoch, the unit of every stored time.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The database handle.
#[derive(Clone)]
pub struct Records {
    backend: Backend,
    /// This process as recorded with the runs it creates or resumes (see [`liveness`]).
    process: Option<std::sync::Arc<str>>,
    /// The runs this process runs now, reported by [`Records::heartbeat`].
    live: std::sync::Arc<heartbeat::LiveRuns>,
}

impl Records {
    /// Connects (creating a SQLite file if needed) and brings the schema up to date.
    /// `sqlite:///abs/file.db`, `sqlite::memory:`, `postgres://...`, or `sqlx+sqlite://...`
    /// (the sqlx path on SQLite, to test the statements PostgreSQL runs without a server).
    pub async fn connect(url: &str) -> Result<Records, RecordsError> {
        Ok(Records {
            backend: Backend::connect(url).await?,
            process: liveness::HostProcess::current().map(|p| p.to_record().into()),
            live: Default::default(),
        })
    }

    /// The same database, recording `process` instead of this process with the runs it
    /// creates, claims and reports: how tests play a host on another machine.
    #[doc(hidden)]
    pub fn as_process(mut self, process: &str) -> Records {
        self.process = Some(process.into());
        self.live = Default::default();
        self
    }

    /// This process as recorded with its runs; none where it cannot be told.
    pub fn process(&self) -> Option<&str> {
        self.process.as_deref()
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Records a loaded component and its tasks (idempotent: a digest is registered once).
    pub async fn register_component(
        &self,
        digest: &str,
        source: &str,
        environment: &str,
        size_bytes: u64,
        tasks: &[TaskSpec],
    ) -> Result<(), RecordsError> {
        let what = format!("registering component {digest}");
        let mut statements = vec![(
            "INSERT INTO components (digest, source, size_bytes, registered_at, environment) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING",
            vec![
                digest.into(),
                source.into(),
                (size_bytes as i64).into(),
                now_micros().into(),
                environment.into(),
            ],
        )];
        for task in tasks {
            let spec_json = serde_json::to_string(task).map_err(|e| RecordsError::Corrupt {
                what: what.clone(),
                field: "spec".into(),
                message: e.to_string(),
            })?;
            statements.push((
                "INSERT INTO tasks (component_digest, name, interface_hash, spec_json) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (component_digest, name) DO NOTHING",
                vec![
                    digest.into(),
                    (&task.name).into(),
                    (&task.interface_hash).into(),
                    spec_json.into(),
                ],
            ));
        }
        self.backend.transaction(&what, &statements).await?;
        Ok(())
    }

    /// Where a registered component was first loaded from.
    pub async fn component_source(&self, digest: &str) -> Result<Option<String>, RecordsError> {
        let rows = self
            .backend()
            .query(
                &format!("reading component {digest}"),
                "SELECT source FROM components WHERE digest = $1",
                vec![digest.into()],
                &[Kind::Text],
            )
            .await?;
        Ok(rows.first().and_then(|r| r[0].text()))
    }

    /// Where the most recently registered component of environment `name` was loaded from.
    pub async fn environment_source(&self, name: &str) -> Result<Option<String>, RecordsError> {
        let rows = self
            .backend()
            .query(
                &format!("finding environment {name}"),
                "SELECT source FROM components WHERE environment = $1 \
                 ORDER BY registered_at DESC LIMIT 1",
                vec![name.into()],
                &[Kind::Text],
            )
            .await?;
        Ok(rows.first().and_then(|r| r[0].text()))
    }

    /// The recorded spec of a task of a registered component.
    pub async fn task_spec(
        &self,
        digest: &str,
        name: &str,
    ) -> Result<Option<TaskSpec>, RecordsError> {
        let what = format!("reading task {name} of component {digest}");
        let rows = self
            .backend
            .query(
                &what,
                "SELECT spec_json FROM tasks WHERE component_digest = $1 AND name = $2",
                vec![digest.into(), name.into()],
                &[Kind::Text],
            )
            .await?;
        let Some(json) = rows.first().and_then(|r| r[0].text()) else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| RecordsError::Corrupt {
                what,
                field: "spec_json".into(),
                message: e.to_string(),
            })
    }
}
