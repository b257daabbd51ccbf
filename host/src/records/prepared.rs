//! The records layer's writes, prepared once per SQLite connection and run through SQLite's C
//! API.
//!
//! Why not rusqlite's statement cache: it finds a statement by hashing its SQL text, takes it
//! out of an LRU list and puts it back after each use, and it binds every text parameter as a
//! copy (`SQLITE_TRANSIENT`: a `malloc` and a `memcpy` each). Counted with callgrind, that was
//! 13 % of the instructions of recording a run in memory (BENCHMARKS.md, "Records layer
//! alone"). Here a statement is found by the address of its SQL, which is a `&'static str`
//! (`events::Statement`), and texts are bound in place (`SQLITE_STATIC`): the parameters
//! outlive the step, and every parameter is bound again before the next one.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::hash::{BuildHasherDefault, Hasher};
use std::ptr::{self, NonNull};

use rusqlite::ffi;

use super::backend::SqlValue;

/// Statements of one connection, by the address and length of their SQL.
pub(super) struct Prepared {
    db: *mut ffi::sqlite3,
    by_sql: HashMap<(usize, usize), NonNull<ffi::sqlite3_stmt>, BuildHasherDefault<AddressHasher>>,
}

/// Hashes the statements' keys, an address and a length chosen by the program, not by a user:
/// one multiply and rotate per word spreads them. (std's SipHash, which resists keys chosen to
/// collide, was 1 % of an in-memory chain run's instructions for its ~12 lookups.)
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        // The multiplier of FxHash (rustc's hasher): odd, with well-spread bits.
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves its best bits high; the table indexes by the low ones.
        self.0.rotate_left(26)
    }
}

// SAFETY: a `Prepared` lives beside its connection under the same mutex (`sqlite::Connection`)
// and is used only while that mutex is held, so one thread at a time uses the connection and its
// statements, as SQLite's multi-thread mode allows.
unsafe impl Send for Prepared {}

/// The error SQLite reports for `code` on `db`, as rusqlite would give it.
fn error(db: *mut ffi::sqlite3, code: c_int) -> rusqlite::Error {
    // SAFETY: `db` is an open connection; `sqlite3_errmsg` returns a NUL-terminated string it
    // owns until the next call on the connection, copied here at once.
    let message = unsafe {
        let text = ffi::sqlite3_errmsg(db);
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), message)
}

/// Refuses a statement whose `$N` parameters do not first appear as `$1`, `$2`, ... in order.
/// PostgreSQL binds `$N` to the Nth value; SQLite numbers named parameters by first appearance
/// and binding here is by that number, so `SET a = $2 WHERE b = $1` would bind the values
/// crosswise on SQLite alone. (A parameter used again later, as `$1` twice, is fine.)
fn check_numbering(stmt: NonNull<ffi::sqlite3_stmt>) -> rusqlite::Result<()> {
    // SAFETY: `stmt` is a prepared statement; parameter names are NUL-terminated strings owned
    // by it, read at once.
    unsafe {
        let count = ffi::sqlite3_bind_parameter_count(stmt.as_ptr());
        for at in 1..=count {
            let name = ffi::sqlite3_bind_parameter_name(stmt.as_ptr(), at);
            let name = (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy());
            if name.as_deref() != Some(format!("${at}").as_str()) {
                return Err(rusqlite::Error::InvalidParameterName(format!(
                    "parameter {at} is {}: number the parameters $1, $2, ... in the order \
                     they first appear",
                    name.as_deref().unwrap_or("unnamed")
                )));
            }
        }
    }
    Ok(())
}

impl Prepared {
    /// Statements for `conn`, which must outlive the returned value (the owner drops this first).
    pub(super) fn new(conn: &rusqlite::Connection) -> Prepared {
        Prepared {
            // SAFETY: the handle is used only while `conn` is open: the owner (`sqlite.rs`)
            // keeps both together and drops this first.
            db: unsafe { conn.handle() },
            by_sql: HashMap::default(),
        }
    }

    fn statement(&mut self, sql: &'static str) -> rusqlite::Result<NonNull<ffi::sqlite3_stmt>> {
        let key = (sql.as_ptr() as usize, sql.len());
        if let Some(stmt) = self.by_sql.get(&key) {
            return Ok(*stmt);
        }
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        let mut stmt = ptr::null_mut();
        let mut tail = ptr::null();
        // SAFETY: `db` is open; `sql` is valid for `len` bytes (no NUL needed with a length);
        // `tail` is left pointing into `sql`.
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr() as *const c_char,
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                &mut tail,
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(error(self.db, code));
        }
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        // SQLite compiles the first statement only: a second one would be silently left out.
        let used = (tail as usize).saturating_sub(sql.as_ptr() as usize);
        let rest = &sql.as_bytes()[used.min(sql.len())..];
        if !rest.iter().all(u8::is_ascii_whitespace) {
            // SAFETY: prepared just now on `db` and not kept.
            unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
            return Err(rusqlite::Error::MultipleStatement);
        }
        if let Err(e) = check_numbering(stmt) {
            // SAFETY: prepared just now on `db` and not kept.
            unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
            return Err(e);
        }
        self.by_sql.insert(key, stmt);
        Ok(stmt)
    }

    /// Runs one write with `params` (numbered in order) and returns the rows it changed.
    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: &[SqlValue],
    ) -> rusqlite::Result<u64> {
        let stmt = self.statement(sql)?.as_ptr();
        // SAFETY: `stmt` belongs to `db` and is not running (each use ends with a reset below).
        // Texts are bound without a copy: `params` outlives the step, and the reset that ends
        // this call comes before anything else runs the statement, which binds every
        // parameter again first.
        unsafe {
            let expected = ffi::sqlite3_bind_parameter_count(stmt);
            if expected != params.len() as c_int {
                return Err(rusqlite::Error::InvalidParameterCount(
                    params.len(),
                    expected.max(0) as usize,
                ));
            }
            for (i, param) in params.iter().enumerate() {
                let at = i as c_int + 1;
                let code = match param {
                    SqlValue::Null | SqlValue::NullInt => ffi::sqlite3_bind_null(stmt, at),
                    SqlValue::Int(n) => ffi::sqlite3_bind_int64(stmt, at, *n),
                    SqlValue::Text(text) => ffi::sqlite3_bind_text64(
                        stmt,
                        at,
                        text.as_ptr() as *const c_char,
                        text.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                };
                if code != ffi::SQLITE_OK {
                    ffi::sqlite3_reset(stmt);
                    return Err(error(self.db, code));
                }
            }
            // Statements prepared with `_v3` give their own error code from the step, and
            // its message on the connection.
            let result = match ffi::sqlite3_step(stmt) {
                ffi::SQLITE_DONE => Ok(ffi::sqlite3_changes64(self.db) as u64),
                ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
                code => Err(error(self.db, code)),
            };
            ffi::sqlite3_reset(stmt);
            result
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        for stmt in self.by_sql.values() {
            // SAFETY: each statement was prepared on `db`, which is still open (see `new`),
            // and is finalized once, here.
            unsafe {
                ffi::sqlite3_finalize(stmt.as_ptr());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(conn: &rusqlite::Connection) -> Vec<(i64, String)> {
        let mut stmt = conn.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn texts_are_stored_as_given_and_errors_leave_the_statement_usable() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        let mut prepared = Prepared::new(&conn);
        const INSERT: &str = "INSERT INTO t (id, v) VALUES ($1, $2)";
        for (id, v) in [(1, "plain"), (2, ""), (3, "é ü \u{1F600}"), (4, "a\0b")] {
            let params = [SqlValue::Int(id), SqlValue::Text(v.to_string())];
            assert_eq!(prepared.execute(INSERT, &params).unwrap(), 1);
        }
        // A repeated key: SQLite's own message, and the statement runs again after it.
        let duplicate = [SqlValue::Int(1), SqlValue::Text("again".into())];
        let failed = prepared
            .execute(INSERT, &duplicate)
            .unwrap_err()
            .to_string();
        assert!(
            failed.contains("UNIQUE constraint failed: t.id"),
            "{failed}"
        );
        // Too few parameters are refused before the step; NULL into NOT NULL fails in it.
        assert!(matches!(
            prepared.execute(INSERT, &[SqlValue::Int(9)]),
            Err(rusqlite::Error::InvalidParameterCount(1, 2))
        ));
        let null = [SqlValue::Int(9), SqlValue::Null];
        let failed = prepared.execute(INSERT, &null).unwrap_err().to_string();
        assert!(
            failed.contains("NOT NULL constraint failed: t.v"),
            "{failed}"
        );
        let params = [SqlValue::Int(5), SqlValue::Text("last".into())];
        assert_eq!(prepared.execute(INSERT, &params).unwrap(), 1);
        const UPDATE: &str = "UPDATE t SET v = $1 WHERE id > $2";
        let params = [SqlValue::Text("x".into()), SqlValue::Int(3)];
        assert_eq!(prepared.execute(UPDATE, &params).unwrap(), 2);
        assert_eq!(
            texts(&conn),
            [
                (1, "plain".to_string()),
                (2, String::new()),
                (3, "é ü \u{1F600}".to_string()),
                (4, "x".to_string()),
                (5, "x".to_string()),
            ]
        );
        // Two statements in one text are refused, not run in part.
        assert!(matches!(
            prepared.execute("UPDATE t SET v = 'y'; DELETE FROM t", &[]),
            Err(rusqlite::Error::MultipleStatement)
        ));
        // Parameters numbered out of order would bind crosswise on SQLite: refused. One used
        // again is fine.
        let failed = prepared
            .execute("UPDATE t SET v = $2 WHERE id = $1", &params)
            .unwrap_err()
            .to_string();
        assert!(
            failed.contains("parameter 1 is $2: number the parameters $1, $2, ..."),
            "{failed}"
        );
        let params = [SqlValue::Text("z".into()), SqlValue::Int(5)];
        const AGAIN: &str = "UPDATE t SET v = $1 WHERE id = $2 AND v != $1";
        assert_eq!(prepared.execute(AGAIN, &params).unwrap(), 1);
        // A query is not a write.
        assert!(matches!(
            prepared.execute("SELECT v FROM t", &[]),
            Err(rusqlite::Error::ExecuteReturnedResults)
        ));
        drop(prepared);
    }
}
