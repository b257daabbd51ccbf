//! Reading Arrow IPC files in place: the whole file is one `Buffer` (a memory map of a local
//! object, or the fetched bytes of a remote one), each batch is decoded from a slice of it, and
//! only the chosen columns are decoded. A projected read of a local file therefore touches only
//! the pages of the columns it reads: a guest summing one of four columns reads a quarter of
//! the file, where `arrow_ipc::reader::FileReader` reads every block whole into a new buffer.
//!
//! Memory maps: objects in a local store are written once (to a temporary name, then renamed)
//! and never changed in place, so a map sees fixed bytes. Removing the object while it is read
//! keeps the mapped inode alive. Only truncating the file behind the host's back (nothing sluice
//! does) would fault the reading thread.

use std::ptr::NonNull;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::FileDecoder;
use arrow_ipc::Block;
use arrow_schema::{ArrowError, SchemaRef};

/// Bytes at the end of an IPC file: the footer length (4) and the magic `ARROW1` (6).
const TRAILER_BYTES: usize = 10;

fn bad(message: impl Into<String>) -> ArrowError {
    ArrowError::ParseError(message.into())
}

/// A local file as a `Buffer` over a read-only memory map (no bytes are read until touched).
pub fn map_file(file: &std::fs::File) -> std::io::Result<Buffer> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Buffer::from_vec(Vec::<u8>::new()));
    }
    // SAFETY: the store never changes an object in place (see the module comment).
    let map = unsafe { memmap2::Mmap::map(file)? };
    let ptr = NonNull::new(map.as_ptr() as *mut u8)
        .ok_or_else(|| std::io::Error::other("memory map at address 0"))?;
    let len = map.len();
    // SAFETY: `ptr` and `len` describe the map, which the buffer keeps alive by owning it.
    Ok(unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(map)) })
}

/// An IPC file whose footer has been read and checked.
pub struct IpcFile {
    file: Buffer,
    schema: SchemaRef,
    version: arrow_ipc::MetadataVersion,
    blocks: Vec<Block>,
    dictionaries: Vec<Block>,
}

impl IpcFile {
    pub fn open(file: Buffer) -> Result<Self, ArrowError> {
        let bytes = file.as_slice();
        if bytes.len() < TRAILER_BYTES {
            return Err(bad("not an Arrow IPC file: too short for its footer"));
        }
        let mut trailer = [0u8; TRAILER_BYTES];
        trailer.copy_from_slice(&bytes[bytes.len() - TRAILER_BYTES..]);
        let footer_len = arrow_ipc::reader::read_footer_length(trailer)?;
        let footer_start = bytes
            .len()
            .checked_sub(TRAILER_BYTES + footer_len)
            .ok_or_else(|| {
                bad(format!(
                    "Arrow IPC footer of {footer_len} bytes is longer than the file"
                ))
            })?;
        let footer = arrow_ipc::root_as_footer(&bytes[footer_start..bytes.len() - TRAILER_BYTES])
            .map_err(|e| bad(format!("bad Arrow IPC footer: {e}")))?;
        let fb_schema = footer
            .schema()
            .ok_or_else(|| bad("the Arrow IPC footer has no schema"))?;
        if !fb_schema.endianness().equals_to_target_endianness() {
            return Err(bad(
                "the Arrow IPC file was written with the other byte order",
            ));
        }
        let schema = Arc::new(arrow_ipc::convert::try_fb_to_schema(fb_schema)?);
        Ok(IpcFile {
            schema,
            version: footer.version(),
            blocks: footer
                .recordBatches()
                .map(|b| b.iter().copied().collect())
                .unwrap_or_default(),
            dictionaries: footer
                .dictionaries()
                .map(|b| b.iter().copied().collect())
                .unwrap_or_default(),
            file,
        })
    }

    /// The file's schema (all its columns).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The file's batches with only the columns at `projection` (all when none). Dictionaries
    /// are read now; each batch when it is reached.
    pub fn batches(self, projection: Option<Vec<usize>>) -> Result<IpcFileBatches, ArrowError> {
        let mut decoder = FileDecoder::new(self.schema.clone(), self.version);
        if let Some(indices) = projection {
            decoder = decoder.with_projection(indices);
        }
        for block in &self.dictionaries {
            let slice = block_bytes(&self.file, block)?;
            decoder.read_dictionary(block, &slice)?;
        }
        Ok(IpcFileBatches {
            file: self.file,
            decoder,
            blocks: self.blocks,
            next: 0,
        })
    }
}

/// The record batches of an IPC file, decoded one at a time from slices of the file.
pub struct IpcFileBatches {
    file: Buffer,
    decoder: FileDecoder,
    blocks: Vec<Block>,
    next: usize,
}

/// The bytes of one block (its message and body), or an error if it lies outside the file.
fn block_bytes(file: &Buffer, block: &Block) -> Result<Buffer, ArrowError> {
    let (offset, meta, body) = (block.offset(), block.metaDataLength(), block.bodyLength());
    let start = usize::try_from(offset).ok();
    let len = usize::try_from(meta)
        .ok()
        .zip(usize::try_from(body).ok())
        .and_then(|(m, b)| m.checked_add(b));
    match (start, len) {
        (Some(start), Some(len)) if start.checked_add(len).is_some_and(|end| end <= file.len()) => {
            Ok(file.slice_with_length(start, len))
        }
        _ => Err(bad(format!(
            "Arrow IPC block at {offset} ({meta} + {body} bytes) lies outside the file of {} bytes",
            file.len()
        ))),
    }
}

impl Iterator for IpcFileBatches {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let block = *self.blocks.get(self.next)?;
        self.next += 1;
        let batch = block_bytes(&self.file, &block)
            .and_then(|slice| self.decoder.read_record_batch(&block, &slice))
            .and_then(|b| b.ok_or_else(|| bad("an Arrow IPC block holds no record batch")));
        if batch.is_err() {
            self.next = self.blocks.len(); // nothing after a bad block
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, Int64Array};
    use arrow_ipc::writer::FileWriter;
    use std::io::Write;

    fn batch(start: i64) -> RecordBatch {
        let a: ArrayRef = Arc::new(Int64Array::from_iter_values(start..start + 100));
        let b: ArrayRef = Arc::new(Float64Array::from_iter_values((0..100).map(|i| i as f64)));
        RecordBatch::try_from_iter([("a", a), ("b", b)]).unwrap()
    }

    fn ipc_file(batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = FileWriter::try_new(&mut out, &batches[0].schema()).unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        writer.finish().unwrap();
        drop(writer);
        out
    }

    #[test]
    fn a_mapped_file_reads_back_projected_batches_in_order() {
        let written = [batch(0), batch(100), batch(200)];
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&ipc_file(&written)).unwrap();
        let ipc = IpcFile::open(map_file(&file).unwrap()).unwrap();
        assert_eq!(ipc.schema().fields().len(), 2);
        let read: Vec<RecordBatch> = ipc
            .batches(Some(vec![1]))
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let expected: Vec<RecordBatch> = written.iter().map(|b| b.project(&[1]).unwrap()).collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn a_block_pointing_past_the_end_is_an_error_not_a_panic() {
        let mut bytes = ipc_file(&[batch(0)]);
        let block = IpcFile::open(Buffer::from_vec(bytes.clone()))
            .unwrap()
            .blocks[0];
        // Cut the file's data short but keep its footer: the block now lies beyond the end.
        let footer_from = bytes.len() - TRAILER_BYTES - {
            let mut t = [0u8; 4];
            t.copy_from_slice(&bytes[bytes.len() - TRAILER_BYTES..bytes.len() - 6]);
            i32::from_le_bytes(t) as usize
        };
        let cut = block.offset() as usize + 8;
        bytes.drain(cut..footer_from);
        let ipc = IpcFile::open(Buffer::from_vec(bytes)).unwrap();
        let mut reader = ipc.batches(None).unwrap();
        let err = reader.next().unwrap().unwrap_err().to_string();
        assert!(err.contains("lies outside the file"), "{err}");
        assert!(reader.next().is_none());
    }

    #[test]
    fn bytes_that_are_not_an_ipc_file_are_refused() {
        let err = IpcFile::open(Buffer::from_vec(b"not arrow at all".to_vec()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("footer"), "{err}");
    }
}
