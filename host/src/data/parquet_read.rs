//! Large Parquet frames decoded on several threads at once. Row groups are dealt to the threads
//! in turn (row group r to thread r mod n); each thread decodes its groups in order, a few
//! batches ahead, and the reader takes the batches back in row-group order, so the guest sees
//! exactly the rows it would with one thread. Decompressing pages (snappy) is most of what reading
//! a Parquet column costs, and with one decoding thread the other core sat idle while the guest
//! waited for it (BENCHMARKS.md, "DataFrame hand-off").
//!
//! The threads share the frame's bytes: a memory map of a local object (the store never changes
//! an object in place) or the fetched object, so no file offset is shared between them.

use std::sync::mpsc::{sync_channel, Receiver};

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::frames::{frame_error, projection, read_ahead, BatchIter};
use super::DataError;

/// Threads decoding one frame's row groups at most (fewer where the machine has fewer cores or
/// the frame fewer row groups).
pub const PARQUET_DECODE_THREADS: usize = 2;
/// Batches each thread decodes ahead of the guest before it waits.
const BATCHES_AHEAD_PER_THREAD: usize = 2;

/// What a decoding thread sends: its row group's batches, then the end of that group.
enum Decoded {
    Batch(Result<RecordBatch, ArrowError>),
    GroupEnd,
}

/// A local file's bytes as a read-only memory map (nothing is read until touched).
pub fn map_local(file: &std::fs::File) -> std::io::Result<Bytes> {
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the store never changes an object in place; objects are written to a temporary
    // file and renamed into place when finished.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok(Bytes::from_owner(map))
}

/// A large frame's batches, decoded ahead of the guest: on up to [`PARQUET_DECODE_THREADS`]
/// threads, or on one (`read_ahead`) when that is all there is to use (one row group, or one
/// core). The footer is read once for either.
pub fn large_frame(
    uri: &str,
    file: Bytes,
    columns: Option<&[String]>,
    batch_rows: usize,
) -> Result<BatchIter, DataError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (metadata, mask) = footer(uri, &file, columns)?;
    let threads = PARQUET_DECODE_THREADS.min(cores);
    if several_threads_have_work(threads, &metadata) {
        return spawn_decoders(uri, file, metadata, mask, batch_rows, threads);
    }
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata)
        .with_batch_size(batch_rows);
    if let Some(mask) = mask {
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(|e| frame_error(uri, e))?;
    Ok(read_ahead(Box::new(reader)))
}

/// Whether `threads` threads would each get a row group (otherwise one thread decodes all).
fn several_threads_have_work(threads: usize, metadata: &ArrowReaderMetadata) -> bool {
    threads.min(metadata.metadata().num_row_groups()) >= 2
}

/// The frame's footer, and the projection of `columns` (an unknown one is named).
fn footer(
    uri: &str,
    file: &Bytes,
    columns: Option<&[String]>,
) -> Result<(ArrowReaderMetadata, Option<ProjectionMask>), DataError> {
    let metadata =
        ArrowReaderMetadata::load(file, Default::default()).map_err(|e| frame_error(uri, e))?;
    let mask = match columns {
        Some(wanted) => {
            let indices = projection(uri, metadata.schema(), wanted)?;
            Some(ProjectionMask::roots(metadata.parquet_schema(), indices))
        }
        None => None,
    };
    Ok((metadata, mask))
}

/// The batches on `threads` threads, or `None` when fewer than two would have work.
#[cfg(test)]
fn decode_on(
    uri: &str,
    file: Bytes,
    columns: Option<&[String]>,
    batch_rows: usize,
    threads: usize,
) -> Result<Option<BatchIter>, DataError> {
    let (metadata, mask) = footer(uri, &file, columns)?;
    if !several_threads_have_work(threads, &metadata) {
        return Ok(None);
    }
    spawn_decoders(uri, file, metadata, mask, batch_rows, threads).map(Some)
}

/// Row group r decoded on thread r mod `threads` (at least two, and no more than the groups).
fn spawn_decoders(
    uri: &str,
    file: Bytes,
    metadata: ArrowReaderMetadata,
    mask: Option<ProjectionMask>,
    batch_rows: usize,
    threads: usize,
) -> Result<BatchIter, DataError> {
    let groups = metadata.metadata().num_row_groups();
    let threads = threads.min(groups);
    let mut queues = Vec::with_capacity(threads);
    for first in 0..threads {
        let (decoded, queue) = sync_channel(BATCHES_AHEAD_PER_THREAD);
        let (file, metadata, mask) = (file.clone(), metadata.clone(), mask.clone());
        let started = std::thread::Builder::new()
            .name("sluice-decode".to_string())
            .spawn(move || {
                for group in (first..groups).step_by(threads) {
                    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
                        file.clone(),
                        metadata.clone(),
                    )
                    .with_row_groups(vec![group])
                    .with_batch_size(batch_rows);
                    if let Some(mask) = &mask {
                        builder = builder.with_projection(mask.clone());
                    }
                    let reader = match builder.build() {
                        Ok(reader) => reader,
                        Err(e) => {
                            let _ = decoded.send(Decoded::Batch(Err(e.into())));
                            return;
                        }
                    };
                    for batch in reader {
                        let failed = batch.is_err();
                        if decoded.send(Decoded::Batch(batch)).is_err() || failed {
                            return; // the reader is gone, or the frame ends at this error
                        }
                    }
                    if decoded.send(Decoded::GroupEnd).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = started {
            return Err(frame_error(
                uri,
                format!("starting a frame decoding thread: {e}"),
            ));
        }
        queues.push(queue);
    }
    Ok(Box::new(InGroupOrder {
        queues,
        group: 0,
        groups,
        ended: false,
    }))
}

/// The decoding threads' batches in row-group order.
struct InGroupOrder {
    queues: Vec<Receiver<Decoded>>,
    group: usize,
    groups: usize,
    ended: bool,
}

impl Iterator for InGroupOrder {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.ended && self.group < self.groups {
            match self.queues[self.group % self.queues.len()].recv() {
                Ok(Decoded::Batch(Ok(batch))) => return Some(Ok(batch)),
                Ok(Decoded::Batch(Err(e))) => {
                    self.ended = true;
                    return Some(Err(e));
                }
                Ok(Decoded::GroupEnd) => self.group += 1,
                // A thread that stops without its group's end died: an error, never a short frame.
                Err(_) => {
                    self.ended = true;
                    return Some(Err(ArrowError::ExternalError(Box::new(
                        std::io::Error::other(format!(
                            "the frame decoding thread of row group {} stopped before its end",
                            self.group
                        )),
                    ))));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;

    use super::*;

    const ROWS: i64 = 1_050;
    const GROUP_ROWS: usize = 100;

    /// A Parquet file of `ROWS` rows (a = i, b = "row i") in row groups of `GROUP_ROWS`.
    fn frame() -> Bytes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(GROUP_ROWS))
            .set_compression(Compression::SNAPPY)
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..ROWS)),
                Arc::new(StringArray::from_iter_values(
                    (0..ROWS).map(|i| format!("row {i}")),
                )),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    fn read(
        file: Bytes,
        columns: Option<&[String]>,
        batch_rows: usize,
        threads: usize,
    ) -> BatchIter {
        decode_on("file:///f.parquet", file, columns, batch_rows, threads)
            .unwrap()
            .expect("more than one row group, so several threads")
    }

    #[test]
    fn every_row_comes_back_once_in_order_whatever_the_threads_and_batch_size() {
        for (threads, batch_rows) in [(2, 64), (3, 64), (2, 1_000), (4, 7)] {
            let mut next = 0;
            for batch in read(frame(), None, batch_rows, threads) {
                let batch = batch.unwrap();
                assert!(batch.num_rows() <= batch_rows);
                let a = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                let b = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                for i in 0..batch.num_rows() {
                    assert_eq!(
                        a.value(i),
                        next,
                        "threads {threads}, batches of {batch_rows}"
                    );
                    assert_eq!(b.value(i), format!("row {next}"));
                    next += 1;
                }
            }
            assert_eq!(next, ROWS, "threads {threads}, batches of {batch_rows}");
        }
    }

    #[test]
    fn the_chosen_columns_alone_are_decoded_and_an_unknown_one_is_named() {
        let wanted = vec!["b".to_string()];
        let batches: Vec<_> = read(frame(), Some(&wanted), 64, 2)
            .map(Result::unwrap)
            .collect();
        assert!(batches.iter().all(|b| b.num_columns() == 1));
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, ROWS as usize);

        let unknown = vec!["c".to_string()];
        let err = decode_on("file:///f.parquet", frame(), Some(&unknown), 64, 2)
            .err()
            .expect("an unknown column is refused")
            .to_string();
        assert!(
            err.contains("no column \"c\"") && err.contains("a, b"),
            "{err}"
        );
    }

    #[test]
    fn one_row_group_or_one_thread_leaves_decoding_to_the_caller() {
        assert!(decode_on("file:///f.parquet", frame(), None, 64, 1)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_damaged_row_group_ends_the_frame_with_an_error_after_the_rows_before_it() {
        let mut damaged = frame().to_vec();
        // The data pages of the middle row groups; the footer (metadata) stays intact.
        let middle = damaged.len() / 2;
        damaged[middle..middle + 64].fill(0xff);
        let results: Vec<_> = read(Bytes::from(damaged), None, 64, 2).collect();
        let last = results.last().expect("at least the error");
        assert!(last.is_err(), "the frame ends with the error, not short");
        let mut next = 0;
        for batch in &results[..results.len() - 1] {
            let batch = batch.as_ref().expect("only the last result is an error");
            let a = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for i in 0..a.len() {
                assert_eq!(a.value(i), next);
                next += 1;
            }
        }
        assert!(next < ROWS);
    }
}
