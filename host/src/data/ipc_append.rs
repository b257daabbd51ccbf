//! Writing an Arrow IPC file from the guest's own IPC messages, without decoding and encoding
//! them again: a record batch message in an IPC stream and a record batch block in an IPC file
//! are the same bytes, so the host checks the guest's stream (the caller decodes it in place),
//! then appends its batch messages as they are and writes the footer that lists them.
//!
//! Only plain streams qualify (`plain_batches`): metadata version 5, the continuation marker,
//! no dictionaries, no body compression, messages 8-byte aligned. Anything else is decoded and
//! encoded again by the caller (`encode_ipc`), which gives a plain stream.

use std::ops::Range;

use arrow_ipc::writer::FileWriter;
use arrow_ipc::{Block, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, Schema};

/// Marks the start of every message since Arrow 0.15.
const CONTINUATION: u32 = 0xFFFF_FFFF;
/// Blocks of an IPC file start at multiples of this (the format's minimum alignment).
const BLOCK_ALIGNMENT: usize = 8;

/// One record batch message of a stream: its bytes and the lengths its file block records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    pub bytes: Range<usize>,
    /// Continuation marker, length and metadata (padded).
    pub metadata_len: usize,
    pub body_len: usize,
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([word[0], word[1], word[2], word[3]]))
}

/// The record batch messages of the IPC stream in `bytes`, or none when the stream is not a
/// plain one (see the module comment) and must be encoded again. Says nothing of whether the
/// batches are valid: the caller decodes them.
pub fn plain_batches(bytes: &[u8]) -> Option<Vec<BatchMessage>> {
    let mut batches = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if read_u32(bytes, at)? != CONTINUATION || !at.is_multiple_of(BLOCK_ALIGNMENT) {
            return None;
        }
        let metadata = read_u32(bytes, at + 4)? as usize;
        if metadata == 0 {
            break; // end of stream
        }
        let metadata_len = 8 + metadata;
        let message = arrow_ipc::root_as_message(bytes.get(at + 8..at + metadata_len)?).ok()?;
        let body_len = usize::try_from(message.bodyLength()).ok()?;
        let end = at.checked_add(metadata_len)?.checked_add(body_len)?;
        if message.version() != MetadataVersion::V5
            || end > bytes.len()
            || !(metadata_len + body_len).is_multiple_of(BLOCK_ALIGNMENT)
        {
            return None;
        }
        match message.header_type() {
            MessageHeader::Schema => {}
            MessageHeader::RecordBatch => {
                if message.header_as_record_batch()?.compression().is_some() {
                    return None;
                }
                batches.push(BatchMessage {
                    bytes: at..end,
                    metadata_len,
                    body_len,
                });
            }
            _ => return None,
        }
        at = end;
    }
    Some(batches)
}

/// The file being built: where the next block goes and the blocks so far.
pub struct IpcFileLayout {
    schema: Schema,
    written: usize,
    blocks: Vec<Block>,
}

impl IpcFileLayout {
    /// The layout of a new file and its first bytes: the magic and the schema message.
    pub fn start(schema: &Schema) -> Result<(IpcFileLayout, Vec<u8>), ArrowError> {
        if schema
            .flattened_fields()
            .iter()
            .any(|f| matches!(f.data_type(), arrow_schema::DataType::Dictionary(..)))
        {
            return Err(ArrowError::InvalidArgumentError(
                "a schema with dictionary columns is encoded, not appended".to_string(),
            ));
        }
        let mut header = Vec::new();
        // The writer writes the header when it is made; it is dropped unfinished.
        drop(FileWriter::try_new(&mut header, schema)?);
        let layout = IpcFileLayout {
            schema: schema.clone(),
            written: header.len(),
            blocks: Vec::new(),
        };
        Ok((layout, header))
    }

    /// Records that `message` is the next thing written to the file.
    pub fn append(&mut self, message: &BatchMessage) {
        self.blocks.push(Block::new(
            self.written as i64,
            message.metadata_len as i32,
            message.body_len as i64,
        ));
        self.written += message.bytes.len();
    }

    /// The file's last bytes: the end-of-stream marker, the footer listing every block, the
    /// footer's length and the magic.
    pub fn finish(self) -> Vec<u8> {
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let dictionaries = fbb.create_vector::<Block>(&[]);
        let record_batches = fbb.create_vector(&self.blocks);
        let schema =
            arrow_ipc::convert::IpcSchemaEncoder::new().schema_to_fb_offset(&mut fbb, &self.schema);
        let mut footer = arrow_ipc::FooterBuilder::new(&mut fbb);
        footer.add_version(MetadataVersion::V5);
        footer.add_schema(schema);
        footer.add_dictionaries(dictionaries);
        footer.add_recordBatches(record_batches);
        let root = footer.finish();
        fbb.finish(root, None);
        let footer = fbb.finished_data();
        let mut tail = Vec::with_capacity(footer.len() + 18);
        tail.extend_from_slice(&CONTINUATION.to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes());
        tail.extend_from_slice(footer);
        tail.extend_from_slice(&(footer.len() as i32).to_le_bytes());
        tail.extend_from_slice(b"ARROW1");
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::frames::encode_ipc;
    use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    use std::sync::Arc;

    fn batch(start: i64) -> RecordBatch {
        let x: ArrayRef = Arc::new(Float64Array::from_iter_values(
            (start..start + 50).map(|i| i as f64),
        ));
        let s: ArrayRef = Arc::new(StringArray::from_iter_values(
            (start..start + 50).map(|i| format!("row {i}")),
        ));
        RecordBatch::try_from_iter([("x", x), ("s", s)]).unwrap()
    }

    #[test]
    fn appended_stream_messages_make_a_file_arrow_reads_back() {
        let batches = [batch(0), batch(50), batch(100)];
        let (mut layout, mut file) = IpcFileLayout::start(&batches[0].schema()).unwrap();
        for b in &batches {
            let stream = encode_ipc(b).unwrap();
            let messages = plain_batches(&stream).expect("a plain stream");
            assert_eq!(messages.len(), 1);
            for m in &messages {
                layout.append(m);
                file.extend_from_slice(&stream[m.bytes.clone()]);
            }
        }
        file.extend(layout.finish());
        let reader =
            arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(file), None).unwrap();
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(read, batches);
    }

    #[test]
    fn dictionary_or_unaligned_streams_are_not_plain() {
        let b = batch(0);
        let keys: arrow_array::DictionaryArray<arrow_array::types::Int32Type> =
            ["a", "b", "a"].into_iter().collect();
        let dict = RecordBatch::try_from_iter([("d", Arc::new(keys) as ArrayRef)]).unwrap();
        assert_eq!(plain_batches(&encode_ipc(&dict).unwrap()), None);
        assert!(IpcFileLayout::start(&dict.schema()).is_err());
        let mut shifted = vec![0u8; 4];
        shifted.extend(encode_ipc(&b).unwrap());
        assert_eq!(plain_batches(&shifted[4..]).map(|m| m.len()), Some(1));
        assert_eq!(plain_batches(&shifted), None);
        assert_eq!(plain_batches(b"not a stream"), None);
    }
}
