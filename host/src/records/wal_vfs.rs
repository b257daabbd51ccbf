//! A SQLite VFS that is the platform's default VFS except for one thing: each frame SQLite
//! appends to a write-ahead log reaches the kernel as one `pwrite` instead of two.
//!
//! SQLite writes a WAL frame as its 24-byte header and then its page, in two calls. With 1 KiB
//! pages a recorded run commits about ten frames per transaction, so half of its write system
//! calls carry 24 bytes each; on these VMs a system call costs about as much as copying the page
//! (BENCHMARKS.md, "Records layer alone").
//!
//! How it stays correct: a 24-byte write to a WAL file is held back only until the next call on
//! that file. If that call is the write of the bytes right after it (the page of the same
//! frame, which is what SQLite's `walWriteOneFrame` always does next), the two go out as one
//! write; any other call first writes the held header as it was, then proceeds. So the file
//! only ever differs from what SQLite asked for between two consecutive calls of one frame
//! write, while SQLite holds the WAL write lock and before it publishes the frame in the WAL
//! index. The one other place that writes 24 bytes alone, `walRewriteChecksums`, reads the
//! whole frame just before each header it rewrites and may publish right after the last one,
//! so a header written over bytes just read is never held back. Everything else (database
//! files, journals, the shared-memory index, locks) is the default VFS untouched.

use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the database with.
pub const VFS_NAME: &CStr = c"sluice-wal";

/// Size of a WAL frame header (SQLite's `WAL_FRAME_HDRSIZE`).
const FRAME_HEADER_BYTES: usize = 24;

/// Frames written with one call instead of two, in this process (tests and benchmarks read it).
static FRAMES_WRITTEN_WHOLE: AtomicU64 = AtomicU64::new(0);

/// Frames this process wrote to WAL files with a single write call.
pub fn frames_written_whole() -> u64 {
    FRAMES_WRITTEN_WHOLE.load(Ordering::Relaxed)
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
    /// A frame header held back: its offset and bytes.
    held: Option<(i64, [u8; FRAME_HEADER_BYTES])>,
    /// The last call on the file was a read of this range (offset, length).
    last_read: Option<(i64, i64)>,
    /// Reused buffer for a whole frame.
    frame: Vec<u8>,
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
        held: None,
        last_read: None,
        // Grows to one frame (header + page) at the first write.
        frame: Vec::new(),
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

fn write_inner(wal: &WalFile, bytes: *const c_void, len: usize, offset: i64) -> c_int {
    match methods(wal).xWrite {
        // SAFETY: bytes points at len readable bytes; the inner file is open.
        Some(write) => unsafe { write(wal.inner, bytes, len as c_int, offset) },
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

/// Writes the held header, if any, as SQLite asked for it.
fn release_held(wal: &mut WalFile) -> c_int {
    match wal.held.take() {
        Some((offset, header)) => write_inner(wal, header.as_ptr().cast(), header.len(), offset),
        None => ffi::SQLITE_OK,
    }
}

/// Every call but a write goes through here: nothing stays held across it.
fn before_other_call(wal: &mut WalFile) -> c_int {
    wal.last_read = None;
    release_held(wal)
}

unsafe extern "C" fn wal_write(
    file: *mut ffi::sqlite3_file,
    bytes: *const c_void,
    len: c_int,
    offset: i64,
) -> c_int {
    let wal = unsafe { wal(file) };
    let just_read = wal.last_read.take();
    let Ok(count) = usize::try_from(len) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    if let Some((held_at, header)) = wal.held {
        if offset == held_at + FRAME_HEADER_BYTES as i64 {
            wal.held = None;
            // SAFETY: SQLite passes len readable bytes.
            let page = unsafe { std::slice::from_raw_parts(bytes.cast::<u8>(), count) };
            let mut frame = std::mem::take(&mut wal.frame);
            frame.clear();
            frame.extend_from_slice(&header);
            frame.extend_from_slice(page);
            let rc = write_inner(wal, frame.as_ptr().cast(), frame.len(), held_at);
            wal.frame = frame;
            FRAMES_WRITTEN_WHOLE.fetch_add(1, Ordering::Relaxed);
            return rc;
        }
        let rc = release_held(wal);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    // A header written over bytes just read is a checksum rewrite: SQLite may publish the WAL
    // right after it, so it goes out at once.
    let rewrites_what_was_read = just_read.is_some_and(|(at, read_len)| {
        at <= offset && offset + FRAME_HEADER_BYTES as i64 <= at + read_len
    });
    if count == FRAME_HEADER_BYTES && !rewrites_what_was_read {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        // SAFETY: SQLite passes len (= 24) readable bytes.
        unsafe { ptr::copy_nonoverlapping(bytes.cast::<u8>(), header.as_mut_ptr(), count) };
        wal.held = Some((offset, header));
        return ffi::SQLITE_OK;
    }
    write_inner(wal, bytes, count, offset)
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

/// Defines a WAL method that releases the held header, then calls the default file's method.
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
    fn frames_go_out_whole_and_every_commit_survives_a_crash() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("a.db");
        let conn = open_ours(&path);
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
            .expect("table");
        let whole_before = frames_written_whole();
        for i in 0..200 {
            conn.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                (format!("key-{i:05}"), "x".repeat(100)),
            )
            .expect("insert");
        }
        assert!(
            frames_written_whole() >= whole_before + 200,
            "every commit's frames should have gone out in one write each"
        );
        // The writer still holds its connection: the last commit is only in the WAL.
        let (count, check, last) = after_a_crash(&path, "key-00199");
        assert_eq!((count, check.as_str()), (200, "ok"));
        assert_eq!(last, "x".repeat(100));
    }

    #[test]
    fn a_transaction_that_rewrites_its_checksums_stays_readable() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("b.db");
        let conn = open_ours(&path);
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
            .expect("table");
        // A tiny page cache makes SQLite spill dirty pages into the WAL in the middle of the
        // transaction and write some of them again before it commits, which makes the commit
        // rewrite the checksums of the frames after the first one written twice.
        conn.execute_batch("PRAGMA cache_size = 2; PRAGMA cache_spill = 1;")
            .expect("pragmas");
        conn.execute_batch("BEGIN").expect("begin");
        for round in 0..3 {
            for i in 0..300 {
                conn.execute(
                    "INSERT OR REPLACE INTO t VALUES (?1, ?2)",
                    (format!("key-{i:05}"), format!("{round}-{}", "y".repeat(80))),
                )
                .expect("write");
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
