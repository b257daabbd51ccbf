//! Files and directories passed by reference. The bytes never travel inside the inputs or
//! outputs documents: the host streams them through handles when the task reads or writes.
//!
//! ```ignore
//! #[sluice::task]
//! fn upper(input: sluice::File<sluice::Csv>) -> sluice::Result<sluice::File<sluice::Csv>> {
//!     let mut text = String::new();
//!     std::io::Read::read_to_string(&mut input.open()?, &mut text)?;
//!     let mut out = sluice::File::create("upper.csv")?;
//!     std::io::Write::write_all(&mut out, text.to_uppercase().as_bytes())?;
//!     Ok(out.finish()?)
//! }
//! ```

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bindings::sluice::task::data::{self as wit, DataError};
use crate::bindings::sluice::task::types::{FileType, TypeNode};
use crate::lend::Lend;
use crate::time::{deserialize_ext, serialize_ext};
use crate::types::{SluiceType, TypeTable};

const FILE_EXT: i8 = 2;
const DIR_EXT: i8 = 3;
/// Bytes asked of the host per read: large enough that the per-call cost vanishes.
const READ_CHUNK_BYTES: u32 = 1 << 20;

/// A file format, chosen by a type parameter: `File<Csv>`. `AnyFormat` accepts any file.
pub trait Format {
    /// The name the host checks and records ("csv"); none for any format.
    const NAME: Option<&'static str>;
}

macro_rules! formats {
    ($($(#[$doc:meta])* $ty:ident = $name:expr),+ $(,)?) => {
        $($(#[$doc])* #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $ty;
        impl Format for $ty {
            const NAME: Option<&'static str> = $name;
        })+
    };
}

formats!(
    /// Any file (no format declared).
    AnyFormat = None,
    Csv = Some("csv"),
    Json = Some("json"),
    Text = Some("txt"),
    Parquet = Some("parquet"),
    ArrowIpc = Some("arrow-ipc"),
);

/// An error from the host's data plane, as an `io::Error` for the std traits.
pub(crate) fn to_io(e: DataError) -> io::Error {
    let (kind, text) = match e {
        DataError::NotGranted(t) => (io::ErrorKind::PermissionDenied, t),
        DataError::Missing(t) => (io::ErrorKind::NotFound, t),
        DataError::Invalid(t) => (io::ErrorKind::InvalidInput, t),
        DataError::Store(t) => (io::ErrorKind::Other, t),
    };
    io::Error::new(kind, text)
}

/// The reference payload inside a MessagePack document (extension types 2, 3 and 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payload {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<(String, String)>,
}

impl From<wit::Reference> for Payload {
    fn from(r: wit::Reference) -> Self {
        Payload {
            uri: r.uri,
            size: r.size,
            sha256: r.sha256,
            format: r.format,
            rows: r.rows,
            columns: r.columns,
        }
    }
}

pub(crate) fn serialize_payload<S: Serializer>(
    s: S,
    code: i8,
    p: &Payload,
) -> Result<S::Ok, S::Error> {
    let bytes = rmp_serde::to_vec_named(p).map_err(serde::ser::Error::custom)?;
    serialize_ext(s, code, &bytes)
}

pub(crate) fn deserialize_payload<'de, D: Deserializer<'de>>(
    d: D,
    code: i8,
    what: &str,
) -> Result<Payload, D::Error> {
    let bytes = deserialize_ext(d, code, what)?;
    rmp_serde::from_slice(&bytes).map_err(serde::de::Error::custom)
}

/// A reference to a file. Cloning copies the reference, not the bytes.
pub struct File<F: Format = AnyFormat> {
    payload: Payload,
    format: PhantomData<F>,
}

impl<F: Format> Clone for File<F> {
    fn clone(&self) -> Self {
        File {
            payload: self.payload.clone(),
            format: PhantomData,
        }
    }
}

impl<F: Format> fmt::Debug for File<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("File").field(&self.payload.uri).finish()
    }
}

impl<F: Format> PartialEq for File<F> {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload
    }
}

impl<F: Format> File<F> {
    fn from_payload(payload: Payload) -> Self {
        File {
            payload,
            format: PhantomData,
        }
    }

    pub fn uri(&self) -> &str {
        &self.payload.uri
    }
    /// Size in bytes, when the host knows it.
    pub fn size(&self) -> Option<u64> {
        self.payload.size
    }
    /// Lowercase hex SHA-256, when known (always, for files written through sluice).
    pub fn sha256(&self) -> Option<&str> {
        self.payload.sha256.as_deref()
    }
    pub fn format(&self) -> Option<&str> {
        self.payload.format.as_deref()
    }

    /// A reference made from a bare URI. The host opens it only if this attempt holds it (it
    /// came in the inputs or the attempt wrote it): anything else fails with `not granted`.
    pub fn from_uri(uri: &str) -> Self {
        File::from_payload(Payload {
            uri: uri.to_string(),
            size: None,
            sha256: None,
            format: F::NAME.map(str::to_string),
            rows: None,
            columns: Vec::new(),
        })
    }

    /// Opens the file for reading; nothing is fetched before the first read.
    pub fn open(&self) -> io::Result<FileReader> {
        let handle = wit::open_file(&self.payload.uri).map_err(to_io)?;
        Ok(FileReader {
            size: handle.size(),
            handle,
            position: 0,
        })
    }

    /// Reads the whole file into memory (for small files; stream big ones with `open`).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open()?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Starts a new file in this attempt's output area; `name` is kept in its object name.
    pub fn create(name: &str) -> io::Result<FileWriter<F>> {
        let handle = wit::create_file(Some(name), F::NAME).map_err(to_io)?;
        Ok(FileWriter {
            handle: Some(handle),
            format: PhantomData,
        })
    }

    /// The same reference seen with another format parameter.
    pub fn cast<G: Format>(self) -> File<G> {
        File::from_payload(self.payload)
    }
}

impl<F: Format> Serialize for File<F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_payload(s, FILE_EXT, &self.payload)
    }
}

impl<'de, F: Format> Deserialize<'de> for File<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_payload(d, FILE_EXT, "file").map(File::from_payload)
    }
}

impl<F: Format> SluiceType for File<F> {
    fn describe(table: &mut TypeTable) -> u32 {
        table.push(TypeNode::File(FileType {
            format: F::NAME.map(str::to_string),
        }))
    }
}

/// A file open for reading: `std::io::Read` and `Seek`.
pub struct FileReader {
    handle: wit::FileReader,
    size: u64,
    position: u64,
}

impl FileReader {
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(READ_CHUNK_BYTES as usize);
        // The host writes straight into `buf` (see `lend.rs`), so a read is one copy.
        let lend = Lend::new(&mut buf[..want]);
        let result = self.handle.read(want as u32);
        let taken = lend.finish();
        let n = match result {
            Ok(chunk) if taken => {
                // A list result makes one allocation, so it is the one that took `buf`.
                assert_eq!(
                    chunk.as_ptr(),
                    buf.as_ptr(),
                    "host bytes outside the lent buffer"
                );
                let n = chunk.len().min(want);
                // The bytes are already in `buf`, which this Vec only borrows: never free it.
                std::mem::forget(chunk);
                n
            }
            Ok(chunk) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                n
            }
            Err(e) if taken => {
                // The error's text was placed in `buf`: keep a copy, never free the original.
                let owned = e.clone();
                std::mem::forget(e);
                return Err(to_io(owned));
            }
            Err(e) => return Err(to_io(e)),
        };
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.handle.seek(target).map_err(to_io)?;
        self.position = target.min(self.size);
        Ok(self.position)
    }
}

/// A new file being written: `std::io::Write`, then [`FileWriter::finish`]. Dropped without
/// finishing, it leaves nothing behind.
pub struct FileWriter<F: Format = AnyFormat> {
    handle: Option<wit::FileWriter>,
    format: PhantomData<F>,
}

impl<F: Format> FileWriter<F> {
    /// Completes the file; the host computed its size and SHA-256 as the bytes went by.
    pub fn finish(mut self) -> io::Result<File<F>> {
        let handle = self
            .handle
            .take()
            .ok_or_else(|| io::Error::other("writer already finished"))?;
        let reference = wit::FileWriter::finish(handle).map_err(to_io)?;
        Ok(File::from_payload(reference.into()))
    }
}

impl<F: Format> Write for FileWriter<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let handle = self
            .handle
            .as_ref()
            .ok_or_else(|| io::Error::other("writer already finished"))?;
        handle.write(buf).map_err(to_io)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reference to a directory of files.
#[derive(Clone, PartialEq)]
pub struct Dir {
    payload: Payload,
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Dir").field(&self.payload.uri).finish()
    }
}

impl Dir {
    pub fn uri(&self) -> &str {
        &self.payload.uri
    }
    /// Total bytes of its files, when known.
    pub fn size(&self) -> Option<u64> {
        self.payload.size
    }
    /// Hash of the listing (names and file hashes), when known.
    pub fn sha256(&self) -> Option<&str> {
        self.payload.sha256.as_deref()
    }

    /// Every file, recursively, sorted by name (relative, '/'-separated).
    pub fn entries(&self) -> io::Result<Vec<(String, File)>> {
        let entries = wit::list_dir(&self.payload.uri).map_err(to_io)?;
        Ok(entries
            .into_iter()
            .map(|e| (e.name, File::from_payload(e.file.into())))
            .collect())
    }

    /// Starts a new directory in this attempt's output area.
    pub fn create(name: &str) -> io::Result<DirBuilder> {
        let handle = wit::create_dir(Some(name)).map_err(to_io)?;
        Ok(DirBuilder { handle })
    }
}

impl Serialize for Dir {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_payload(s, DIR_EXT, &self.payload)
    }
}

impl<'de> Deserialize<'de> for Dir {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_payload(d, DIR_EXT, "dir").map(|payload| Dir { payload })
    }
}

impl SluiceType for Dir {
    fn describe(table: &mut TypeTable) -> u32 {
        table.push(TypeNode::Dir)
    }
}

/// A directory being built from new and existing files.
pub struct DirBuilder {
    handle: wit::DirWriter,
}

impl DirBuilder {
    /// A new file at `name` (relative, '/'-separated) inside the directory.
    pub fn create_file(&self, name: &str) -> io::Result<FileWriter> {
        let handle = self.handle.create_file(name).map_err(to_io)?;
        Ok(FileWriter {
            handle: Some(handle),
            format: PhantomData,
        })
    }

    /// Copies a file the task holds into the directory at `name`.
    pub fn add<F: Format>(&self, name: &str, file: &File<F>) -> io::Result<()> {
        self.handle.add_file(name, file.uri()).map_err(to_io)
    }

    pub fn finish(self) -> io::Result<Dir> {
        let reference = wit::DirWriter::finish(self.handle).map_err(to_io)?;
        Ok(Dir {
            payload: reference.into(),
        })
    }
}
