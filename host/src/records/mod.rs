//! The system of record: SQL through sqlx's `Any` driver, so one set of queries and one set of
//! migrations serve the embedded SQLite file and a shared PostgreSQL.
//!
//! Only pointers and small facts live here; input and output documents are in the object store.

mod runs;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use runs::{ActionRecord, AttemptEnd, AttemptRecord, NewRun, RunFilter, RunRecord};

use crate::spec::TaskSpec;

/// Connections kept for a SQLite file (one writer at a time; WAL lets readers run beside it).
pub const SQLITE_FILE_CONNECTIONS: u32 = 4;
/// Connections kept for a server database.
pub const SERVER_CONNECTIONS: u32 = 16;
/// How long a SQLite writer waits for the lock before giving up (10 s).
const SQLITE_BUSY_TIMEOUT_PRAGMA: &str = "PRAGMA busy_timeout = 10000";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
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
    #[error("database: {what}: stored {field} is unreadable: {message}")]
    Corrupt {
        what: String,
        field: String,
        message: String,
    },
}

pub(crate) fn query_err(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> RecordsError {
    let what = what.into();
    move |source| RecordsError::Query { what, source }
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
    pool: AnyPool,
}

impl Records {
    /// Connects (creating a SQLite file if needed) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Records, RecordsError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let in_memory = is_sqlite && url.contains(":memory:") || url.contains("mode=memory");
        let options = AnyPoolOptions::new();
        let options = if in_memory {
            // Each SQLite memory connection is its own database: keep exactly one, forever.
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else if is_sqlite {
            options.max_connections(SQLITE_FILE_CONNECTIONS)
        } else {
            options.max_connections(SERVER_CONNECTIONS)
        };
        let options = options.after_connect(move |conn, _meta| {
            Box::pin(async move {
                if is_sqlite {
                    // WAL: readers never block the writer; synchronous=NORMAL: a commit is
                    // durable against a crash of the process (the WAL is synced at checkpoints,
                    // so a power cut can lose the last commits, never corrupt the file).
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute(SQLITE_BUSY_TIMEOUT_PRAGMA).await?;
                }
                Ok(())
            })
        });
        let url_with_create = if is_sqlite && !in_memory && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let pool =
            options
                .connect(&url_with_create)
                .await
                .map_err(|source| RecordsError::Connect {
                    url: url.to_string(),
                    source,
                })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| RecordsError::Migrate {
                url: url.to_string(),
                source,
            })?;
        Ok(Records { pool })
    }

    /// Records a loaded component and its tasks (idempotent: a digest is registered once).
    pub async fn register_component(
        &self,
        digest: &str,
        source: &str,
        size_bytes: u64,
        tasks: &[TaskSpec],
    ) -> Result<(), RecordsError> {
        let what = format!("registering component {digest}");
        let mut tx = self.pool.begin().await.map_err(query_err(&what))?;
        let inserted = sqlx::query(
            "INSERT INTO components (digest, source, size_bytes, registered_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(source)
        .bind(size_bytes as i64)
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(query_err(&what))?;
        if inserted.rows_affected() > 0 {
            for task in tasks {
                let spec_json = serde_json::to_string(task).map_err(|e| RecordsError::Corrupt {
                    what: what.clone(),
                    field: "spec".into(),
                    message: e.to_string(),
                })?;
                sqlx::query(
                    "INSERT INTO tasks (component_digest, name, interface_hash, spec_json) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(digest)
                .bind(&task.name)
                .bind(&task.interface_hash)
                .bind(spec_json)
                .execute(&mut *tx)
                .await
                .map_err(query_err(&what))?;
            }
        }
        tx.commit().await.map_err(query_err(&what))
    }

    /// The recorded spec of a task of a registered component.
    pub async fn task_spec(
        &self,
        digest: &str,
        name: &str,
    ) -> Result<Option<TaskSpec>, RecordsError> {
        let what = format!("reading task {name} of component {digest}");
        let row: Option<AnyRow> =
            sqlx::query("SELECT spec_json FROM tasks WHERE component_digest = $1 AND name = $2")
                .bind(digest)
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(query_err(&what))?;
        let Some(row) = row else { return Ok(None) };
        let json: String = row.try_get("spec_json").map_err(query_err(&what))?;
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| RecordsError::Corrupt {
                what,
                field: "spec_json".into(),
                message: e.to_string(),
            })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}
