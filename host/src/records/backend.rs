//! The two ways to reach a database, behind one small interface: run statements in a
//! transaction, run a query. Every statement of the records layer is written once, in the SQL
//! that SQLite and PostgreSQL share, with `$1 ... $N` placeholders numbered in order of first use.
//!
//! - `sqlite:` URLs use rusqlite in-process. sqlx's SQLite driver sends every statement to a
//!   worker thread; on these machines one round trip costs about 130 µs, against 13.5 µs for a
//!   whole three-insert transaction in-process (see BENCHMARKS.md), so the embedded default
//!   bypasses it. The connection is used under a mutex on the calling thread: its statements take
//!   microseconds, less than a hand-off to a blocking pool would.
//! - `postgres:` URLs (and `sqlx+sqlite:` for testing this path without a server) use sqlx's
//!   `Any` driver with the same statements and the same migrations.

use std::sync::{Arc, Mutex};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

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
];

static SQLX_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connections kept for a server database.
pub const SERVER_CONNECTIONS: u32 = 16;
/// How long a SQLite writer waits for the lock before giving up.
pub const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Prepared statements kept per SQLite connection.
const SQLITE_STATEMENT_CACHE: usize = 64;

#[derive(Clone)]
pub enum Backend {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Sqlx(AnyPool),
}

fn sqlite_err(what: &str, e: rusqlite::Error) -> RecordsError {
    RecordsError::Sqlite {
        what: what.to_string(),
        source: e,
    }
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
        let what = format!("opening {url}");
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or("");
        let conn = if path == ":memory:" || path.is_empty() {
            rusqlite::Connection::open_in_memory()
        } else {
            rusqlite::Connection::open(path)
        }
        .map_err(|e| sqlite_err(&what, e))?;
        // WAL: readers never block the writer; synchronous=NORMAL: a commit survives a crash of
        // the process (the WAL is synced at checkpoints, so a power cut may lose the latest
        // commits but never corrupts the file).
        //
        // 1 KiB pages (set before the first table exists; ignored for an existing file): rows are
        // small, and each commit appends every page it touched to the WAL, so smaller pages
        // write less per run (measured: 73-89 µs against 101-103 µs per recorded run).
        conn.execute_batch(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON;",
        )
        .map_err(|e| sqlite_err(&what, e))?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)
            .map_err(|e| sqlite_err(&what, e))?;
        conn.set_prepared_statement_cache_capacity(SQLITE_STATEMENT_CACHE);
        migrate_sqlite(&conn).map_err(|e| sqlite_err(&format!("migrating {url}"), e))?;
        Ok(Backend::Sqlite(Arc::new(Mutex::new(conn))))
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
        Ok(Backend::Sqlx(pool))
    }

    /// Runs the statements in one transaction; returns the rows each statement changed.
    pub async fn transaction(
        &self,
        what: &str,
        statements: &[(&str, Vec<SqlValue>)],
    ) -> Result<Vec<u64>, RecordsError> {
        match self {
            Backend::Sqlite(conn) => {
                let conn = match conn.lock() {
                    Ok(c) => c,
                    Err(poisoned) => poisoned.into_inner(),
                };
                // BEGIN and COMMIT go through the statement cache too (rusqlite's `transaction`
                // parses them anew each time).
                let run = |conn: &rusqlite::Connection| -> rusqlite::Result<Vec<u64>> {
                    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                    let mut changed = Vec::with_capacity(statements.len());
                    for (sql, params) in statements {
                        let n = conn
                            .prepare_cached(sql)?
                            .execute(rusqlite::params_from_iter(params.iter()))?;
                        changed.push(n as u64);
                    }
                    conn.prepare_cached("COMMIT")?.execute([])?;
                    Ok(changed)
                };
                let result = run(&conn);
                if result.is_err() && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                result.map_err(|e| sqlite_err(what, e))
            }
            Backend::Sqlx(pool) => {
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
            Backend::Sqlite(conn) => {
                let conn = match conn.lock() {
                    Ok(c) => c,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let mut stmt = conn.prepare_cached(sql).map_err(|e| sqlite_err(what, e))?;
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(params.iter()))
                    .map_err(|e| sqlite_err(what, e))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(|e| sqlite_err(what, e))? {
                    let mut values = Vec::with_capacity(kinds.len());
                    for i in 0..kinds.len() {
                        let v = match row.get_ref(i).map_err(|e| sqlite_err(what, e))? {
                            rusqlite::types::ValueRef::Null => SqlValue::Null,
                            rusqlite::types::ValueRef::Integer(n) => SqlValue::Int(n),
                            rusqlite::types::ValueRef::Text(t) => {
                                SqlValue::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            other => {
                                return Err(RecordsError::Corrupt {
                                    what: what.to_string(),
                                    field: format!("column {i}"),
                                    message: format!("unexpected {:?}", other.data_type()),
                                })
                            }
                        };
                        values.push(v);
                    }
                    out.push(values);
                }
                Ok(out)
            }
            Backend::Sqlx(pool) => {
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

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null | SqlValue::NullInt => ValueRef::Null,
            SqlValue::Int(i) => ValueRef::Integer(*i),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// Applies the migrations not yet applied, tracking them in `PRAGMA user_version`.
fn migrate_sqlite(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, (_name, sql)) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}
