//! DataFrames passed by reference, read and written as Arrow record batches (feature
//! `dataframe`). The host stores the frame (Parquet by default) and does the encoding; batches
//! cross the boundary as Arrow IPC.
//!
//! ```ignore
//! #[sluice::task]
//! fn total(df: sluice::DataFrame) -> sluice::Result<f64> {
//!     let mut sum = 0.0;
//!     for batch in df.read().columns(&["price"]).batches()? {
//!         let batch = batch?;
//!         let col = batch.column(0).as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
//!         sum += col.values().iter().sum::<f64>();
//!     }
//!     Ok(sum)
//! }
//! ```

use std::fmt;
use std::io;
use std::marker::PhantomData;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bindings::sluice::task::data as wit;
use crate::bindings::sluice::task::types::{FrameType, TypeNode};
use crate::files::{deserialize_payload, serialize_payload, to_io, Format, Parquet, Payload};
use crate::types::{SluiceType, TypeTable};

const DATAFRAME_EXT: i8 = 4;
/// Rows per batch when the task does not say.
pub const DEFAULT_BATCH_ROWS: u32 = 65_536;

fn arrow_io(e: arrow_schema::ArrowError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// A reference to a table, stored in format `F` (Parquet unless chosen otherwise:
/// `DataFrame<sluice::ArrowIpc>`, `DataFrame<sluice::Csv>`).
pub struct DataFrame<F: Format = Parquet> {
    payload: Payload,
    format: PhantomData<F>,
}

impl<F: Format> Clone for DataFrame<F> {
    fn clone(&self) -> Self {
        DataFrame::from_payload(self.payload.clone())
    }
}

impl<F: Format> fmt::Debug for DataFrame<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataFrame")
            .field("uri", &self.payload.uri)
            .field("rows", &self.payload.rows)
            .finish()
    }
}

impl<F: Format> DataFrame<F> {
    fn from_payload(payload: Payload) -> Self {
        DataFrame {
            payload,
            format: PhantomData,
        }
    }

    pub fn uri(&self) -> &str {
        &self.payload.uri
    }
    /// Number of rows, when known (always, for frames written through sluice).
    pub fn rows(&self) -> Option<u64> {
        self.payload.rows
    }
    /// (name, Arrow type name) of each column, when known.
    pub fn columns(&self) -> &[(String, String)] {
        &self.payload.columns
    }
    pub fn format(&self) -> Option<&str> {
        self.payload.format.as_deref()
    }
    pub fn size(&self) -> Option<u64> {
        self.payload.size
    }

    /// Starts a read: choose columns and batch size, then iterate `batches()`.
    pub fn read(&self) -> FrameRead<'_, F> {
        FrameRead {
            frame: self,
            columns: None,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }

    /// Starts a new frame in this attempt's output area, encoded by the host in format `F`.
    pub fn writer(name: &str) -> io::Result<FrameWriter<F>> {
        Self::writer_with_columns(name, &[])
    }

    /// Like [`DataFrame::writer`], and every batch must have exactly these columns
    /// (name, Arrow type name such as "Float64").
    pub fn writer_with_columns(name: &str, columns: &[(&str, &str)]) -> io::Result<FrameWriter<F>> {
        let columns = columns
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect::<Vec<_>>();
        let handle = wit::create_frame(Some(name), F::NAME, &columns).map_err(to_io)?;
        Ok(FrameWriter {
            handle: Some(handle),
            format: PhantomData,
        })
    }
}

impl<F: Format> Serialize for DataFrame<F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_payload(s, DATAFRAME_EXT, &self.payload)
    }
}

impl<'de, F: Format> Deserialize<'de> for DataFrame<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_payload(d, DATAFRAME_EXT, "dataframe").map(DataFrame::from_payload)
    }
}

impl<F: Format> SluiceType for DataFrame<F> {
    fn describe(table: &mut TypeTable) -> u32 {
        table.push(TypeNode::Dataframe(FrameType {
            format: F::NAME.map(str::to_string),
            columns: Vec::new(),
        }))
    }
}

/// A read being set up: which columns, how many rows per batch.
pub struct FrameRead<'a, F: Format> {
    frame: &'a DataFrame<F>,
    columns: Option<Vec<String>>,
    batch_rows: u32,
}

impl<F: Format> FrameRead<'_, F> {
    /// Reads only these columns (the host reads only their data from Parquet).
    pub fn columns(mut self, names: &[&str]) -> Self {
        self.columns = Some(names.iter().map(|n| n.to_string()).collect());
        self
    }

    pub fn batch_rows(mut self, rows: u32) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Opens the frame; batches are fetched one at a time as the iterator advances.
    pub fn batches(self) -> io::Result<Batches> {
        let handle = wit::open_frame(
            &self.frame.payload.uri,
            self.columns.as_deref(),
            self.batch_rows,
        )
        .map_err(to_io)?;
        Ok(Batches { handle })
    }
}

/// Record batches of a frame being read.
pub struct Batches {
    handle: wit::FrameReader,
}

impl Iterator for Batches {
    type Item = io::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.handle.next() {
            Ok(None) => None,
            Ok(Some(ipc)) => Some(decode_one(ipc)),
            Err(e) => Some(Err(to_io(e))),
        }
    }
}

/// The batch the host sent as a one-batch IPC stream. Its arrays point into the host's bytes
/// (no copy), unless a buffer is misaligned.
fn decode_one(ipc: Vec<u8>) -> io::Result<RecordBatch> {
    let mut stream = arrow_buffer::Buffer::from_vec(ipc);
    let mut decoder = StreamDecoder::new();
    while !stream.is_empty() {
        if let Some(batch) = decoder.decode(&mut stream).map_err(arrow_io)? {
            return Ok(batch);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the host sent an empty batch stream",
    ))
}

/// A new frame being written batch by batch; dropped unfinished, it leaves nothing behind.
pub struct FrameWriter<F: Format = Parquet> {
    handle: Option<wit::FrameWriter>,
    format: PhantomData<F>,
}

impl<F: Format> FrameWriter<F> {
    pub fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        let handle = self
            .handle
            .as_ref()
            .ok_or_else(|| io::Error::other("writer already finished"))?;
        let mut ipc = Vec::with_capacity(batch.get_array_memory_size() + 1024);
        {
            let mut writer = StreamWriter::try_new(&mut ipc, &batch.schema()).map_err(arrow_io)?;
            writer.write(batch).map_err(arrow_io)?;
            writer.finish().map_err(arrow_io)?;
        }
        handle.write(&ipc).map_err(to_io)
    }

    /// Completes the frame; its reference carries rows, columns, size and SHA-256.
    pub fn finish(mut self) -> io::Result<DataFrame<F>> {
        let handle = self
            .handle
            .take()
            .ok_or_else(|| io::Error::other("writer already finished"))?;
        let reference = wit::FrameWriter::finish(handle).map_err(to_io)?;
        Ok(DataFrame::from_payload(reference.into()))
    }
}
