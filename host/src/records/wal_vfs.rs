//! A SQLite VFS that is the platform's default VFS except for one thing: the frames a
//! transaction appends to a write-ahead log reach the kernel as one `pwrite` at its commit,
//! instead of two per frame.
//!
//! SQLite writes a WAL frame as its 24-byte header and then its page, in two calls, and a
//! recorded run commits about ten 1 KiB frames per transaction. On these VMs each of those
//! calls costs more than the bytes it carries (an ext4 append of 1 KiB costs about 2 µs, ten
//! times what its copy does; BENCHMARKS.md, "Records layer alone").
//!
//! How it stays correct: writes to a WAL file that continue each other (each starts where the
//! previous one ended) are gathered in order and go out together; a write anywhere else first
//! sends what was gathered, and so does every other call on the file (read, sync, size,
//! truncate, lock, close), so SQLite never observes the file in a state it did not ask for.
//! What is gathered goes out at the latest with the page of a commit frame (a frame whose
//! header carries the database size, bytes 4..8): SQLite writes the frames of a transaction,
//! commit frame last, and only then publishes them in the WAL index where other connections
//! and processes look, so by then they are in the file, and an error writing them is the
//! commit frame's error, which fails the transaction. Frames of a transaction too large to
//! commit at once (spilled from the page cache), or of a commit larger than
//! `MAX_GATHERED_BYTES`, are sent in pieces of at most that size, in order. The one place SQLite writes
//! a frame header over bytes it has just read, `walRewriteChecksums`, may publish right after
//! the last one, so such a write goes out at once. Everything else (database files, journals,
//! the shared-memory index, locks) is the default VFS untouched.

use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the database with.
pub const VFS_NAME: &CStr = c"sluice-wal";

/// Size of a WAL frame header (SQLite's `WAL_FRAME_HDRSIZE`).
const FRAME_HEADER_BYTES: usize = 24;
/// Where a frame header keeps the database size after a commit (0 in frames that do not end a
/// transaction): big-endian, bytes 4..8.
const COMMIT_SIZE_FIELD: std::ops::Range<usize> = 4..8;
/// Most bytes gathered into one write. The default unix VFS writes at most 128 KiB - 1 bytes per
/// call (it masks the length to 17 bits: SQLite itself never writes more than a 64 KiB page at
/// once) and reports anything longer as a full disk, so a write must stay below that; this also
/// bounds the memory a connection holds.
const MAX_GATHERED_BYTES: usize = 64 << 10;

/// Writes SQLite asked for on WAL files, and writes made to the kernel, in this process.
static WAL_WRITES_ASKED: AtomicU64 = AtomicU64::new(0);
static WAL_WRITES_MADE: AtomicU64 = AtomicU64::new(0);

/// WAL writes SQLite asked for and writes that reached the kernel, in this process so far
/// (the benchmarks compare the two).
pub fn wal_writes() -> (u64, u64) {
    (
        WAL_WRITES_ASKED.load(Ordering::Relaxed),
        WAL_WRITES_MADE.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
thread_local! {
    /// The same two counts for the calling thread alone. SQLite writes on the thread that calls
    /// it, and tests run side by side in one process: a test that compares the counts reads its
    /// own, which the others' writes cannot tip.
    static THREAD_WAL_WRITES: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Adds to the calling thread's counts (tests only).
fn count_on_this_thread(asked: u64, made: u64) {
    #[cfg(test)]
    THREAD_WAL_WRITES.with(|counts| {
        let (a, m) = counts.get();
        counts.set((a + asked, m + made));
    });
    #[cfg(not(test))]
    let _ = (asked, made);
}

#[derive(Debug, thiserror::Error)]
pub enum WalVfsError {
    #[error("SQLite has no default VFS to build on")]
    NoDefault,
    #[error("registering the {VFS_NAME:?} SQLite VFS failed with code {0}")]
    Register(c_int),
}

/// An open WAL file: our methods first (SQLite sees this as its `sqlite3_file`), the default
/// VFS's own file object after it in the same allocation.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Bytes gathered, not yet written, and the file offset they start at.
    gathered: Vec<u8>,
    gathered_at: i64,
    /// The last gathered write was the header of a commit frame: its page is the last write.
    commit_page_next: bool,
    /// The last call on the file was a read of this range (offset, length).
    last_read: Option<(i64, i64)>,
}

/// Where the default VFS's file object starts inside the allocation SQLite gives `xOpen`.
const INNER_OFFSET: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

/// The default VFS, kept for `xOpen` (SQLite never unregisters it).
struct DefaultVfs(*mut ffi::sqlite3_vfs);
// SAFETY: a registered sqlite3_vfs is immutable and process-wide; SQLite calls it from any thread.
unsafe impl Send for DefaultVfs {}
unsafe impl Sync for DefaultVfs {}

static REGISTERED: OnceLock<Result<DefaultVfs, c_int>> = OnceLock::new();

/// Registers the VFS (once per process) and returns its name.
pub fn register() -> Result<&'static CStr, WalVfsError> {
    let outcome = REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register are thread-safe; the VFS struct is
        // leaked, so it outlives every connection that uses it.
        unsafe {
            let default = ffi::sqlite3_vfs_find(ptr::null());
            if default.is_null() {
                return Err(ffi::SQLITE_NOTFOUND);
            }
            let mut vfs: ffi::sqlite3_vfs = ptr::read(default);
            vfs.szOsFile = (INNER_OFFSET as c_int).saturating_add((*default).szOsFile);
            vfs.zName = VFS_NAME.as_ptr();
            vfs.pNext = ptr::null_mut();
            vfs.xOpen = Some(open);
            let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
            Ok(DefaultVfs(default))
        }
    });
    match outcome {
        Ok(_) => Ok(VFS_NAME),
        Err(rc) if *rc == ffi::SQLITE_NOTFOUND => Err(WalVfsError::NoDefault),
        Err(rc) => Err(WalVfsError::Register(*rc)),
    }
}

fn default_vfs() -> *mut ffi::sqlite3_vfs {
    match REGISTERED.get() {
        Some(Ok(DefaultVfs(vfs))) => *vfs,
        _ => ptr::null_mut(),
    }
}

/// `xOpen`: WAL files get our methods around the default file; every other file is the
/// default file itself, placed at the start of the allocation as if we were not here.
unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let default = default_vfs();
    let Some(default_open) = (unsafe { default.as_ref() }).and_then(|d| d.xOpen) else {
        return ffi::SQLITE_ERROR;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        return unsafe { default_open(default, name, file, flags, out_flags) };
    }
    let inner = unsafe { file.cast::<u8>().add(INNER_OFFSET) }.cast::<ffi::sqlite3_file>();
    let rc = unsafe { default_open(default, name, inner, flags, out_flags) };
    if rc != ffi::SQLITE_OK {
        // SQLite does not close a file whose open failed; it checks pMethods for that.
        unsafe { (*file).pMethods = ptr::null() };
        return rc;
    }
    let wal = WalFile {
        base: ffi::sqlite3_file {
            pMethods: &WAL_METHODS,
        },
        inner,
        // Grows to one transaction's frames at the first commit.
        gathered: Vec::new(),
        gathered_at: 0,
        commit_page_next: false,
        last_read: None,
    };
    // SAFETY: SQLite allocated szOsFile bytes, which covers WalFile and the inner file.
    unsafe { ptr::write(file.cast::<WalFile>(), wal) };
    ffi::SQLITE_OK
}

/// Version 1 methods: a WAL file is never memory-mapped and has no shared memory of its own.
static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(wal_lock),
    xUnlock: Some(wal_unlock),
    xCheckReservedLock: Some(wal_check_reserved_lock),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(wal_sector_size),
    xDeviceCharacteristics: Some(wal_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// # Safety
/// `file` must be a file our `open` set up as a WAL file and not yet closed.
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    unsafe { &mut *file.cast::<WalFile>() }
}

fn methods(wal: &WalFile) -> &ffi::sqlite3_io_methods {
    // SAFETY: the default VFS set pMethods when it opened the inner file.
    unsafe { &*(*wal.inner).pMethods }
}

/// The one way bytes reach the WAL file (and the count of writes made).
fn write_inner(wal: &WalFile, bytes: *const c_void, len: usize, offset: i64) -> c_int {
    WAL_WRITES_MADE.fetch_add(1, Ordering::Relaxed);
    count_on_this_thread(0, 1);
    match methods(wal).xWrite {
        // SAFETY: bytes points at len readable bytes; the inner file is open.
        Some(write) => unsafe { write(wal.inner, bytes, len as c_int, offset) },
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

/// Writes what was gathered, if anything, as SQLite asked for it.
fn send_gathered(wal: &mut WalFile) -> c_int {
    wal.commit_page_next = false;
    if wal.gathered.is_empty() {
        return ffi::SQLITE_OK;
    }
    let rc = write_inner(
        wal,
        wal.gathered.as_ptr().cast(),
        wal.gathered.len(),
        wal.gathered_at,
    );
    wal.gathered.clear();
    rc
}

/// Every call but a write goes through here: nothing stays gathered across it.
fn before_other_call(wal: &mut WalFile) -> c_int {
    wal.last_read = None;
    send_gathered(wal)
}

unsafe extern "C" fn wal_write(
    file: *mut ffi::sqlite3_file,
    bytes: *const c_void,
    len: c_int,
    offset: i64,
) -> c_int {
    let wal = unsafe { wal(file) };
    WAL_WRITES_ASKED.fetch_add(1, Ordering::Relaxed);
    count_on_this_thread(1, 0);
    let just_read = wal.last_read.take();
    let Ok(count) = usize::try_from(len) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let continues = offset == wal.gathered_at + wal.gathered.len() as i64;
    if !wal.gathered.is_empty() && !continues {
        let rc = send_gathered(wal);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    // A header written over bytes just read is a checksum rewrite: SQLite may publish the WAL
    // right after it, so it goes out at once. (The read sent anything gathered before it.)
    let rewrites_what_was_read = just_read
        .is_some_and(|(at, read_len)| at <= offset && offset + count as i64 <= at + read_len);
    if rewrites_what_was_read {
        return write_inner(wal, bytes, count, offset);
    }
    // SAFETY: SQLite passes len readable bytes.
    let data = unsafe { std::slice::from_raw_parts(bytes.cast::<u8>(), count) };
    if wal.gathered.len() + count > MAX_GATHERED_BYTES {
        let commit_page = wal.commit_page_next;
        let rc = send_gathered(wal);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if count > MAX_GATHERED_BYTES || commit_page {
            // A write this large alone (a page of 64 KiB) goes out as SQLite asked for it, and
            // so does a commit frame's page whose header was just sent.
            return write_inner(wal, bytes, count, offset);
        }
    }
    if wal.gathered.is_empty() {
        wal.gathered_at = offset;
    }
    let ends_commit = wal.commit_page_next;
    wal.commit_page_next =
        count == FRAME_HEADER_BYTES && data[COMMIT_SIZE_FIELD].iter().any(|&b| b != 0);
    wal.gathered.extend_from_slice(data);
    if ends_commit {
        return send_gathered(wal);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn wal_read(
    file: *mut ffi::sqlite3_file,
    bytes: *mut c_void,
    len: c_int,
    offset: i64,
) -> c_int {
    let wal = unsafe { wal(file) };
    let rc = before_other_call(wal);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let rc = match methods(wal).xRead {
        Some(read) => unsafe { read(wal.inner, bytes, len, offset) },
        None => ffi::SQLITE_IOERR_READ,
    };
    wal.last_read = Some((offset, i64::from(len)));
    rc
}

unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    let wal_file = unsafe { wal(file) };
    let released = before_other_call(wal_file);
    let closed = match methods(wal_file).xClose {
        Some(close) => unsafe { close(wal_file.inner) },
        None => ffi::SQLITE_OK,
    };
    // SAFETY: written by `open`; SQLite frees the allocation itself after xClose.
    unsafe { ptr::drop_in_place(file.cast::<WalFile>()) };
    if released != ffi::SQLITE_OK {
        released
    } else {
        closed
    }
}

/// Defines a WAL method that sends what was gathered, then calls the default file's method.
macro_rules! passes_through {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let wal = unsafe { wal(file) };
            let rc = before_other_call(wal);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            match methods(wal).$method {
                Some(method) => unsafe { method(wal.inner $(, $arg)*) },
                None => $missing,
            }
        }
    };
}

passes_through!(wal_truncate, xTruncate, (size: i64), ffi::SQLITE_IOERR_TRUNCATE);
passes_through!(wal_sync, xSync, (flags: c_int), ffi::SQLITE_IOERR_FSYNC);
passes_through!(wal_file_size, xFileSize, (size: *mut i64), ffi::SQLITE_IOERR_FSTAT);
passes_through!(wal_lock, xLock, (level: c_int), ffi::SQLITE_IOERR_LOCK);
passes_through!(wal_unlock, xUnlock, (level: c_int), ffi::SQLITE_IOERR_UNLOCK);
passes_through!(
    wal_check_reserved_lock,
    xCheckReservedLock,
    (out: *mut c_int),
    ffi::SQLITE_IOERR_CHECKRESERVEDLOCK
);
passes_through!(
    wal_file_control,
    xFileControl,
    (op: c_int, arg: *mut c_void),
    ffi::SQLITE_NOTFOUND
);

unsafe extern "C" fn wal_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let wal = unsafe { wal(file) };
    match methods(wal).xSectorSize {
        Some(method) => unsafe { method(wal.inner) },
        None => 4096,
    }
}

unsafe extern "C" fn wal_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let wal = unsafe { wal(file) };
    match methods(wal).xDeviceCharacteristics {
        Some(method) => unsafe { method(wal.inner) },
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    fn open_ours(path: &std::path::Path) -> Connection {
        let name = register().expect("registering the VFS");
        let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), name)
            .expect("opening through the VFS");
        conn.execute_batch(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
        )
        .expect("pragmas");
        conn
    }

    /// A database through the VFS with the table the tests fill, `t (k, v)`.
    fn open_table(path: &std::path::Path) -> Connection {
        let conn = open_ours(path);
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
            .expect("table");
        conn
    }

    /// Writes row `key-<i>` (five digits) with value `v`, replacing one already there.
    fn put(conn: &Connection, i: usize, v: &str) {
        conn.execute(
            "INSERT OR REPLACE INTO t VALUES (?1, ?2)",
            (format!("key-{i:05}"), v),
        )
        .expect("write");
    }

    /// What a process killed now would leave: the database and WAL files as they are on disk,
    /// copied elsewhere (without the shared-memory index) and opened through the default VFS,
    /// which rebuilds the index from the WAL and stops at the first frame whose checksum does
    /// not chain. Returns the row count, the integrity check and the value of `key`.
    fn after_a_crash(path: &std::path::Path, key: &str) -> (i64, String, String) {
        let copy = tempfile::tempdir().expect("temporary directory");
        let db = copy.path().join("copy.db");
        std::fs::copy(path, &db).expect("copying the database");
        let wal = path.with_extension("db-wal");
        std::fs::copy(&wal, copy.path().join("copy.db-wal")).expect("copying the WAL");
        let other = Connection::open(&db).expect("opening with the default VFS");
        let count = other
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        let check = other
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity check");
        let value = other
            .query_row("SELECT v FROM t WHERE k = ?1", [key], |r| r.get(0))
            .expect("row");
        (count, check, value)
    }

    #[test]
    fn each_commit_is_one_write_and_survives_a_crash() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("a.db");
        let conn = open_table(&path);
        let writes_here = || THREAD_WAL_WRITES.with(std::cell::Cell::get);
        let (asked_before, made_before) = writes_here();
        for i in 0..200 {
            put(&conn, i, &"x".repeat(100));
        }
        let (asked, made) = writes_here();
        // Each commit asks for at least two frames (the table's page and the index's), each a
        // header and a page. The counts are this thread's: tests running alongside write too
        // (one that commits 400 small transactions asks for 4 writes per commit and makes 1,
        // which tipped the process-wide ratio past a quarter).
        assert!(
            asked - asked_before >= 800,
            "asked {}",
            asked - asked_before
        );
        assert!(
            made - made_before <= (asked - asked_before) / 4,
            "the frames of a commit should go out together: {} writes for {} asked",
            made - made_before,
            asked - asked_before
        );
        // The writer still holds its connection: the last commit is only in the WAL.
        let (count, check, last) = after_a_crash(&path, "key-00199");
        assert_eq!((count, check.as_str()), (200, "ok"));
        assert_eq!(last, "x".repeat(100));
    }

    /// A transaction of hundreds of frames (a group commit of many runs) is sent in pieces the
    /// default VFS accepts: it writes at most 128 KiB per call and calls more a full disk.
    #[test]
    fn a_commit_larger_than_one_write_goes_out_in_pieces() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("d.db");
        let conn = open_table(&path);
        conn.execute_batch("BEGIN").expect("begin");
        for i in 0..600 {
            put(&conn, i, &"z".repeat(900));
        }
        conn.execute_batch("COMMIT")
            .expect("a commit of about a megabyte of frames");
        let (count, check, last) = after_a_crash(&path, "key-00599");
        assert_eq!((count, check.as_str()), (600, "ok"));
        assert_eq!(last, "z".repeat(900));
    }

    /// Another connection (another process would do the same) reads the WAL file for every
    /// frame the shared index says is committed: each commit must be in the file before SQLite
    /// publishes it there.
    #[test]
    fn readers_on_other_connections_see_every_commit_whole() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("c.db");
        let writer = open_ours(&path);
        writer
            .execute_batch(
                "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); \
                 CREATE TABLE total (id INTEGER PRIMARY KEY, n INTEGER); \
                 INSERT INTO total VALUES (1, 0);",
            )
            .expect("tables");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let path = path.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let conn = open_ours(&path);
                let mut checks = 0;
                while !done.load(Ordering::Relaxed) || checks == 0 {
                    let (rows, total, bad): (i64, i64, i64) = conn
                        .query_row(
                            "SELECT (SELECT count(*) FROM t), (SELECT n FROM total), \
                             (SELECT count(*) FROM t WHERE v != printf('%.200c', 'v'))",
                            [],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                        )
                        .expect("a reader's query");
                    assert_eq!(rows, total, "a commit seen in part");
                    assert_eq!(bad, 0, "a row seen with bytes that were never committed");
                    checks += 1;
                }
                checks
            })
        };
        for i in 0..400 {
            writer
                .execute_batch(&format!(
                    "BEGIN; INSERT INTO t VALUES ({i}, printf('%.200c', 'v')); \
                     UPDATE total SET n = n + 1; COMMIT;"
                ))
                .expect("a commit");
        }
        done.store(true, Ordering::Relaxed);
        let checks = reader.join().expect("the reader saw only whole commits");
        assert!(checks > 0);
    }

    #[test]
    fn a_transaction_that_rewrites_its_checksums_stays_readable() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("b.db");
        let conn = open_table(&path);
        // A tiny page cache makes SQLite spill dirty pages into the WAL in the middle of the
        // transaction and write some of them again before it commits, which makes the commit
        // rewrite the checksums of the frames after the first one written twice.
        conn.execute_batch("PRAGMA cache_size = 2; PRAGMA cache_spill = 1;")
            .expect("pragmas");
        conn.execute_batch("BEGIN").expect("begin");
        for round in 0..3 {
            for i in 0..300 {
                put(&conn, i, &format!("{round}-{}", "y".repeat(80)));
            }
        }
        conn.execute_batch("COMMIT").expect("commit");
        // Readers that share the writer's WAL index would see the pages even with a stale
        // frame header; recovery after a crash checks every header's checksum.
        let (count, check, latest) = after_a_crash(&path, "key-00299");
        assert_eq!((count, check.as_str()), (300, "ok"));
        assert!(latest.starts_with("2-"), "the commit was lost: {latest}");
    }
}
