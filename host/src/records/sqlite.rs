//! The embedded database: one SQLite connection used in-process (rusqlite), with group commit.
//!
//! sqlx's SQLite driver sends every statement to a worker thread; on these machines one round
//! trip costs about 130 µs, against 13.5 µs for a whole three-insert transaction in-process (see
//! BENCHMARKS.md), so the embedded default bypasses it and runs statements on the calling thread.
//!
//! Group commit: when transactions arrive while another is being written (children of a fan-out
//! recording their starts and ends), they queue, and the writer that holds the connection commits
//! the whole queue as one transaction, each caller's statements inside their own savepoint. A
//! commit writes every page it touched to the WAL, and concurrent children touch the same pages
//! (the tail of `actions`, `attempts`, `events`), so one commit for many writes each shared page
//! once; a waiting caller's thread meanwhile runs other tasks instead of blocking on a lock. A lone transaction (a chain of runs) takes the same path as before: no queue, no thread
//! hand-off. Each caller still gets its own result: a statement that fails rolls back its
//! caller's savepoint only; a failed commit fails every caller in it.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::backend::{Kind, SqlValue};
use super::events::Statement;
use super::prepared::Prepared;
use super::RecordsError;

/// How a SQLite writer waits for the lock before giving up.
pub const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Prepared statements kept per SQLite connection.
const SQLITE_STATEMENT_CACHE: usize = 64;
/// Queued transactions committed together at most; a longer queue takes several commits.
pub const GROUP_COMMIT_MAX: usize = 512;
/// WAL pages between automatic checkpoints (SQLite's default is 1,000). Checkpoints copy pages
/// back to the database file and sync it; with 1 KiB pages the default made one every 1 MiB
/// of WAL, several a second under a fan-out, each rewriting the same hot pages.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 8192;

fn sqlite_err(what: &str, e: rusqlite::Error) -> RecordsError {
    RecordsError::Sqlite {
        what: what.to_string(),
        source: e,
    }
}

/// One caller's transaction waiting in the queue.
struct Queued {
    what: String,
    statements: Vec<Statement>,
    reply: oneshot::Sender<Result<Vec<u64>, RecordsError>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Queued>,
    /// A caller is writing and will commit what waits before it lets go.
    writing: bool,
    /// A caller queued behind the last writer: transactions are arriving concurrently, so the
    /// next writer lets others join its commit.
    contended: bool,
}

/// The connection and the writes prepared on it. Fields drop in order: the statements are
/// finalized before the connection closes.
struct Connection {
    prepared: Prepared,
    conn: rusqlite::Connection,
}

pub struct Sqlite {
    conn: Mutex<Connection>,
    queue: Mutex<Queue>,
    /// A database file (not `:memory:`): its commits write the WAL.
    on_disk: bool,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Takes up to [`GROUP_COMMIT_MAX`] transactions from the front of the queue.
fn take_batch(queue: &mut Queue) -> Vec<Queued> {
    let take = queue.waiting.len().min(GROUP_COMMIT_MAX);
    queue.waiting.drain(..take).collect()
}

/// The writer's role, given up however the writer leaves. A writer whose future is dropped
/// while it yields still commits what waits (synchronously), so no caller is failed by another's
/// cancellation; after a panic, what waits is dropped and its callers get an error.
struct Writing<'a> {
    db: &'a Sqlite,
    armed: bool,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if std::thread::panicking() {
            let mut queue = locked(&self.db.queue);
            queue.writing = false;
            queue.waiting.clear();
        } else {
            self.db.drain();
        }
    }
}

impl Sqlite {
    /// Opens (or creates) the database at `path` (`:memory:` or empty for an in-memory one)
    /// and applies the migrations not yet applied.
    pub fn open(
        url: &str,
        path: &str,
        migrations: &[(&str, &str)],
    ) -> Result<Sqlite, RecordsError> {
        let what = format!("opening {url}");
        let on_disk = !(path == ":memory:" || path.is_empty());
        let conn = if !on_disk {
            rusqlite::Connection::open_in_memory()
        } else {
            // The default VFS but for WAL frames, which it writes with one call each.
            let vfs = super::wal_vfs::register().map_err(|source| RecordsError::Vfs {
                url: url.to_string(),
                source,
            })?;
            rusqlite::Connection::open_with_flags_and_vfs(path, rusqlite::OpenFlags::default(), vfs)
        }
        .map_err(|e| sqlite_err(&what, e))?;
        // WAL: readers never block the writer; synchronous=NORMAL: a commit survives a crash of
        // the process (the WAL is synced at checkpoints, so a power cut may lose the latest
        // commits but never corrupts the file).
        //
        // 1 KiB pages (set before the first table exists; ignored for an existing file): rows are
        // small, and each commit appends every page it touched to the WAL, so smaller pages
        // write less per run (measured: 73-89 µs against 101-103 µs per recorded run).
        conn.execute_batch(&format!(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
        ))
        .map_err(|e| sqlite_err(&what, e))?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)
            .map_err(|e| sqlite_err(&what, e))?;
        conn.set_prepared_statement_cache_capacity(SQLITE_STATEMENT_CACHE);
        migrate(&conn, migrations).map_err(|e| sqlite_err(&format!("migrating {url}"), e))?;
        Ok(Sqlite {
            conn: Mutex::new(Connection {
                prepared: Prepared::new(&conn),
                conn,
            }),
            queue: Mutex::default(),
            on_disk,
        })
    }

    /// Runs the statements in one transaction (perhaps shared with other callers' transactions,
    /// each in its own savepoint); returns the rows each statement changed.
    pub async fn transaction(
        &self,
        what: &str,
        statements: &[Statement],
    ) -> Result<Vec<u64>, RecordsError> {
        let (waiting, contended) = {
            let mut queue = locked(&self.queue);
            if queue.writing {
                queue.contended = true;
                let (reply, answer) = oneshot::channel();
                queue.waiting.push(Queued {
                    what: what.to_string(),
                    statements: statements.to_vec(),
                    reply,
                });
                (Some(answer), true)
            } else {
                queue.writing = true;
                (None, std::mem::take(&mut queue.contended))
            }
        };
        if let Some(answer) = waiting {
            return answer.await.unwrap_or_else(|_| {
                Err(RecordsError::Shared {
                    what: what.to_string(),
                    message: "the writer committing it stopped".into(),
                })
            });
        }
        let mut writing = Writing {
            db: self,
            armed: true,
        };
        // When callers have been queueing, let the other ready tasks of this thread run first:
        // under a fan-out they are children about to record their starts and ends, which then
        // commit with this one. Only worth it when a commit writes to a file (measured: a
        // 10,000-child fan-out took 1.87 s against 1.9 - 2.2 s without; in memory it was
        // slower, 0.77 - 0.97 s against 0.66 s), and only under contention: a lone caller (a
        // chain of runs) has no one to wait for (measured, alternating: 334 - 363 µs per run
        // against 355 - 411 µs yielding every time; the fan-out did not change).
        if self.on_disk && contended {
            tokio::task::yield_now().await;
        }
        let first = self.take_waiting();
        let own = if first.is_empty() {
            self.commit_alone(what, statements)
        } else {
            let (reply, mut answer) = oneshot::channel();
            let mut batch = Vec::with_capacity(first.len() + 1);
            batch.push(Queued {
                what: what.to_string(),
                statements: statements.to_vec(),
                reply,
            });
            batch.extend(first);
            self.commit_group(batch);
            answer.try_recv().unwrap_or_else(|_| {
                Err(RecordsError::Shared {
                    what: what.to_string(),
                    message: "the shared commit gave no answer".into(),
                })
            })
        };
        self.drain();
        writing.armed = false;
        own
    }

    /// Up to [`GROUP_COMMIT_MAX`] waiting transactions.
    fn take_waiting(&self) -> Vec<Queued> {
        take_batch(&mut locked(&self.queue))
    }

    /// Commits what waits until nothing does, then gives up the writer's role: it is given up
    /// under the queue's lock at the moment the queue is seen empty, so no caller is left
    /// waiting with no writer.
    fn drain(&self) {
        loop {
            let batch: Vec<Queued> = {
                let mut queue = locked(&self.queue);
                if queue.waiting.is_empty() {
                    queue.writing = false;
                    return;
                }
                take_batch(&mut queue)
            };
            self.commit_group(batch);
        }
    }

    fn commit_alone(&self, what: &str, statements: &[Statement]) -> Result<Vec<u64>, RecordsError> {
        let mut guard = locked(&self.conn);
        let Connection { prepared, conn } = &mut *guard;
        let result = (|| {
            // BEGIN and COMMIT are prepared once too (rusqlite's `transaction` parses them
            // anew each time).
            prepared.execute("BEGIN IMMEDIATE", &[])?;
            let changed = execute_all(prepared, statements)?;
            prepared.execute("COMMIT", &[])?;
            Ok(changed)
        })();
        if result.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        result.map_err(|e| sqlite_err(what, e))
    }

    /// Commits several callers' transactions as one, each in a savepoint, and answers each.
    fn commit_group(&self, batch: Vec<Queued>) {
        let mut guard = locked(&self.conn);
        let Connection { prepared, conn } = &mut *guard;
        let shared_failure = |batch: Vec<Queued>, message: String| {
            for queued in batch {
                let _ = queued.reply.send(Err(RecordsError::Shared {
                    what: queued.what,
                    message: message.clone(),
                }));
            }
        };
        if let Err(e) = prepared.execute("BEGIN IMMEDIATE", &[]) {
            return shared_failure(batch, format!("beginning the shared transaction: {e}"));
        }
        let results = match in_savepoints(prepared, &batch) {
            Ok(results) => results,
            // A savepoint itself failed (SQLite may have rolled the whole transaction back):
            // nothing of the group can be trusted to commit.
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return shared_failure(batch, format!("in the shared transaction: {e}"));
            }
        };
        if let Err(e) = prepared.execute("COMMIT", &[]) {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return shared_failure(batch, format!("committing the shared transaction: {e}"));
        }
        for (queued, result) in batch.into_iter().zip(results) {
            let _ = queued.reply.send(result);
        }
    }

    /// Runs a query and reads its columns as `kinds` says.
    pub fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[SqlValue],
        kinds: &[Kind],
    ) -> Result<Vec<Vec<SqlValue>>, RecordsError> {
        let guard = locked(&self.conn);
        let mut stmt = guard
            .conn
            .prepare_cached(sql)
            .map_err(|e| sqlite_err(what, e))?;
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
}

/// Runs each caller's statements in a savepoint of its own; a caller whose statement fails has
/// only its own statements undone. `Err` when a savepoint cannot be made, released or undone.
fn in_savepoints(
    prepared: &mut Prepared,
    batch: &[Queued],
) -> rusqlite::Result<Vec<Result<Vec<u64>, RecordsError>>> {
    let mut results = Vec::with_capacity(batch.len());
    for queued in batch {
        prepared.execute("SAVEPOINT caller", &[])?;
        match execute_all(prepared, &queued.statements) {
            Ok(changed) => results.push(Ok(changed)),
            Err(failed) => {
                prepared.execute("ROLLBACK TO caller", &[])?;
                results.push(Err(sqlite_err(&queued.what, failed)));
            }
        }
        prepared.execute("RELEASE caller", &[])?;
    }
    Ok(results)
}

fn execute_all(prepared: &mut Prepared, statements: &[Statement]) -> rusqlite::Result<Vec<u64>> {
    statements
        .iter()
        .map(|(sql, params)| prepared.execute(sql, params))
        .collect()
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
fn migrate(
    conn: &rusqlite::Connection,
    migrations: &[(&str, &str)],
) -> Result<(), rusqlite::Error> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, (_name, sql)) in migrations.iter().enumerate().skip(applied.max(0) as usize) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[(&str, &str)] = &[("t", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")];
    const INSERT: &str = "INSERT INTO t (id, v) VALUES ($1, $2)";

    fn insert(id: i64) -> Statement {
        (INSERT, vec![id.into(), format!("row {id}").into()])
    }

    fn ids(db: &Sqlite) -> Vec<i64> {
        db.query("reading", "SELECT id FROM t ORDER BY id", &[], &[Kind::Int])
            .unwrap()
            .iter()
            .filter_map(|row| row[0].int())
            .collect()
    }

    fn queued(
        what: &str,
        statements: Vec<Statement>,
    ) -> (Queued, oneshot::Receiver<Result<Vec<u64>, RecordsError>>) {
        let (reply, answer) = oneshot::channel();
        let what = what.to_string();
        (
            Queued {
                what,
                statements,
                reply,
            },
            answer,
        )
    }

    #[test]
    fn a_failing_caller_in_a_group_loses_only_its_own_statements() {
        let db = Sqlite::open("sqlite::memory:", ":memory:", TABLE).unwrap();
        let (a, a_answer) = queued("caller a", vec![insert(1)]);
        // b inserts 2, then 1 again: its first insert must be undone with it.
        let (b, b_answer) = queued("caller b", vec![insert(2), insert(1)]);
        let (c, c_answer) = queued("caller c", vec![insert(3)]);
        db.commit_group(vec![a, b, c]);
        assert_eq!(a_answer.blocking_recv().unwrap().unwrap(), [1]);
        let b_error = b_answer.blocking_recv().unwrap().unwrap_err().to_string();
        assert!(
            b_error.contains("caller b") && b_error.contains("UNIQUE"),
            "{b_error}"
        );
        assert_eq!(c_answer.blocking_recv().unwrap().unwrap(), [1]);
        assert_eq!(ids(&db), [1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_each_get_their_own_result() {
        // A file, so writers yield and callers queue and commit in groups.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group.db");
        let path = path.to_str().unwrap();
        let db = std::sync::Arc::new(Sqlite::open(path, path, TABLE).unwrap());
        let tasks: Vec<_> = (0..400i64)
            .map(|i| {
                let db = db.clone();
                // Every tenth caller collides with the one before it.
                let id = if i % 10 == 9 { i - 1 } else { i };
                tokio::spawn(async move { (i, db.transaction("inserting", &[insert(id)]).await) })
            })
            .collect();
        let mut failed = 0;
        for task in tasks {
            let (i, result) = task.await.unwrap();
            match result {
                Ok(changed) => assert_eq!(changed, [1], "caller {i}"),
                Err(_) => failed += 1,
            }
        }
        assert_eq!(failed, 40);
        assert_eq!(ids(&db).len(), 360);
    }
}
