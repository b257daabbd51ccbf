//! Encoding a frame's batches in its stored format (Parquet, Arrow IPC file, CSV).
//!
//! A small frame is encoded on the caller's thread: a thread would cost more than it saves. Once
//! a frame has been given more than `ENCODE_THREAD_THRESHOLD_BYTES` of batches, its encoder moves
//! to a thread of its own, so that the guest builds and sends its next batch while the host
//! encodes the last one (encoding 32 MB of floats as Parquet takes longer than the guest takes to
//! build them). The encoded bytes collect in a buffer the frame writer drains into the store on
//! each call; the queue between the two is short, so a guest that outruns the encoder waits.

use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tokio::sync::oneshot;

use super::frames::FrameFormat;
use super::parquet_encoder::ParquetEncoder;

/// In-memory bytes of batches encoded inline before the encoder moves to a thread of its own.
const ENCODE_THREAD_THRESHOLD_BYTES: usize = 4 << 20;
/// Batches queued for the encoding thread before the writer waits for it.
const ENCODE_QUEUE_BATCHES: usize = 2;

/// Bytes the encoder has produced and the store has not yet taken.
#[derive(Clone, Default)]
struct Encoded(Arc<Mutex<Vec<u8>>>);

impl Encoded {
    /// The bytes so far. The buffer left in their place starts at their capacity: the next
    /// chunk is about as big, and growing a fresh buffer by doubling would copy it several
    /// times and fault in new pages at every step (most of a big IPC frame's page faults).
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| {
                if b.is_empty() {
                    return Vec::new();
                }
                let next = Vec::with_capacity(b.capacity());
                std::mem::replace(&mut *b, next)
            })
            .unwrap_or_default()
    }
}

impl Write for Encoded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("frame buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One format's encoder, writing into the shared buffer.
enum Encoder {
    Parquet(Box<ParquetEncoder<Encoded>>),
    ArrowIpc(arrow_ipc::writer::FileWriter<Encoded>),
    Csv(arrow_csv::Writer<Encoded>),
}

impl Encoder {
    fn new(format: FrameFormat, schema: &SchemaRef, out: Encoded) -> Result<Encoder, String> {
        Ok(match format {
            FrameFormat::Parquet => {
                // Snappy and column-chunk statistics, as pyarrow writes by default (what a
                // Flyte user gets); not the page index arrow-rs adds by default, which pyarrow
                // leaves out unless asked (`write_page_index`) and which costs the encoder a
                // min/max per page.
                let mut props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk);
                // Floats rarely repeat: trying a dictionary for them costs time for nothing
                // (measured: 2.4 -> 1.8 ms/MB on the 1M x 4 float64 hand-off).
                for field in schema.fields() {
                    if field.data_type().is_floating() {
                        let path = parquet::schema::types::ColumnPath::from(field.name().as_str());
                        props = props.set_column_dictionary_enabled(path, false);
                    }
                }
                let props = props.build();
                Encoder::Parquet(Box::new(
                    ParquetEncoder::new(out, schema, props).map_err(|e| e.to_string())?,
                ))
            }
            FrameFormat::ArrowIpc => Encoder::ArrowIpc(
                arrow_ipc::writer::FileWriter::try_new(out, schema).map_err(|e| e.to_string())?,
            ),
            FrameFormat::Csv => Encoder::Csv(arrow_csv::Writer::new(out)),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        match self {
            Encoder::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            Encoder::ArrowIpc(w) => w.write(batch).map_err(|e| e.to_string()),
            Encoder::Csv(w) => w.write(batch).map_err(|e| e.to_string()),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            Encoder::Parquet(w) => w.close().map(|_| ()).map_err(|e| e.to_string()),
            Encoder::ArrowIpc(mut w) => w.finish().map_err(|e| e.to_string()),
            Encoder::Csv(_) => Ok(()),
        }
    }
}

enum State {
    Inline(Box<Encoder>),
    Threaded {
        batches: SyncSender<RecordBatch>,
        /// The thread's outcome, sent when its queue closes or a batch fails.
        outcome: oneshot::Receiver<Result<(), String>>,
    },
    /// The encoder failed, or could not move to its thread; the reason was or will be reported.
    Failed(String),
}

/// Encodes one frame's batches, inline or on its own thread (see the module's comment).
pub(crate) struct FrameEncoder {
    state: State,
    encoded: Encoded,
    /// In-memory size of the batches given so far, as Arrow counts it (a buffer several
    /// columns share, as in a batch decoded in place, counts once per column: the thread then
    /// takes over a little early, which is harmless).
    given_bytes: usize,
}

impl FrameEncoder {
    pub(crate) fn new(format: FrameFormat, schema: &SchemaRef) -> Result<FrameEncoder, String> {
        let encoded = Encoded::default();
        Ok(FrameEncoder {
            state: State::Inline(Box::new(Encoder::new(format, schema, encoded.clone())?)),
            encoded,
            given_bytes: 0,
        })
    }

    /// Encodes a batch (or queues it for the thread). An error of an earlier queued batch is
    /// reported here at the latest.
    pub(crate) async fn write(&mut self, batch: RecordBatch) -> Result<(), String> {
        self.given_bytes = self
            .given_bytes
            .saturating_add(batch.get_array_memory_size());
        match &mut self.state {
            State::Inline(encoder) => {
                encoder.write(&batch)?;
                if self.given_bytes > ENCODE_THREAD_THRESHOLD_BYTES {
                    self.move_to_thread();
                }
                Ok(())
            }
            State::Threaded { batches, .. } => {
                // Blocks while the queue is full: the guest waits for the encoder to catch up.
                if batches.send(batch).is_ok() {
                    return Ok(());
                }
                let failure = match std::mem::replace(&mut self.state, State::Failed(String::new()))
                {
                    State::Threaded { batches, outcome } => {
                        thread_outcome(batches, outcome).await.err()
                    }
                    _ => None,
                };
                let why = failure.unwrap_or_else(|| {
                    "the frame encoding thread stopped before its input ended".to_string()
                });
                self.state = State::Failed(why.clone());
                Err(why)
            }
            State::Failed(why) => Err(why.clone()),
        }
    }

    /// What has been encoded since the last call.
    pub(crate) fn take_encoded(&self) -> Vec<u8> {
        self.encoded.take()
    }

    /// Encodes what is queued, ends the format (footers) and returns the bytes not yet taken.
    pub(crate) async fn finish(mut self) -> Result<Vec<u8>, String> {
        match std::mem::replace(&mut self.state, State::Failed(String::new())) {
            State::Inline(encoder) => encoder.finish()?,
            State::Threaded { batches, outcome } => thread_outcome(batches, outcome).await?,
            State::Failed(why) => return Err(why),
        }
        Ok(self.encoded.take())
    }

    fn move_to_thread(&mut self) {
        let encoder = match std::mem::replace(&mut self.state, State::Failed(String::new())) {
            State::Inline(encoder) => encoder,
            other => {
                self.state = other;
                return;
            }
        };
        let (batches, queue) = sync_channel::<RecordBatch>(ENCODE_QUEUE_BATCHES);
        let (report, outcome) = oneshot::channel();
        let started = std::thread::Builder::new()
            .name("sluice-encode".to_string())
            .spawn(move || {
                let mut encoder = *encoder;
                let result = queue
                    .iter()
                    .try_for_each(|batch| encoder.write(&batch))
                    .and_then(|()| encoder.finish());
                // The writer may be gone (the guest dropped it): then nobody needs the outcome.
                let _ = report.send(result);
            });
        self.state = match started {
            Ok(_) => State::Threaded { batches, outcome },
            Err(e) => State::Failed(format!("starting the frame encoding thread: {e}")),
        };
    }
}

/// Closes the encoding thread's queue and waits for its outcome.
async fn thread_outcome(
    batches: SyncSender<RecordBatch>,
    outcome: oneshot::Receiver<Result<(), String>>,
) -> Result<(), String> {
    drop(batches);
    outcome
        .await
        .unwrap_or_else(|_| Err("the frame encoding thread panicked".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array};
    use arrow_schema::{DataType, Field, Schema};

    fn batch(start: usize, rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
        let values: ArrayRef = Arc::new(Float64Array::from_iter_values(
            (start..start + rows).map(|i| i as f64),
        ));
        RecordBatch::try_new(schema, vec![values]).unwrap()
    }

    /// Encodes `batches` batches of `rows` rows, draining as a frame writer does.
    async fn encode(format: FrameFormat, batches: usize, rows: usize) -> Vec<u8> {
        let first = batch(0, rows);
        let mut encoder = FrameEncoder::new(format, &first.schema()).unwrap();
        let mut out = Vec::new();
        for i in 0..batches {
            encoder.write(batch(i * rows, rows)).await.unwrap();
            out.extend(encoder.take_encoded());
        }
        out.extend(encoder.finish().await.unwrap());
        out
    }

    #[tokio::test]
    async fn a_frame_moved_to_the_thread_encodes_every_batch_in_order() {
        let rows = 64 << 10; // 512 KiB a batch: the thread takes over after the 9th.
        let bytes = encode(FrameFormat::ArrowIpc, 20, rows).await;
        let reader =
            arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let mut next = 0.0;
        for batch in reader {
            let batch = batch.unwrap();
            let xs = batch
                .column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            for x in xs.values() {
                assert_eq!(*x, next);
                next += 1.0;
            }
        }
        assert_eq!(next as usize, 20 * rows);
    }

    #[tokio::test]
    async fn a_threaded_parquet_frame_equals_an_inline_one() {
        let threaded = encode(FrameFormat::Parquet, 12, 64 << 10).await;
        let one_batch = batch(0, 12 * (64 << 10));
        let mut inline = FrameEncoder::new(FrameFormat::Parquet, &one_batch.schema()).unwrap();
        // One big write stays inline until after it is encoded, then moves; finish is the same.
        inline.write(one_batch).await.unwrap();
        let mut bytes = inline.take_encoded();
        bytes.extend(inline.finish().await.unwrap());
        let rows = |b: Vec<u8>| {
            parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(b))
                .map(|r| {
                    use parquet::file::reader::FileReader;
                    r.metadata().file_metadata().num_rows()
                })
                .unwrap()
        };
        assert_eq!(rows(threaded), rows(bytes));
    }

    #[tokio::test]
    async fn a_parquet_frame_carries_column_chunk_statistics_and_no_page_index() {
        use parquet::file::reader::FileReader;
        let bytes = encode(FrameFormat::Parquet, 3, 1000).await;
        let reader =
            parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let metadata = reader.metadata();
        let chunk = metadata.row_group(0).column(0);
        match chunk.statistics() {
            Some(parquet::file::statistics::Statistics::Double(s)) => {
                assert_eq!((s.min_opt(), s.max_opt()), (Some(&0.0), Some(&2999.0)));
            }
            other => panic!("expected float64 min/max of the chunk, got {other:?}"),
        }
        // As pyarrow by default: readers prune row groups by these; no column index.
        assert_eq!(chunk.column_index_offset(), None);
    }

    #[tokio::test]
    async fn a_batch_the_thread_cannot_encode_fails_the_frame() {
        let first = batch(0, 64 << 10);
        let mut encoder = FrameEncoder::new(FrameFormat::Parquet, &first.schema()).unwrap();
        for i in 0..10 {
            encoder.write(batch(i, 64 << 10)).await.unwrap();
        }
        assert!(matches!(encoder.state, State::Threaded { .. }));
        // A batch of another schema: the Parquet writer refuses it on the thread.
        let other = Arc::new(Schema::new(vec![Field::new("y", DataType::Int64, false)]));
        let ints: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![1_i64]));
        let wrong = RecordBatch::try_new(other, vec![ints]).unwrap();
        let mut failed = encoder.write(wrong).await.err();
        // The queue holds two batches: by the third write after the bad one, the thread is gone.
        for i in 0..3 {
            if failed.is_none() {
                failed = encoder.write(batch(i, 10)).await.err();
            }
        }
        let failed = failed.expect("the bad batch failed the frame");
        assert!(failed.contains("Incompatible type"), "{failed}");
        // Nothing more is taken once the encoder failed.
        assert!(encoder.write(batch(0, 10)).await.is_err());
    }
}
