//! Lending a caller's buffer to the host for one read.
//!
//! A `list<u8>` the host returns is written into memory the guest hands out through its
//! `cabi_realloc` export, and the bindings then give it to us as a fresh `Vec`: reading through
//! `std::io::Read` would copy it once more into the caller's buffer. Instead, for the duration of
//! one `file-reader.read`, this module's `cabi_realloc` answers the first byte-aligned
//! allocation with the caller's buffer, so the host's bytes land where the caller wants them.
//!
//! What makes this sound: the guest is single-threaded and runs nothing while the host lowers a
//! result, so the only allocations made between [`Lend::new`] and [`Lend::finish`] are the
//! result's own (the list, or the strings of an error). The lender checks which of them took the
//! buffer and never frees it (see `FileReader::read`). Every other allocation, at any time, goes
//! to the C allocator exactly as the toolchain's own `cabi_realloc` does.

use std::cell::Cell;
use std::marker::PhantomData;

/// The buffer on offer: its address and length; `(0, 0)` when none is.
struct Offer(Cell<(usize, usize)>);

// SAFETY: guests built for wasm32-wasip2 have one thread, so the cell is never shared across
// threads there. Natively (the SDK's unit tests) only one test touches it.
unsafe impl Sync for Offer {}

static OFFER: Offer = Offer(Cell::new((0, 0)));

/// A buffer on offer to the next result the host lowers; see the module docs.
/// Holds the buffer's borrow, so it cannot be touched or dropped while on offer.
pub(crate) struct Lend<'a>(PhantomData<&'a mut [u8]>);

impl<'a> Lend<'a> {
    /// Offers `buf`. Only one lend exists at a time (reads do not nest).
    pub(crate) fn new(buf: &'a mut [u8]) -> Lend<'a> {
        OFFER.0.set((buf.as_mut_ptr() as usize, buf.len()));
        Lend(PhantomData)
    }

    /// Withdraws the offer; true when an allocation took the buffer.
    pub(crate) fn finish(self) -> bool {
        let taken = OFFER.0.get() == (0, 0);
        OFFER.0.set((0, 0));
        taken
    }
}

impl Drop for Lend<'_> {
    fn drop(&mut self) {
        OFFER.0.set((0, 0));
    }
}

#[cfg(any(target_family = "wasm", test))]
/// The lent buffer, if one is on offer and this allocation (a new byte array of at most its
/// length) can take it; taking it withdraws the offer.
fn take_offer(old_ptr: *mut u8, align: usize, new_len: usize) -> Option<*mut u8> {
    let (addr, len) = OFFER.0.get();
    if addr == 0 || !old_ptr.is_null() || align != 1 || new_len > len {
        return None;
    }
    OFFER.0.set((0, 0));
    Some(addr as *mut u8)
}

/// The alignment wasi-libc's `malloc` guarantees on wasm32 (two pointers, as Rust's own
/// `System` allocator assumes there).
#[cfg(target_family = "wasm")]
const MALLOC_ALIGN: usize = 8;

#[cfg(target_family = "wasm")]
unsafe extern "C" {
    fn malloc(size: usize) -> *mut u8;
    fn aligned_alloc(align: usize, size: usize) -> *mut u8;
    fn realloc(ptr: *mut u8, size: usize) -> *mut u8;
    fn abort() -> !;
}

/// The allocator the component model calls to place lists and strings in this guest.
///
/// # Safety
/// Called by the host only, with the canonical ABI's arguments.
#[cfg(target_family = "wasm")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if let Some(lent) = take_offer(old_ptr, align, new_len) {
        return lent;
    }
    // As the C library's own `cabi_realloc`: its memory is freed with `free`, by C code
    // (wasi-libc) and by Rust's default allocator alike.
    let ptr = unsafe {
        if new_len == 0 {
            return align as *mut u8;
        } else if old_len == 0 {
            // The canonical ABI asks for alignments up to 8, which `malloc` always gives.
            if align <= MALLOC_ALIGN {
                malloc(new_len)
            } else {
                aligned_alloc(align, new_len)
            }
        } else {
            realloc(old_ptr, new_len)
        }
    };
    if ptr.is_null() {
        unsafe { abort() }
    }
    ptr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_fitting_byte_allocation_takes_the_buffer() {
        let mut buf = [0u8; 64];
        let lend = Lend::new(&mut buf);
        assert_eq!(
            take_offer(std::ptr::null_mut(), 8, 16),
            None,
            "aligned: not a byte list"
        );
        assert_eq!(
            take_offer(std::ptr::null_mut(), 1, 65),
            None,
            "longer than the buffer"
        );
        let mut other = [0u8; 4];
        assert_eq!(
            take_offer(other.as_mut_ptr(), 1, 8),
            None,
            "growing an existing allocation"
        );
        let taken = take_offer(std::ptr::null_mut(), 1, 64).expect("a fitting list takes it");
        assert_eq!(
            take_offer(std::ptr::null_mut(), 1, 1),
            None,
            "taken only once"
        );
        assert!(lend.finish());
        assert_eq!(taken, buf.as_mut_ptr());

        // One test, not two: the offer is process-wide and tests run on parallel threads.
        let lend = Lend::new(&mut buf);
        assert!(!lend.finish());
        assert_eq!(take_offer(std::ptr::null_mut(), 1, 1), None);
        let lend = Lend::new(&mut buf);
        drop(lend);
        assert_eq!(
            take_offer(std::ptr::null_mut(), 1, 1),
            None,
            "dropped: withdrawn too"
        );
    }
}
