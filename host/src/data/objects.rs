//! Streaming one object in or out of a store.
//!
//! Local stores are read and written with plain file calls (opened through `cap-std`, so a path
//! cannot leave the store's directory, nor a directory's entry leave that directory, even by a
//! symbolic link); other stores go through `object_store` (ranged GET streams, multipart PUT).
//! A writer hashes the bytes as they pass and makes the object visible only when it finishes.

use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

use super::DataError;

/// Parts in flight for a multipart upload before `write` waits.
const MAX_PARTS_IN_FLIGHT: usize = 4;
/// An object that grows past this many bytes is hashed on a thread of its own from then on, so
/// that SHA-256 (about 1.8 GB/s on these CPUs) overlaps the guest producing the next bytes and
/// the store taking them. Smaller objects are hashed inline: a thread costs more than they do.
const HASH_THREAD_THRESHOLD_BYTES: u64 = 4 << 20;
/// Chunks queued for the hashing thread before a writer waits for it.
const HASH_QUEUE_CHUNKS: usize = 16;

pub(crate) fn io_error(uri: &str, e: std::io::Error) -> DataError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataError::Missing {
            uri: uri.to_string(),
        }
    } else {
        DataError::Local {
            uri: uri.to_string(),
            source: e,
        }
    }
}

pub(crate) fn store_error(uri: &str, e: object_store::Error) -> DataError {
    match e {
        object_store::Error::NotFound { .. } => DataError::Missing {
            uri: uri.to_string(),
        },
        source => DataError::Object {
            uri: uri.to_string(),
            source,
        },
    }
}

enum ReadSource {
    Local(std::fs::File),
    Remote {
        store: Arc<dyn ObjectStore>,
        path: Path,
        stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
        pending: Bytes,
    },
}

/// An object open for reading.
pub struct ObjectReader {
    uri: String,
    size: u64,
    position: u64,
    source: ReadSource,
}

impl ObjectReader {
    pub(crate) fn local(uri: &str, file: std::fs::File) -> Result<Self, DataError> {
        let meta = file.metadata().map_err(|e| io_error(uri, e))?;
        if !meta.is_file() {
            return Err(DataError::NotAFile {
                uri: uri.to_string(),
            });
        }
        Ok(ObjectReader {
            uri: uri.to_string(),
            size: meta.len(),
            position: 0,
            source: ReadSource::Local(file),
        })
    }

    pub(crate) async fn remote(
        uri: &str,
        store: Arc<dyn ObjectStore>,
        path: Path,
    ) -> Result<Self, DataError> {
        let meta = store.head(&path).await.map_err(|e| store_error(uri, e))?;
        Ok(ObjectReader {
            uri: uri.to_string(),
            size: meta.size,
            position: 0,
            source: ReadSource::Remote {
                store,
                path,
                stream: None,
                pending: Bytes::new(),
            },
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The open file, for a reader of a local store.
    pub(crate) fn into_local_file(self) -> Option<std::fs::File> {
        match self.source {
            ReadSource::Local(file) => Some(file),
            ReadSource::Remote { .. } => None,
        }
    }

    /// Up to `max` bytes from the current position; empty at the end.
    pub async fn read(&mut self, max: usize) -> Result<Vec<u8>, DataError> {
        let want = max.min(self.size.saturating_sub(self.position) as usize);
        if want == 0 {
            return Ok(Vec::new());
        }
        let out = match &mut self.source {
            ReadSource::Local(file) => {
                // Read into spare capacity: no zeroing of a buffer about to be overwritten.
                let mut buf = Vec::with_capacity(want);
                file.take(want as u64)
                    .read_to_end(&mut buf)
                    .map_err(|e| io_error(&self.uri, e))?;
                buf
            }
            ReadSource::Remote {
                store,
                path,
                stream,
                pending,
            } => {
                if pending.is_empty() {
                    if stream.is_none() {
                        let options = GetOptions {
                            range: Some(GetRange::Offset(self.position)),
                            ..Default::default()
                        };
                        let got = store
                            .get_opts(path, options)
                            .await
                            .map_err(|e| store_error(&self.uri, e))?;
                        *stream = Some(got.into_stream());
                    }
                    if let Some(s) = stream {
                        match s.next().await {
                            Some(chunk) => {
                                *pending = chunk.map_err(|e| store_error(&self.uri, e))?
                            }
                            None => return Ok(Vec::new()),
                        }
                    }
                }
                let n = want.min(pending.len());
                pending.split_to(n).to_vec()
            }
        };
        self.position += out.len() as u64;
        Ok(out)
    }

    pub fn seek(&mut self, offset: u64) -> Result<(), DataError> {
        let offset = offset.min(self.size);
        match &mut self.source {
            ReadSource::Local(file) => {
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| io_error(&self.uri, e))?;
            }
            ReadSource::Remote {
                stream, pending, ..
            } => {
                *stream = None;
                *pending = Bytes::new();
            }
        }
        self.position = offset;
        Ok(())
    }
}

enum WriteSink {
    /// Written to a temporary file in the store, renamed into place by `finish`.
    Local {
        file: std::fs::File,
        temp: PathBuf,
        dest: PathBuf,
    },
    Remote(WriteMultipart),
}

/// What a finished write produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub uri: String,
    pub size: u64,
    pub sha256: String,
}

/// SHA-256 of what a writer wrote: inline, or on its own thread for a big object.
enum Hashing {
    Inline(Sha256),
    Threaded {
        chunks: std::sync::mpsc::SyncSender<Vec<u8>>,
        worker: std::thread::JoinHandle<Sha256>,
    },
    /// The thread could not be started or went away; `finish` reports it.
    Broken(String),
}

impl Hashing {
    /// Hashes a chunk; an owned one goes to the thread as it is, a borrowed one is copied.
    fn update(&mut self, bytes: Cow<'_, [u8]>, size_after: u64) {
        match self {
            Hashing::Inline(hasher) => {
                hasher.update(&bytes);
                if size_after > HASH_THREAD_THRESHOLD_BYTES {
                    let hasher = std::mem::take(hasher);
                    *self = Hashing::threaded(hasher);
                }
            }
            Hashing::Threaded { chunks, .. } => {
                if chunks.send(bytes.into_owned()).is_err() {
                    *self = Hashing::Broken("the hashing thread stopped".to_string());
                }
            }
            Hashing::Broken(_) => {}
        }
    }

    fn threaded(mut hasher: Sha256) -> Hashing {
        let (chunks, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE_CHUNKS);
        let worker = std::thread::Builder::new()
            .name("sluice-hash".to_string())
            .spawn(move || {
                for chunk in queue {
                    hasher.update(&chunk);
                }
                hasher
            });
        match worker {
            Ok(worker) => Hashing::Threaded { chunks, worker },
            Err(e) => Hashing::Broken(format!("starting the hashing thread: {e}")),
        }
    }

    fn finish(self) -> Result<String, String> {
        let hasher = match self {
            Hashing::Inline(hasher) => hasher,
            Hashing::Threaded { chunks, worker } => {
                drop(chunks);
                worker
                    .join()
                    .map_err(|_| "the hashing thread panicked".to_string())?
            }
            Hashing::Broken(why) => return Err(why),
        };
        Ok(hex::encode(hasher.finalize()))
    }
}

/// A new object being written. Dropping it unfinished leaves nothing at its URI.
pub struct ObjectWriter {
    uri: String,
    size: u64,
    hashing: Option<Hashing>,
    sink: Option<WriteSink>,
}

impl ObjectWriter {
    pub(crate) fn local(uri: &str, temp: PathBuf, dest: PathBuf) -> Result<Self, DataError> {
        if let Some(dir) = temp.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(uri, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_error(uri, e))?;
        Ok(Self::new(uri, WriteSink::Local { file, temp, dest }))
    }

    pub(crate) async fn remote(
        uri: &str,
        store: &Arc<dyn ObjectStore>,
        path: &Path,
    ) -> Result<Self, DataError> {
        let upload = store
            .put_multipart(path)
            .await
            .map_err(|e| store_error(uri, e))?;
        Ok(Self::new(
            uri,
            WriteSink::Remote(WriteMultipart::new(upload)),
        ))
    }

    fn new(uri: &str, sink: WriteSink) -> Self {
        ObjectWriter {
            uri: uri.to_string(),
            size: 0,
            hashing: Some(Hashing::Inline(Sha256::new())),
            sink: Some(sink),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), DataError> {
        self.write_chunk(Cow::Borrowed(bytes)).await
    }

    /// `write` for bytes the caller gives away: a big object's hashing thread takes them as they
    /// are instead of a copy.
    pub async fn write_vec(&mut self, bytes: Vec<u8>) -> Result<(), DataError> {
        self.write_chunk(Cow::Owned(bytes)).await
    }

    async fn write_chunk(&mut self, bytes: Cow<'_, [u8]>) -> Result<(), DataError> {
        match &mut self.sink {
            Some(WriteSink::Local { file, .. }) => {
                file.write_all(&bytes).map_err(|e| io_error(&self.uri, e))?
            }
            Some(WriteSink::Remote(upload)) => {
                upload
                    .wait_for_capacity(MAX_PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| store_error(&self.uri, e))?;
                upload.write(&bytes);
            }
            None => {
                return Err(DataError::Closed {
                    uri: self.uri.clone(),
                })
            }
        }
        self.size += bytes.len() as u64;
        if let Some(hashing) = &mut self.hashing {
            hashing.update(bytes, self.size);
        }
        Ok(())
    }

    /// Makes the object visible at its URI and returns its size and hash.
    pub async fn finish(mut self) -> Result<Written, DataError> {
        // The hash first: an object whose hash is unknown must not become visible.
        let sha256 = match self.hashing.take().map(Hashing::finish) {
            Some(Ok(hex)) => hex,
            Some(Err(why)) => return Err(io_error(&self.uri, std::io::Error::other(why))),
            None => {
                return Err(DataError::Closed {
                    uri: self.uri.clone(),
                })
            }
        };
        match self.sink.take() {
            Some(WriteSink::Local { file, temp, dest }) => {
                drop(file);
                let placed = dest
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|_| std::fs::rename(&temp, &dest));
                if let Err(e) = placed {
                    let _ = std::fs::remove_file(&temp);
                    return Err(io_error(&self.uri, e));
                }
            }
            Some(WriteSink::Remote(upload)) => {
                upload
                    .finish()
                    .await
                    .map_err(|e| store_error(&self.uri, e))?;
            }
            None => {
                return Err(DataError::Closed {
                    uri: self.uri.clone(),
                })
            }
        }
        Ok(Written {
            uri: self.uri.clone(),
            size: self.size,
            sha256,
        })
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        match self.sink.take() {
            Some(WriteSink::Local { file, temp, .. }) => {
                drop(file);
                let _ = std::fs::remove_file(temp);
            }
            // An unfinished multipart upload never becomes an object; aborting it only frees the
            // parts early, which the store's own lifecycle rules also do.
            Some(WriteSink::Remote(upload)) => {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        let _ = upload.abort().await;
                    });
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn big_objects_hash_on_a_thread_to_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1000, HASH_THREAD_THRESHOLD_BYTES as usize + 1, 10 << 20] {
            let dest = dir.path().join(format!("o{len}"));
            let temp = dir.path().join(format!("t{len}"));
            let mut writer = ObjectWriter::local("file:///o", temp.clone(), dest.clone()).unwrap();
            let data = pattern(len);
            for chunk in data.chunks(64 << 10) {
                writer.write(chunk).await.unwrap();
            }
            let written = writer.finish().await.unwrap();
            assert_eq!(written.size, len as u64);
            assert_eq!(
                written.sha256,
                hex::encode(Sha256::digest(&data)),
                "{len} bytes"
            );
            assert_eq!(std::fs::read(&dest).unwrap(), data);
            assert!(!temp.exists());
        }
    }

    #[tokio::test]
    async fn a_dropped_big_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("o");
        let temp = dir.path().join("t");
        let mut writer = ObjectWriter::local("file:///o", temp.clone(), dest.clone()).unwrap();
        for chunk in pattern(6 << 20).chunks(1 << 20) {
            writer.write(chunk).await.unwrap();
        }
        drop(writer);
        assert!(!temp.exists() && !dest.exists());
    }
}
