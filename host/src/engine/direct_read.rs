//! `file-reader.read` without a host buffer: a local object's bytes go from the page cache
//! straight into the guest's memory.
//!
//! The bindings generated in `crate::bindings` return a `Vec<u8>`, which wasmtime copies into
//! memory the guest allocates for it: the kernel copies the bytes into our buffer and wasmtime
//! copies them again. Here the result is a [`GuestBytes`], whose lowering asks the guest for
//! the memory first (its `cabi_realloc`, as any `list<u8>` lowering does) and then has the
//! kernel read the file into it. Guest streaming reads are bound by copies (TOOLCHAIN.md: a
//! bare resource read of 64 KiB moves close to memcpy speed), so one copy fewer per byte is
//! most of what a large read costs.
//!
//! Lowering by hand uses wasmtime's `__internal` items, the ones its own derive macros expand
//! to. They carry no stability promise; wasmtime is pinned to an exact version in the workspace
//! and the tests read files through this path, so an upgrade that changes them fails to build
//! or fails those tests.

use std::mem::MaybeUninit;

use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Linker, Lower, Resource};
use wasmtime::ValRaw;

use super::attempt::AttemptState;
use super::data_host::{to_wit, FileReaderHandle, MAX_READ_CHUNK_BYTES};
use crate::data::objects::ReadChunk;

/// The interface `file-reader` belongs to, as the guest imports it.
const DATA_INTERFACE: &str = "sluice:task/data@0.1.0";
/// The function replaced, by its component-model name.
const READ_FUNCTION: &str = "[method]file-reader.read";

/// A `list<u8>` whose bytes are produced while it is lowered into the guest.
pub struct GuestBytes(ReadChunk);

// SAFETY: the ABI, flat form and type check are those of `[u8]`, and both lowerings below write
// exactly what `[u8]`'s do: a pointer and a length, of memory obtained from the guest's realloc.
unsafe impl ComponentType for GuestBytes {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = <[u8] as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[u8] as ComponentType>::typecheck(ty, types)
    }
}

impl GuestBytes {
    /// Allocates the list in the guest and fills it; returns its pointer and length.
    fn place<T>(&self, cx: &mut LowerContext<'_, T>) -> wasmtime::Result<(usize, usize)> {
        let len = self.0.len();
        let ptr = cx.realloc(0, 0, 1, len)?;
        let dest = ptr
            .checked_add(len)
            .and_then(|end| cx.as_slice_mut().get_mut(ptr..end))
            .ok_or_else(|| {
                wasmtime::format_err!("guest realloc returned {len} bytes out of bounds")
            })?;
        // The guest is stopped until the lowering ends, so this is the only access to `dest`.
        // An error here (the object shrank under us) traps the attempt: the guest has no way
        // to receive a typed error once its result is being written.
        self.0.read_into(dest).map_err(wasmtime::Error::new)?;
        Ok((ptr, len))
    }
}

// SAFETY: see `ComponentType` above.
unsafe impl Lower for GuestBytes {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        dst: &mut MaybeUninit<[ValRaw; 2]>,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.place(cx)?;
        // Pointers and lengths travel as 64-bit values in flat form, as `[u8]` writes them.
        dst.write([ValRaw::i64(ptr as i64), ValRaw::i64(len as i64)]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.place(cx)?;
        let ptr = u32::try_from(ptr)?;
        let len = u32::try_from(len)?;
        *cx.get::<4>(offset) = ptr.to_le_bytes();
        *cx.get::<4>(offset + 4) = len.to_le_bytes();
        Ok(())
    }
}

/// Replaces the generated `file-reader.read` in `linker` with the one that reads into the
/// guest's memory. Call after the generated bindings were added.
pub fn link(linker: &mut Linker<AttemptState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = linker.instance(DATA_INTERFACE)?.func_wrap_async(
        READ_FUNCTION,
        |mut store, (this, max): (Resource<FileReaderHandle>, u32)| {
            Box::new(async move {
                let reader = store.data_mut().table.get_mut(&this)?;
                let max = max.min(MAX_READ_CHUNK_BYTES) as usize;
                let chunk = reader.reader().read_chunk(max).await.map_err(to_wit);
                Ok((chunk.map(GuestBytes),))
            })
        },
    );
    linker.allow_shadowing(false);
    result
}
