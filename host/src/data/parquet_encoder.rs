//! Parquet encoding with a frame's columns split across two threads.
//!
//! Encoding a row group is per column (levels, statistics, pages, compression) and columns do
//! not depend on one another, so a batch's columns are encoded half on the calling thread and
//! half on a scoped helper. On the 1M x 4 float64 hand-off, encoding was the longest path of the
//! producer (snappy and the page statistics on one thread while the guest waited).
//! `parquet`'s own `ArrowWriter` sets the file up (schema, properties, the Arrow schema in the
//! footer); this module only takes over its row groups.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// Rows per Parquet row group written by the host (pyarrow writes up to 1Mi; smaller groups keep
/// the writer's buffered pages and a reader's decoded group small).
pub(crate) const PARQUET_ROW_GROUP_ROWS: usize = 1 << 17;
/// A slice of fewer rows is encoded on one thread: a helper costs more than it saves.
const PARALLEL_MIN_ROWS: usize = 8 << 10;

/// Writes record batches as a Parquet file into `W`.
pub(crate) struct ParquetEncoder<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// One writer per leaf column of the row group in progress.
    columns: Vec<ArrowColumnWriter>,
    row_groups: usize,
    rows_in_group: usize,
}

impl<W: Write + Send> ParquetEncoder<W> {
    pub(crate) fn new(
        out: W,
        schema: &SchemaRef,
        props: WriterProperties,
    ) -> Result<Self, ParquetError> {
        let (file, factory) =
            ArrowWriter::try_new(out, schema.clone(), Some(props))?.into_serialized_writer()?;
        let columns = factory.create_column_writers(0)?;
        Ok(ParquetEncoder {
            file,
            factory,
            schema: schema.clone(),
            columns,
            row_groups: 0,
            rows_in_group: 0,
        })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (PARQUET_ROW_GROUP_ROWS - self.rows_in_group).min(batch.num_rows() - offset);
            self.encode(&batch.slice(offset, take))?;
            offset += take;
            self.rows_in_group += take;
            if self.rows_in_group == PARQUET_ROW_GROUP_ROWS {
                self.close_row_group()?;
            }
        }
        Ok(())
    }

    /// Ends the file (its last row group and the footer) and gives back the writer.
    pub(crate) fn close(mut self) -> Result<W, ParquetError> {
        if self.rows_in_group > 0 {
            self.close_row_group()?;
        }
        self.file.into_inner()
    }

    fn encode(&mut self, slice: &RecordBatch) -> Result<(), ParquetError> {
        if slice.num_columns() != self.schema.fields().len() {
            return Err(ParquetError::General(format!(
                "a batch has {} columns, the frame {}",
                slice.num_columns(),
                self.schema.fields().len()
            )));
        }
        let mut leaves: Vec<ArrowLeafColumn> = Vec::with_capacity(self.columns.len());
        for (field, column) in self.schema.fields().iter().zip(slice.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        if leaves.len() != self.columns.len() {
            return Err(ParquetError::General(format!(
                "a batch has {} leaf columns, the frame {}",
                leaves.len(),
                self.columns.len()
            )));
        }
        if leaves.len() < 2 || slice.num_rows() < PARALLEL_MIN_ROWS {
            return write_leaves(&mut self.columns, &leaves);
        }
        let half = leaves.len() / 2;
        let (first_writers, second_writers) = self.columns.split_at_mut(half);
        let (first_leaves, second_leaves) = leaves.split_at(half);
        std::thread::scope(|scope| {
            let helper = scope.spawn(|| write_leaves(second_writers, second_leaves));
            let first = write_leaves(first_writers, first_leaves);
            let second = helper.join().unwrap_or_else(|_| {
                Err(ParquetError::General(
                    "a Parquet column encoder panicked".to_string(),
                ))
            });
            first.and(second)
        })
    }

    fn close_row_group(&mut self) -> Result<(), ParquetError> {
        self.row_groups += 1;
        let next = self.factory.create_column_writers(self.row_groups)?;
        let done = std::mem::replace(&mut self.columns, next);
        let mut group = self.file.next_row_group()?;
        for column in done {
            column.close()?.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.rows_in_group = 0;
        Ok(())
    }
}

fn write_leaves(
    writers: &mut [ArrowColumnWriter],
    leaves: &[ArrowLeafColumn],
) -> Result<(), ParquetError> {
    writers
        .iter_mut()
        .zip(leaves)
        .try_for_each(|(writer, leaf)| writer.write(leaf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, Float64Array, Int64Array, StructArray};
    use arrow_schema::{DataType, Field, Fields, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// Rows `start..start + rows` of a frame with flat, nested and nullable columns.
    fn batch(start: usize, rows: usize) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (start..start + rows).map(|i| i as i64),
        ));
        let point_fields = Fields::from(vec![
            Field::new("x", DataType::Float64, false),
            Field::new("y", DataType::Float64, true),
        ]);
        let xs: ArrayRef = Arc::new(Float64Array::from_iter_values(
            (start..start + rows).map(|i| i as f64),
        ));
        let ys: ArrayRef = Arc::new(Float64Array::from_iter(
            (start..start + rows).map(|i| (i % 3 != 0).then_some(-(i as f64))),
        ));
        let points: ArrayRef = Arc::new(StructArray::new(point_fields, vec![xs, ys], None));
        let mut tags = ListBuilder::new(StringBuilder::new());
        for i in start..start + rows {
            for t in 0..i % 3 {
                tags.values().append_value(format!("t{t}"));
            }
            tags.append(true);
        }
        let tags: ArrayRef = Arc::new(tags.finish());
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("point", points.data_type().clone(), false),
            Field::new("tags", tags.data_type().clone(), true),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![ids, points, tags]).unwrap()
    }

    #[test]
    fn nested_columns_split_across_threads_and_row_groups_read_back_whole() {
        let rows = PARQUET_ROW_GROUP_ROWS / 2 + 1000; // big enough to split, crossing groups
        let first = batch(0, rows);
        let props = WriterProperties::builder().build();
        let mut encoder = ParquetEncoder::new(Vec::new(), &first.schema(), props).unwrap();
        let batches = 5;
        for i in 0..batches {
            encoder.write(&batch(i * rows, rows)).unwrap();
        }
        let bytes = encoder.close().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .with_batch_size(rows)
            .build()
            .unwrap();
        let mut read = 0;
        for got in reader {
            let got = got.unwrap();
            assert_eq!(got, batch(read, got.num_rows()), "rows from {read}");
            read += got.num_rows();
        }
        assert_eq!(read, batches * rows);
    }
}
