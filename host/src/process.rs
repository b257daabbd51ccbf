//! Process-wide tuning that a program embedding the host may apply at start-up. The library
//! never applies it by itself: the allocator belongs to the program.

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
