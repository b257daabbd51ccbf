//! The two ways to reach a database, behind one small interface: run statements in a
//! transaction, run a query. Every statement of the records layer is written once, in the SQL
//! that SQLite and PostgreSQL share, with `$1 ... $N` placeholders numbered in order of first use.
//!
//! - `sqlite:` URLs use rusqlite in-process, with group commit (see sqlite.rs).
//! - `postgres:` URLs (and `sqlx+sqlite:` for testing this path without a server) use sqlx's
//!   `Any` driver with the same statements and the same migrations.

use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use super::combined;
use super::events::Statement;
use super::sqlite::Sqlite;
use super::RecordsError;

/// A value bound to, or read from, a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL for a text column.
    Null,
    /// NULL for an integer column (PostgreSQL types every parameter, NULLs included).
    NullInt,
    Int(i64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}
impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}
impl From<&String> for SqlValue {
    fn from(s: &String) -> Self {
        SqlValue::Text(s.clone())
    }
}
impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        SqlValue::Int(i)
    }
}
impl From<Option<i64>> for SqlValue {
    fn from(v: Option<i64>) -> Self {
        v.map_or(SqlValue::NullInt, SqlValue::Int)
    }
}
impl From<Option<&str>> for SqlValue {
    fn from(v: Option<&str>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}
impl From<Option<String>> for SqlValue {
    fn from(v: Option<String>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

impl SqlValue {
    pub fn text(&self) -> Option<String> {
        match self {
            SqlValue::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn int(&self) -> Option<i64> {
        match self {
            SqlValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// How to read a column.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Int,
    Text,
}

/// The migrations, in order (shared by both backends; sqlx reads the same directory).
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        "0002_events_cache_traces",
        include_str!("../../migrations/0002_events_cache_traces.sql"),
    ),
    (
        "0003_cache_inputs",
        include_str!("../../migrations/0003_cache_inputs.sql"),
    ),
    (
        "0004_run_host",
        include_str!("../../migrations/0004_run_host.sql"),
    ),
    (
        "0005_run_heartbeat",
        include_str!("../../migrations/0005_run_heartbeat.sql"),
    ),
];

static SQLX_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connections kept for a server database.
pub const SERVER_CONNECTIONS: u32 = 16;

#[derive(Clone)]
pub enum Backend {
    Sqlite(Arc<Sqlite>),
    Sqlx {
        pool: AnyPool,
        /// A PostgreSQL server: a transaction goes as one statement where it can
        /// (`combined.rs`). `sqlx+sqlite:` keeps one round trip per statement, as the baseline
        /// of the in-process backend.
        postgres: bool,
    },
}

fn sqlx_err(what: &str, e: sqlx::Error) -> RecordsError {
    RecordsError::Query {
        what: what.to_string(),
        source: e,
    }
}

impl Backend {
    pub async fn connect(url: &str) -> Result<Backend, RecordsError> {
        if let Some(rest) = url.strip_prefix("sqlx+") {
            return Self::connect_sqlx(rest, url).await;
        }
        if url.starts_with("sqlite:") {
            return Self::connect_sqlite(url);
        }
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return Self::connect_sqlx(url, url).await;
        }
        Err(RecordsError::Url {
            url: url.to_string(),
            message: "expected sqlite://PATH, sqlite::memory: or postgres://...".into(),
        })
    }

    fn connect_sqlite(url: &str) -> Result<Backend, RecordsError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or("");
        Ok(Backend::Sqlite(Arc::new(Sqlite::open(
            url, path, MIGRATIONS,
        )?)))
    }

    async fn connect_sqlx(sqlx_url: &str, url: &str) -> Result<Backend, RecordsError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = sqlx_url.starts_with("sqlite:");
        let options =
            AnyPoolOptions::new().max_connections(if is_sqlite { 1 } else { SERVER_CONNECTIONS });
        let options = options.after_connect(move |conn, _meta| {
            Box::pin(async move {
                if is_sqlite {
                    // The same settings as the in-process backend, so the two compare fairly.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        });
        let pool = options
            .connect(sqlx_url)
            .await
            .map_err(|source| RecordsError::Connect {
                url: url.to_string(),
                source,
            })?;
        SQLX_MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| RecordsError::Migrate {
                url: url.to_string(),
                source,
            })?;
        Ok(Backend::Sqlx {
            pool,
            postgres: !is_sqlite,
        })
    }

    /// Runs the statements in one transaction; returns the rows each statement changed.
    pub async fn transaction(
        &self,
        what: &str,
        statements: &[Statement],
    ) -> Result<Vec<u64>, RecordsError> {
        match self {
            Backend::Sqlite(db) => db.transaction(what, statements).await,
            Backend::Sqlx { pool, postgres } => {
                if *postgres {
                    if let Some(changed) = one_round_trip(pool, what, statements).await? {
                        return Ok(changed);
                    }
                }
                let mut tx = pool.begin().await.map_err(|e| sqlx_err(what, e))?;
                let mut changed = Vec::with_capacity(statements.len());
                for (sql, params) in statements {
                    let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(*sql)), params);
                    let result = query
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| sqlx_err(what, e))?;
                    changed.push(result.rows_affected());
                }
                tx.commit().await.map_err(|e| sqlx_err(what, e))?;
                Ok(changed)
            }
        }
    }

    /// Runs a query and reads its columns as `kinds` says.
    pub async fn query(
        &self,
        what: &str,
        sql: &str,
        params: Vec<SqlValue>,
        kinds: &[Kind],
    ) -> Result<Vec<Vec<SqlValue>>, RecordsError> {
        match self {
            Backend::Sqlite(db) => db.query(what, sql, &params, kinds),
            Backend::Sqlx { pool, .. } => {
                let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &params);
                let rows: Vec<AnyRow> =
                    query.fetch_all(pool).await.map_err(|e| sqlx_err(what, e))?;
                rows.iter()
                    .map(|row| {
                        kinds
                            .iter()
                            .enumerate()
                            .map(|(i, kind)| match kind {
                                Kind::Int => row.try_get::<Option<i64>, _>(i).map(SqlValue::from),
                                Kind::Text => {
                                    row.try_get::<Option<String>, _>(i).map(SqlValue::from)
                                }
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| sqlx_err(what, e))
            }
        }
    }
}

/// Runs a transaction on PostgreSQL in one round trip when it can: a single statement on its
/// own (a statement is a transaction), several combined into one (`combined.rs`). None when
/// the statements must go one by one.
async fn one_round_trip(
    pool: &AnyPool,
    what: &str,
    statements: &[Statement],
) -> Result<Option<Vec<u64>>, RecordsError> {
    if let [(sql, params)] = statements {
        let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(*sql)), params);
        let result = query.execute(pool).await.map_err(|e| sqlx_err(what, e))?;
        return Ok(Some(vec![result.rows_affected()]));
    }
    if !combined::combinable(statements) {
        return Ok(None);
    }
    let (sql, params) = combined::combine(statements);
    let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &params);
    let row = query.fetch_one(pool).await.map_err(|e| sqlx_err(what, e))?;
    let changed = (0..statements.len())
        .map(|i| row.try_get::<i64, _>(i).map(|n| n.max(0) as u64))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx_err(what, e))?;
    Ok(Some(changed))
}

/// Binds `params` in order to an sqlx query.
fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    params: &[SqlValue],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for p in params {
        query = match p {
            SqlValue::Null => query.bind(Option::<String>::None),
            SqlValue::NullInt => query.bind(Option::<i64>::None),
            SqlValue::Int(i) => query.bind(*i),
            SqlValue::Text(s) => query.bind(s.clone()),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Records, RunFilter};

    /// A database written before the last migration (a home from an earlier sluice) opens with
    /// its runs intact, and the new column reads as unknown rather than as a stopped host.
    #[tokio::test]
    async fn a_database_from_before_the_last_migration_keeps_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let path = path.to_str().unwrap();
        let url = format!("sqlite://{path}");
        let before = &MIGRATIONS[..MIGRATIONS.len() - 1];
        let old = Sqlite::open(&url, path, before).unwrap();
        old.transaction(
            "an old run",
            &[(
                "INSERT INTO runs (id, project, domain, component_digest, task, phase, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    "r1".into(),
                    "p".into(),
                    "d".into(),
                    "digest".into(),
                    "t".into(),
                    "running".into(),
                    1i64.into(),
                ],
            )],
        )
        .await
        .unwrap();
        drop(old);
        let records = Records::connect(&url).await.unwrap();
        let runs = records
            .list_runs(&RunFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (runs[0].id.as_str(), runs[0].phase.as_str()),
            ("r1", "running")
        );
        assert_eq!((runs[0].host.as_deref(), runs[0].host_gone), (None, false));
        assert_eq!(runs[0].heartbeat_at, None);
    }
}
