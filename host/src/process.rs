//! Process-wide tuning that a program embedding the host may apply at start-up. The library
//! never applies it by itself: the allocator belongs to the program.
//!
//! The `sluice` command and the benchmarks make mimalloc Rust's global allocator (see
//! `main.rs`): a recorded run makes some 600 small allocations (statement parameters, event
//! rows, store paths, wasmtime's per-store tables), and on an in-memory chain run glibc's
//! `malloc` and `free` were 12 % of the instructions; with mimalloc the whole run takes 8.5 %
//! fewer (callgrind, BENCHMARKS.md). An embedder chooses its own allocator the same way, with
//! `#[global_allocator]` in its program. SQLite allocates through its own configured
//! functions: glibc's by default (which [`keep_freed_buffers`] tunes), mimalloc's after
//! [`sqlite_on_mimalloc`].

/// Allocations below this size come from the heap (glibc's default hands out anything past
/// 128 KiB, growing dynamically to at most 32 MiB, as fresh `mmap` pages).
pub const MALLOC_MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
/// Freed memory kept at the top of the heap before it goes back to the kernel.
pub const MALLOC_TRIM_THRESHOLD_BYTES: i32 = 64 << 20;

/// Keeps freed buffers for reuse instead of returning them to the kernel (glibc only; a no-op
/// elsewhere). Data tasks move megabytes per call (an Arrow batch lifted out of the guest, a
/// Parquet row group, a file chunk): with glibc's defaults each such buffer is a fresh `mmap`
/// that is faulted in page by page and unmapped when freed, and on the 1M-row DataFrame hand-off
/// about a quarter of the producer's page faults were that. The cost is up to
/// `MALLOC_TRIM_THRESHOLD_BYTES` of freed memory the process keeps. The `sluice` command and the
/// benchmarks call this first thing.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes glibc's allocation thresholds; it is called before the
    // program starts any thread, and an unaccepted value leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES);
    }
}

/// Turns off SQLite's memory statistics, process-wide. With them on (SQLite's default), every
/// allocation and free SQLite makes takes a global mutex to count bytes that nothing here
/// reads: some 40 allocations and 80 lock/unlock pairs per recorded run. Call it first thing,
/// before any database is opened; once SQLite has started, the call changes nothing. The
/// `sluice` command and the benchmarks call it.
pub fn sqlite_without_memory_statistics() {
    // SAFETY: `sqlite3_config` must not run while another thread uses SQLite, and it must run
    // before SQLite initializes; this is called at start-up, before any thread or connection.
    // Called later, SQLite refuses it (SQLITE_MISUSE) and keeps its settings.
    unsafe {
        rusqlite::ffi::sqlite3_config(
            rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
            0 as std::os::raw::c_int,
        );
    }
}

/// Makes SQLite allocate through mimalloc, process-wide, as Rust does in the `sluice` command
/// and the benchmarks (feature `mimalloc`). A recorded in-memory run makes about 40 SQLite
/// allocations (page-cache pages, the rollback journal's chunks, cursors); through glibc they
/// were about 3 % of an in-memory chain run's instructions. Call it first thing, before any
/// database is opened, as [`sqlite_without_memory_statistics`]; once SQLite has started, the
/// call changes nothing.
#[cfg(feature = "mimalloc")]
pub fn sqlite_on_mimalloc() {
    use std::os::raw::{c_int, c_void};

    use libmimalloc_sys as mi;
    use rusqlite::ffi;

    // SQLite asks for sizes as `int`, never negative or zero (it handles those itself), and
    // needs 8-byte alignment, which mimalloc exceeds (16).
    unsafe extern "C" fn allocate(size: c_int) -> *mut c_void {
        // SAFETY: any size may be asked of `mi_malloc`; null tells SQLite it failed.
        unsafe { mi::mi_malloc(size.max(0) as usize) }
    }
    unsafe extern "C" fn free(block: *mut c_void) {
        // SAFETY: SQLite frees only what `allocate` or `reallocate` gave it.
        unsafe { mi::mi_free(block) }
    }
    unsafe extern "C" fn reallocate(block: *mut c_void, size: c_int) -> *mut c_void {
        // SAFETY: as `free`, for a block SQLite still owns.
        unsafe { mi::mi_realloc(block, size.max(0) as usize) }
    }
    unsafe extern "C" fn size_of(block: *mut c_void) -> c_int {
        // SAFETY: as `free`. SQLite may use the whole usable size it is told of, which mimalloc
        // allows; SQLite's own blocks are far below `c_int::MAX`.
        let usable = unsafe { mi::mi_usable_size(block) };
        c_int::try_from(usable).unwrap_or(c_int::MAX)
    }
    unsafe extern "C" fn round_up(size: c_int) -> c_int {
        // SAFETY: a pure function of the size.
        let good = unsafe { mi::mi_good_size(size.max(0) as usize) };
        c_int::try_from(good).unwrap_or(size)
    }
    unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        ffi::SQLITE_OK
    }
    unsafe extern "C" fn shutdown(_: *mut c_void) {}

    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(allocate),
        xFree: Some(free),
        xRealloc: Some(reallocate),
        xSize: Some(size_of),
        xRoundup: Some(round_up),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: as in `sqlite_without_memory_statistics`: at start-up, before SQLite initializes
    // (later, SQLite refuses it and keeps its allocator). SQLite copies the methods.
    unsafe {
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_MALLOC,
            &methods as *const ffi::sqlite3_mem_methods,
        );
    }
}
