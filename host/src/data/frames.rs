//! DataFrames: stored as Parquet (the default), Arrow IPC files or CSV; moved across the guest
//! boundary as Arrow IPC stream messages, one record batch at a time.
//!
//! Reading pushes the guest's column choice and batch size down: Parquet decodes only the chosen
//! columns, one row group at a time; an IPC file is decoded in place, only the chosen columns.
//! Writing takes the guest's batches and encodes them in the frame's format as they arrive
//! (an IPC frame stores the guest's own messages), streaming the bytes to the store.

use std::io::{Cursor, Seek, SeekFrom};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::encoder::FrameEncoder;
use super::ipc_append::{plain_batches, BatchMessage, IpcFileLayout};
use super::objects::StoreThreads;
use super::{DataError, ObjectWriter};
use crate::values::reference::{schema_difference, RefMeta};
use crate::values::RefKind;

/// The format a frame is written in when none is asked for.
pub const DEFAULT_FRAME_FORMAT: &str = "parquet";
/// Rows read to infer a CSV frame's schema.
const CSV_INFER_ROWS: usize = 1000;
/// Largest batch a reader hands out, whatever the guest asks for.
pub const MAX_BATCH_ROWS: usize = 1 << 20;

/// The formats a frame can be stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    Parquet,
    ArrowIpc,
    Csv,
}

impl FrameFormat {
    pub fn parse(name: Option<&str>, uri: &str) -> Result<FrameFormat, DataError> {
        match name.unwrap_or(DEFAULT_FRAME_FORMAT) {
            "parquet" => Ok(FrameFormat::Parquet),
            "arrow-ipc" | "arrow" | "ipc" | "feather" => Ok(FrameFormat::ArrowIpc),
            "csv" => Ok(FrameFormat::Csv),
            other => Err(DataError::Frame {
                uri: uri.to_string(),
                message: format!("unknown frame format {other:?} (parquet, arrow-ipc or csv)"),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FrameFormat::Parquet => "parquet",
            FrameFormat::ArrowIpc => "arrow-ipc",
            FrameFormat::Csv => "csv",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            FrameFormat::Parquet => "parquet",
            FrameFormat::ArrowIpc => "arrow",
            FrameFormat::Csv => "csv",
        }
    }
}

/// The format a file's name suggests (its extension, lower-cased), e.g. "csv".
pub fn format_from_name(name: &str) -> Option<String> {
    let ext = std::path::Path::new(name)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    Some(match ext.as_str() {
        "arrow" | "ipc" | "feather" => "arrow-ipc".to_string(),
        _ => ext,
    })
}

pub(super) fn frame_error(uri: &str, e: impl std::fmt::Display) -> DataError {
    DataError::Frame {
        uri: uri.to_string(),
        message: e.to_string(),
    }
}

/// A frame's bytes: a local file, or an object fetched whole from a remote store.
pub enum FrameSource {
    Local(std::fs::File),
    Fetched(Bytes),
}

/// The (name, type name) list of a schema, as references record it.
pub fn schema_columns(schema: &SchemaRef) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect()
}

/// Rows and columns of a local frame file, as far as its format records them without reading
/// the data (Parquet: both, from the footer; Arrow IPC: the columns; CSV: nothing).
pub fn describe_local(
    path: &std::path::Path,
    format: FrameFormat,
) -> (Option<u64>, Vec<(String, String)>) {
    let Ok(file) = std::fs::File::open(path) else {
        return (None, Vec::new());
    };
    match format {
        FrameFormat::Parquet => match ParquetRecordBatchReaderBuilder::try_new(file) {
            Ok(b) => (
                u64::try_from(b.metadata().file_metadata().num_rows()).ok(),
                schema_columns(b.schema()),
            ),
            Err(_) => (None, Vec::new()),
        },
        FrameFormat::ArrowIpc => match arrow_ipc::reader::FileReader::try_new(file, None) {
            Ok(r) => (None, schema_columns(&r.schema())),
            Err(_) => (None, Vec::new()),
        },
        FrameFormat::Csv => (None, Vec::new()),
    }
}

/// Root column indices for `wanted`, or an error naming the unknown column and the real ones.
pub(super) fn projection(
    uri: &str,
    schema: &SchemaRef,
    wanted: &[String],
) -> Result<Vec<usize>, DataError> {
    wanted
        .iter()
        .map(|name| {
            schema.index_of(name).map_err(|_| DataError::Frame {
                uri: uri.to_string(),
                message: format!(
                    "no column {name:?} (columns: {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        })
        .collect()
}

pub(super) type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// A stored frame at least this big is decoded on a thread of its own, a few batches ahead of
/// the guest (smaller ones are decoded on the caller's thread: a thread costs more than it saves).
const READ_AHEAD_MIN_BYTES: u64 = 4 << 20;
/// Decoded batches waiting for the guest before the decoding thread waits.
const READ_AHEAD_BATCHES: usize = 2;

/// `batches` decoded on a thread of its own while the guest works on the ones before (Parquet
/// decompression and decoding overlap the batch's trip into the guest). The thread stops when
/// the batches end or the reader is dropped.
pub(super) fn read_ahead(batches: BatchIter) -> BatchIter {
    // `None` marks the end: a channel that closes without it means the thread died.
    let (decoded, queue) = std::sync::mpsc::sync_channel(READ_AHEAD_BATCHES);
    let started = std::thread::Builder::new()
        .name("sluice-decode".to_string())
        .spawn(move || {
            for batch in batches {
                if decoded.send(Some(batch)).is_err() {
                    return; // the reader is gone
                }
            }
            let _ = decoded.send(None);
        });
    if let Err(e) = started {
        return Box::new(std::iter::once(Err(ArrowError::ExternalError(Box::new(
            std::io::Error::other(format!("starting the frame decoding thread: {e}")),
        )))));
    }
    let mut ended = false;
    Box::new(std::iter::from_fn(move || {
        if ended {
            return None;
        }
        match queue.recv() {
            Ok(Some(batch)) => Some(batch),
            Ok(None) => {
                ended = true;
                None
            }
            Err(_) => {
                ended = true;
                Some(Err(ArrowError::ExternalError(Box::new(
                    std::io::Error::other(
                        "the frame decoding thread stopped before the frame's end",
                    ),
                ))))
            }
        }
    }))
}

/// A frame open for reading.
pub struct FrameReader {
    uri: String,
    batches: BatchIter,
    batch_rows: usize,
    /// The rest of a stored batch larger than `batch_rows`.
    carry: Option<RecordBatch>,
}

impl FrameReader {
    pub fn open(
        uri: &str,
        source: FrameSource,
        format: FrameFormat,
        columns: Option<&[String]>,
        batch_rows: usize,
    ) -> Result<FrameReader, DataError> {
        let batch_rows = batch_rows.clamp(1, MAX_BATCH_ROWS);
        let err = |e: &dyn std::fmt::Display| frame_error(uri, e);
        let stored_bytes = match &source {
            FrameSource::Local(file) => file.metadata().map(|m| m.len()).unwrap_or(0),
            FrameSource::Fetched(bytes) => bytes.len() as u64,
        };
        let large = stored_bytes >= READ_AHEAD_MIN_BYTES;
        let batches: BatchIter = match (format, source) {
            // Decoded ahead on several threads, from a memory map of a local object.
            (FrameFormat::Parquet, source) if large => {
                let bytes = match source {
                    FrameSource::Local(file) => {
                        super::parquet_read::map_local(&file).map_err(|e| err(&e))?
                    }
                    FrameSource::Fetched(bytes) => bytes,
                };
                super::parquet_read::large_frame(uri, bytes, columns, batch_rows)?
            }
            (FrameFormat::Parquet, FrameSource::Local(file)) => parquet_batches(
                uri,
                ParquetRecordBatchReaderBuilder::try_new(file),
                columns,
                batch_rows,
            )?,
            (FrameFormat::Parquet, FrameSource::Fetched(bytes)) => parquet_batches(
                uri,
                ParquetRecordBatchReaderBuilder::try_new(bytes),
                columns,
                batch_rows,
            )?,
            (FrameFormat::ArrowIpc, FrameSource::Local(file)) => {
                let mapped = super::ipc_file::map_file(&file).map_err(|e| err(&e))?;
                ipc_batches(uri, mapped, columns)?
            }
            (FrameFormat::ArrowIpc, FrameSource::Fetched(bytes)) => {
                ipc_batches(uri, arrow_buffer::Buffer::from(bytes), columns)?
            }
            (FrameFormat::Csv, FrameSource::Local(mut file)) => {
                let schema = csv_schema(uri, &mut file)?;
                file.seek(SeekFrom::Start(0)).map_err(|e| err(&e))?;
                csv_batches(uri, file, schema, columns, batch_rows)?
            }
            (FrameFormat::Csv, FrameSource::Fetched(bytes)) => {
                let schema = csv_schema(uri, &mut Cursor::new(bytes.clone()))?;
                csv_batches(uri, Cursor::new(bytes), schema, columns, batch_rows)?
            }
        };
        // A large CSV frame is decoded ahead here (a large Parquet one above); an IPC file's
        // batches are slices of the file: decoding them ahead saves nothing.
        let batches = if large && format == FrameFormat::Csv {
            read_ahead(batches)
        } else {
            batches
        };
        Ok(FrameReader {
            uri: uri.to_string(),
            batches,
            batch_rows,
            carry: None,
        })
    }

    /// The next batch (at most `batch_rows` rows), or none at the end.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>, DataError> {
        let batch = match self.carry.take() {
            Some(b) => b,
            None => match self.batches.next() {
                Some(b) => b.map_err(|e| frame_error(&self.uri, e))?,
                None => return Ok(None),
            },
        };
        if batch.num_rows() > self.batch_rows {
            let rest = batch.slice(self.batch_rows, batch.num_rows() - self.batch_rows);
            self.carry = Some(rest);
            return Ok(Some(batch.slice(0, self.batch_rows)));
        }
        Ok(Some(batch))
    }

    /// The next batch as a column-batch document (see `columns.rs`), or none at the end.
    pub fn next_columns(&mut self) -> Result<Option<Vec<u8>>, DataError> {
        match self.next_batch()? {
            Some(batch) => super::columns::batch_to_document(&batch)
                .map(Some)
                .map_err(|e| frame_error(&self.uri, e)),
            None => Ok(None),
        }
    }

    /// The next batch as an Arrow IPC stream, or none at the end.
    pub fn next_ipc(&mut self) -> Result<Option<Vec<u8>>, DataError> {
        match self.next_batch()? {
            Some(batch) => encode_ipc(&batch)
                .map(Some)
                .map_err(|e| frame_error(&self.uri, e)),
            None => Ok(None),
        }
    }
}

fn parquet_batches<T: parquet::file::reader::ChunkReader + 'static>(
    uri: &str,
    builder: parquet::errors::Result<ParquetRecordBatchReaderBuilder<T>>,
    columns: Option<&[String]>,
    batch_rows: usize,
) -> Result<BatchIter, DataError> {
    let mut builder = builder.map_err(|e| frame_error(uri, e))?;
    if let Some(wanted) = columns {
        let indices = projection(uri, builder.schema(), wanted)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| frame_error(uri, e))?;
    Ok(Box::new(reader))
}

/// An IPC file's batches decoded in place from `file` (see `ipc_file.rs`): a projected read
/// touches only the chosen columns' bytes.
fn ipc_batches(
    uri: &str,
    file: arrow_buffer::Buffer,
    columns: Option<&[String]>,
) -> Result<BatchIter, DataError> {
    let ipc = super::ipc_file::IpcFile::open(file).map_err(|e| frame_error(uri, e))?;
    let indices = match columns {
        Some(wanted) => Some(projection(uri, ipc.schema(), wanted)?),
        None => None,
    };
    let batches = ipc.batches(indices).map_err(|e| frame_error(uri, e))?;
    Ok(Box::new(batches))
}

fn csv_schema<R: std::io::Read>(uri: &str, source: &mut R) -> Result<SchemaRef, DataError> {
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(source, Some(CSV_INFER_ROWS))
        .map_err(|e| frame_error(uri, e))?;
    Ok(Arc::new(schema))
}

fn csv_batches<R: std::io::Read + Send + 'static>(
    uri: &str,
    source: R,
    schema: SchemaRef,
    columns: Option<&[String]>,
    batch_rows: usize,
) -> Result<BatchIter, DataError> {
    let mut builder = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(true)
        .with_batch_size(batch_rows);
    if let Some(wanted) = columns {
        builder = builder.with_projection(projection(uri, &schema, wanted)?);
    }
    let reader = builder.build(source).map_err(|e| frame_error(uri, e))?;
    Ok(Box::new(reader))
}

/// One batch as a self-contained Arrow IPC stream.
pub fn encode_ipc(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// A frame being written.
pub struct FrameWriter {
    sink: ObjectWriter,
    format: FrameFormat,
    declared: Vec<(String, String)>,
    encoder: Option<FrameEncoder>,
    /// An IPC frame built from the guest's own messages (`ipc_append.rs`), in place of
    /// `encoder`, when its schema has no dictionaries.
    appended: Option<IpcFileLayout>,
    schema: Option<SchemaRef>,
    rows: u64,
}

impl FrameWriter {
    pub fn new(
        mut sink: ObjectWriter,
        format: FrameFormat,
        declared: Vec<(String, String)>,
    ) -> Self {
        if matches!(format, FrameFormat::Parquet | FrameFormat::Csv) {
            // The host encodes these on a thread of its own (`encoder.rs`).
            sink.set_store_threads(StoreThreads::WriteThenHash);
        }
        FrameWriter {
            sink,
            format,
            declared,
            encoder: None,
            appended: None,
            schema: None,
            rows: 0,
        }
    }

    fn fail(&self, message: impl std::fmt::Display) -> DataError {
        frame_error(self.sink.uri(), message)
    }

    /// Takes batches given as an Arrow IPC stream. They are decoded in place (no copy, unless a
    /// buffer is misaligned) to check them; an IPC frame then stores the stream's own batch
    /// messages when the stream is a plain one, other formats encode the batches.
    pub async fn write_ipc(&mut self, ipc: Vec<u8>) -> Result<(), DataError> {
        let plain = match self.format {
            FrameFormat::ArrowIpc => plain_batches(&ipc),
            _ => None,
        };
        let shared = Bytes::from(ipc);
        let mut stream = arrow_buffer::Buffer::from(shared.clone());
        let mut decoder = StreamDecoder::new();
        let mut batches = Vec::new();
        while !stream.is_empty() {
            let decoded = decoder
                .decode(&mut stream)
                .map_err(|e| self.fail(format!("bad Arrow IPC stream: {e}")))?;
            batches.extend(decoded);
        }
        if decoder.schema().is_none() {
            return Err(self.fail("not an Arrow IPC stream: it has no schema message"));
        }
        decoder
            .finish()
            .map_err(|e| self.fail(format!("bad Arrow IPC stream: {e}")))?;
        let plain = plain.filter(|messages| messages.len() == batches.len());
        for (i, batch) in batches.into_iter().enumerate() {
            self.admit(&batch).await?;
            match plain.as_ref().filter(|_| self.appended.is_some()) {
                Some(messages) => {
                    self.append(&shared, &messages[i]).await?;
                    self.rows += batch.num_rows() as u64;
                }
                None => {
                    self.store_admitted(batch).await?;
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    /// Stores one batch message of `stream` as the frame's next block.
    async fn append(&mut self, stream: &Bytes, message: &BatchMessage) -> Result<(), DataError> {
        if let Some(layout) = &mut self.appended {
            layout.append(message);
        }
        self.sink
            .write_bytes(stream.slice(message.bytes.clone()))
            .await
    }

    /// Takes one batch given as a column-batch document (see `columns.rs`) and encodes it. The
    /// batch's types are the frame's declared ones, else those of its first batch.
    pub async fn write_columns(&mut self, document: &[u8]) -> Result<(), DataError> {
        use super::columns;
        let parsed = columns::parse_document(document).map_err(|e| self.fail(e))?;
        let schema = match &self.schema {
            Some(schema) => schema.clone(),
            None if !self.declared.is_empty() => self.declared_schema()?,
            None => columns::infer_schema(&parsed).map_err(|e| self.fail(e))?,
        };
        let batch = columns::build_batch(&schema, parsed).map_err(|e| self.fail(e))?;
        self.write_batch(batch).await?;
        self.flush().await
    }

    /// Streams what the encoder has produced so far to the store.
    async fn flush(&mut self) -> Result<(), DataError> {
        let bytes = match &self.encoder {
            Some(encoder) => encoder.take_encoded(),
            None => return Ok(()),
        };
        if !bytes.is_empty() {
            self.sink.write_vec(bytes).await?;
        }
        Ok(())
    }

    /// The schema of the declared columns (all nullable).
    fn declared_schema(&self) -> Result<SchemaRef, DataError> {
        let fields: Vec<arrow_schema::Field> = self
            .declared
            .iter()
            .map(|(name, ty)| {
                ty.parse::<arrow_schema::DataType>()
                    .map(|dt| arrow_schema::Field::new(name, dt, true))
                    .map_err(|e| self.fail(format!("column {name:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(arrow_schema::Schema::new(fields)))
    }

    /// Checks a batch's schema against the declared columns and the first batch's; the first
    /// batch's schema starts the frame.
    async fn admit(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        let schema = batch.schema();
        match &self.schema {
            None => {
                let columns = schema_columns(&schema);
                if let Some(diff) = schema_difference(&self.declared, &columns) {
                    return Err(self.fail(diff));
                }
                self.start(&schema).await
            }
            Some(first) if first.fields() != schema.fields() => {
                let diff = schema_difference(&schema_columns(first), &schema_columns(&schema))
                    .unwrap_or_else(|| "field nullability or metadata differ".to_string());
                Err(self.fail(format!(
                    "a batch's schema differs from the first batch's: {diff}"
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// Starts the frame with `schema`: an IPC frame without dictionaries is appended to
    /// (its header is written now), anything else gets an encoder.
    async fn start(&mut self, schema: &SchemaRef) -> Result<(), DataError> {
        self.schema = Some(schema.clone());
        if self.format == FrameFormat::ArrowIpc {
            if let Ok((layout, header)) = IpcFileLayout::start(schema) {
                self.appended = Some(layout);
                return self.sink.write_vec(header).await;
            }
        }
        self.encoder = Some(FrameEncoder::new(self.format, schema).map_err(|e| self.fail(e))?);
        Ok(())
    }

    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), DataError> {
        self.admit(&batch).await?;
        self.store_admitted(batch).await
    }

    /// Stores a batch `admit` has checked: appended to an IPC frame, else encoded.
    async fn store_admitted(&mut self, batch: RecordBatch) -> Result<(), DataError> {
        let rows = batch.num_rows() as u64;
        if self.appended.is_some() {
            // Encoded here as a plain stream, then stored like the guest's own messages.
            let stream = encode_ipc(&batch).map_err(|e| self.fail(e))?;
            let messages = plain_batches(&stream)
                .ok_or_else(|| self.fail("the host's IPC encoding of a batch is not plain"))?;
            let stream = Bytes::from(stream);
            for message in &messages {
                self.append(&stream, message).await?;
            }
        } else if let Some(encoder) = &mut self.encoder {
            if let Err(e) = encoder.write(batch).await {
                return Err(self.fail(e));
            }
        }
        self.rows += rows;
        Ok(())
    }

    /// Completes the frame and returns its reference (an empty frame needs declared columns).
    pub async fn finish(mut self) -> Result<RefMeta, DataError> {
        if self.schema.is_none() {
            if self.declared.is_empty() {
                return Err(self.fail("no batch was written and no columns are declared"));
            }
            let schema = self.declared_schema()?;
            self.start(&schema).await?;
        }
        if let Some(layout) = self.appended.take() {
            self.sink.write_vec(layout.finish()).await?;
        }
        if let Some(encoder) = self.encoder.take() {
            let rest = match encoder.finish().await {
                Ok(rest) => rest,
                Err(e) => return Err(self.fail(e)),
            };
            if !rest.is_empty() {
                self.sink.write_vec(rest).await?;
            }
        }
        let columns = self.schema.as_ref().map(schema_columns).unwrap_or_default();
        let written = self.sink.finish().await?;
        Ok(RefMeta {
            kind: RefKind::DataFrame,
            uri: written.uri,
            size: Some(written.size),
            sha256: Some(written.sha256),
            format: Some(self.format.name().to_string()),
            rows: Some(self.rows),
            columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array};
    use arrow_schema::{DataType, Field, Schema};

    fn batch(i: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("i", DataType::Int64, false)]));
        let values: ArrayRef = Arc::new(Int64Array::from(vec![i]));
        RecordBatch::try_new(schema, vec![values]).unwrap()
    }

    fn first_value(batch: &RecordBatch) -> i64 {
        let ints = batch.column(0).as_any().downcast_ref::<Int64Array>();
        ints.map_or(-1, |a| a.value(0))
    }

    #[test]
    fn read_ahead_gives_every_batch_and_error_in_order_then_ends() {
        let source: BatchIter = Box::new((0..50).map(|i| {
            if i == 20 {
                Err(ArrowError::ComputeError("bad batch 20".into()))
            } else {
                Ok(batch(i))
            }
        }));
        let got: Vec<_> = read_ahead(source).collect();
        assert_eq!(got.len(), 50);
        for (i, item) in got.iter().enumerate() {
            match item {
                Ok(b) => assert_eq!(first_value(b), i as i64),
                Err(e) => assert!(i == 20 && e.to_string().contains("bad batch 20"), "{e}"),
            }
        }
    }

    #[test]
    fn a_decoding_thread_that_dies_is_an_error_not_a_short_frame() {
        let source: BatchIter = Box::new((0..10).map(|i| {
            assert!(i < 3, "decoder blew up");
            Ok(batch(i))
        }));
        let got: Vec<_> = read_ahead(source).collect();
        assert_eq!(got.len(), 4);
        assert!(got[..3].iter().all(|b| b.is_ok()));
        let last = got[3].as_ref().unwrap_err().to_string();
        assert!(last.contains("stopped before the frame's end"), "{last}");
    }

    #[test]
    fn a_reader_dropped_early_stops_its_decoding_thread() {
        let (seen, counted) = std::sync::mpsc::channel();
        let source: BatchIter = Box::new((0..1_000_000).map(move |i| {
            let _ = seen.send(i);
            Ok(batch(i))
        }));
        let mut ahead = read_ahead(source);
        assert_eq!(first_value(&ahead.next().unwrap().unwrap()), 0);
        drop(ahead);
        // The thread stops at its next send: it decodes at most a few batches more.
        let decoded = counted.iter().count();
        assert!(decoded < 10, "{decoded} batches decoded");
    }

    fn read_local(path: &std::path::Path) -> Vec<RecordBatch> {
        let file = std::fs::File::open(path).unwrap();
        let source = FrameSource::Local(file);
        let mut reader =
            FrameReader::open("file:///f", source, FrameFormat::ArrowIpc, None, 1024).unwrap();
        std::iter::from_fn(|| reader.next_batch().unwrap()).collect()
    }

    #[tokio::test]
    async fn an_ipc_frame_of_guest_streams_and_column_documents_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.arrow");
        let sink = ObjectWriter::local("file:///f", dir.path().join("t"), dest.clone()).unwrap();
        let mut writer = FrameWriter::new(sink, FrameFormat::ArrowIpc, Vec::new());
        // A stream of two batches (appended as they are), then a column document (encoded).
        let mut two = Vec::new();
        let mut stream = StreamWriter::try_new(&mut two, &batch(0).schema()).unwrap();
        stream.write(&batch(1)).unwrap();
        stream.write(&batch(2)).unwrap();
        stream.finish().unwrap();
        drop(stream);
        writer.write_ipc(two).await.unwrap();
        let document = super::super::columns::batch_to_document(&batch(3)).unwrap();
        writer.write_columns(&document).await.unwrap();
        let meta = writer.finish().await.unwrap();
        assert_eq!(meta.rows, Some(3));
        let read = read_local(&dest);
        assert_eq!(read.iter().map(first_value).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[tokio::test]
    async fn an_empty_ipc_frame_has_its_declared_columns() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.arrow");
        let sink = ObjectWriter::local("file:///f", dir.path().join("t"), dest.clone()).unwrap();
        let declared = vec![("x".to_string(), "Float64".to_string())];
        let writer = FrameWriter::new(sink, FrameFormat::ArrowIpc, declared);
        let meta = writer.finish().await.unwrap();
        assert_eq!(meta.rows, Some(0));
        assert!(read_local(&dest).is_empty());
        let file = std::fs::File::open(&dest).unwrap();
        let reader = arrow_ipc::reader::FileReader::try_new(file, None).unwrap();
        assert_eq!(reader.schema().field(0).name(), "x");
    }
}
