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
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// Rows per Parquet row group written by the host (pyarrow writes up to 1Mi; smaller groups keep
/// the writer's buffered pages and a reader's decoded group small).
const PARQUET_ROW_GROUP_ROWS: usize = 1 << 17;
/// A slice of fewer rows is encoded on one thread: a helper costs more than it saves.
const PARALLEL_MIN_ROWS: usize = 8 << 10;

/// Writes record batches as a Parquet file into `W`.
pub(crate) struct ParquetEncoder<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// One writer per leaf column of the row group in progress.
    columns: Vec<ArrowColumnWriter>,
    /// How many of those leaf columns each top-level field has, in order.
    leaves_per_field: Vec<usize>,
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
        let descr = file.schema_descr();
        let mut leaves_per_field = vec![0; schema.fields().len()];
        for leaf in 0..descr.num_columns() {
            if let Some(count) = leaves_per_field.get_mut(descr.get_column_root_idx(leaf)) {
                *count += 1;
            }
        }
        Ok(ParquetEncoder {
            file,
            factory,
            schema: schema.clone(),
            columns,
            leaves_per_field,
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
        let fields = self.schema.fields();
        // Split between fields (a field's leaves are computed together) near half the leaves;
        // computing the leaves (levels, value indices) is part of what the helper takes.
        let (mut split_field, mut split_leaf) = (0, 0);
        while split_field < fields.len() && split_leaf * 2 < self.columns.len() {
            split_leaf += self.leaves_per_field[split_field];
            split_field += 1;
        }
        let columns = slice.columns();
        if slice.num_rows() < PARALLEL_MIN_ROWS || split_leaf == 0 || split_field == fields.len() {
            return encode_fields(&fields[..], columns, &mut self.columns);
        }
        let (first_writers, second_writers) = self.columns.split_at_mut(split_leaf);
        std::thread::scope(|scope| {
            let helper = scope.spawn(|| {
                encode_fields(
                    &fields[split_field..],
                    &columns[split_field..],
                    second_writers,
                )
            });
            let first = encode_fields(
                &fields[..split_field],
                &columns[..split_field],
                first_writers,
            );
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

/// Encodes `columns` (of `fields`) into `writers`, one writer per leaf column in order.
fn encode_fields(
    fields: &[arrow_schema::FieldRef],
    columns: &[arrow_array::ArrayRef],
    writers: &mut [ArrowColumnWriter],
) -> Result<(), ParquetError> {
    let mut writers = writers.iter_mut();
    for (field, column) in fields.iter().zip(columns) {
        for leaf in compute_leaves(field, column)? {
            let writer = writers.next().ok_or_else(|| {
                ParquetError::General(format!(
                    "column {:?} has more leaf columns than the frame",
                    field.name()
                ))
            })?;
            writer.write(&leaf)?;
        }
    }
    if writers.next().is_some() {
        return Err(ParquetError::General(
            "a batch has fewer leaf columns than the frame".to_string(),
        ));
    }
    Ok(())
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
