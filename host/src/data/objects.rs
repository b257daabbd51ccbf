//! Streaming one object in or out of a store.
//!
//! Local stores are read and written with plain file calls (opened through `cap-std`, so a path
//! cannot leave the store's directory, nor a directory's entry leave that directory, even by a
//! symbolic link); other stores go through `object_store` (ranged GET streams, multipart PUT).
//! A writer hashes the bytes as they pass and makes the object visible only when it finishes.

use std::io::Write;
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
/// An object that grows past this many bytes is hashed (and, in a local store, written) on
/// threads of their own from then on, so that SHA-256 (about 1.8 GB/s on these CPUs) and the
/// copy into the page cache overlap the guest producing the next bytes. Smaller objects are
/// handled inline: a thread costs more than they do (starting one is tens of microseconds;
/// hashing 1 MiB is about 0.6 ms). The chunk that crosses the line already goes to the threads.
const HASH_THREAD_THRESHOLD_BYTES: u64 = 1 << 20;
/// Chunks queued for each storing thread (hashing, writing) before a writer waits for it.
const STORE_QUEUE_CHUNKS: usize = 16;
/// A lone storing thread writes and then hashes a chunk this many bytes at a time, so that
/// hashing reads the piece from the cache the write just brought it into.
const STORE_PIECE_BYTES: usize = 256 << 10;

/// How a big local object is stored off the writer's thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreThreads {
    /// One thread writes the file and another hashes: the most throughput when the writer's
    /// thread is the only other busy one, as when a guest streams bytes it has ready (file
    /// writes, Arrow IPC frames appended as sent).
    #[default]
    WriteAndHashApart,
    /// One thread writes and hashes each piece in turn: for bytes encoded on threads of their
    /// own (Parquet, CSV), where two more busy threads would oversubscribe the cores. On the
    /// 1M-row hand-off of uniform floats on 2 cores, the Parquet producer took 61-69 ms this way
    /// against 108-120 ms with two storing threads.
    WriteThenHash,
}

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
    /// Shared with the [`ReadChunk`]s in flight, which read from it by position.
    Local(Arc<std::fs::File>),
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
            source: ReadSource::Local(Arc::new(file)),
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
            // A reader that never lent its file out owns it alone; otherwise the file is opened
            // again (a new descriptor for the same open object).
            ReadSource::Local(file) => Arc::try_unwrap(file)
                .or_else(|shared| shared.try_clone())
                .ok(),
            ReadSource::Remote { .. } => None,
        }
    }

    /// Up to `max` bytes from the current position; empty at the end.
    pub async fn read(&mut self, max: usize) -> Result<Vec<u8>, DataError> {
        self.read_chunk(max).await?.into_vec()
    }

    /// Up to `max` bytes from the current position, as a [`ReadChunk`]: from a local store the
    /// bytes are not read yet, so that whoever takes them can read them straight into the buffer
    /// they end up in (a guest's memory) instead of through one of ours.
    pub async fn read_chunk(&mut self, max: usize) -> Result<ReadChunk, DataError> {
        let want = max.min(self.size.saturating_sub(self.position) as usize);
        if want == 0 {
            return Ok(ReadChunk::Bytes(Vec::new()));
        }
        let out = match &mut self.source {
            ReadSource::Local(file) => {
                let chunk = ReadChunk::Local {
                    file: file.clone(),
                    offset: self.position,
                    len: want,
                    uri: self.uri.clone(),
                };
                self.position += want as u64;
                return Ok(chunk);
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
                            None => return Ok(ReadChunk::Bytes(Vec::new())),
                        }
                    }
                }
                let n = want.min(pending.len());
                pending.split_to(n).to_vec()
            }
        };
        self.position += out.len() as u64;
        Ok(ReadChunk::Bytes(out))
    }

    pub fn seek(&mut self, offset: u64) -> Result<(), DataError> {
        let offset = offset.min(self.size);
        match &mut self.source {
            // Local reads are positional: the position is all there is to move.
            ReadSource::Local(_) => {}
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

/// Bytes a read returned: in hand, or a range of a local file still to be read.
pub enum ReadChunk {
    Bytes(Vec<u8>),
    /// `len` bytes at `offset` of `file`, all within the object's size when the read was made.
    Local {
        file: Arc<std::fs::File>,
        offset: u64,
        len: usize,
        uri: String,
    },
}

impl ReadChunk {
    pub fn len(&self) -> usize {
        match self {
            ReadChunk::Bytes(bytes) => bytes.len(),
            ReadChunk::Local { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the chunk into `dest`, which must be exactly [`ReadChunk::len`] bytes long. A local
    /// file that shrank since it was opened fails here with the object's URI.
    pub fn read_into(&self, dest: &mut [u8]) -> Result<(), DataError> {
        match self {
            ReadChunk::Bytes(bytes) => dest.copy_from_slice(bytes),
            ReadChunk::Local {
                file, offset, uri, ..
            } => {
                use std::os::unix::fs::FileExt;
                file.read_exact_at(dest, *offset)
                    .map_err(|e| io_error(uri, e))?;
            }
        }
        Ok(())
    }

    /// The bytes in a buffer of their own.
    pub fn into_vec(self) -> Result<Vec<u8>, DataError> {
        match self {
            ReadChunk::Bytes(bytes) => Ok(bytes),
            local => {
                let mut buf = vec![0; local.len()];
                local.read_into(&mut buf)?;
                Ok(buf)
            }
        }
    }
}

enum WriteSink {
    /// Written to a temporary file in the store, renamed into place by `finish`.
    Local {
        /// None once the storing thread has it (see `Stage`).
        file: Option<std::fs::File>,
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

/// Who writes a local object's file and SHA-256es the bytes: the caller at first, then, once the
/// object is big, storing threads (as [`StoreThreads`] says: two, one writing the file and one
/// hashing, or one doing both), so that the copy into the page cache and SHA-256 overlap the
/// guest producing the next bytes.
enum Stage {
    Inline(Sha256),
    Threaded {
        hasher: Worker<Sha256>,
        /// Writes the local file (and closes it); none for a remote sink, which the caller
        /// writes, and none when the hashing thread writes the file too
        /// ([`StoreThreads::WriteThenHash`]).
        writer: Option<Worker<()>>,
    },
    /// A thread could not be started or stopped on an error; `finish` reports it.
    Broken(std::io::ErrorKind, String),
}

/// Bytes handed to a writer: borrowed ones are copied if a thread must take them, shared ones
/// are passed on as they are.
enum Chunk<'a> {
    Borrowed(&'a [u8]),
    Shared(Bytes),
}

impl Chunk<'_> {
    fn into_shared(self) -> Bytes {
        match self {
            Chunk::Borrowed(bytes) => Bytes::copy_from_slice(bytes),
            Chunk::Shared(bytes) => bytes,
        }
    }
}

impl std::ops::Deref for Chunk<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Borrowed(bytes) => bytes,
            Chunk::Shared(bytes) => bytes,
        }
    }
}

/// A thread fed chunks through a bounded queue; its result comes back when the queue closes.
struct Worker<T> {
    chunks: std::sync::mpsc::SyncSender<Bytes>,
    handle: std::thread::JoinHandle<std::io::Result<T>>,
}

impl<T: Send + 'static> Worker<T> {
    fn spawn<S: Send + 'static>(
        name: &str,
        mut state: S,
        step: fn(&mut S, &[u8]) -> std::io::Result<()>,
        end: fn(S) -> T,
    ) -> std::io::Result<Self> {
        let (chunks, queue) = std::sync::mpsc::sync_channel::<Bytes>(STORE_QUEUE_CHUNKS);
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for chunk in queue {
                    // On an error the queue closes with the thread, so the writer hears at once.
                    step(&mut state, &chunk)?;
                }
                Ok(end(state))
            })?;
        Ok(Worker { chunks, handle })
    }

    fn send(&self, chunk: Bytes) -> bool {
        self.chunks.send(chunk).is_ok()
    }

    fn finish(self) -> std::io::Result<T> {
        drop(self.chunks);
        self.handle
            .join()
            .map_err(|_| std::io::Error::other("a storing thread panicked"))?
    }
}

impl Stage {
    /// Starts the threads: one continuing `hasher`, and one writing `file` when there is one,
    /// or a single thread doing both as `threads` says.
    fn threaded(hasher: Sha256, file: Option<std::fs::File>, threads: StoreThreads) -> Stage {
        // The hashing thread, and the file still to be written by a thread of its own.
        let (hashing, file) = match (file, threads) {
            (Some(file), StoreThreads::WriteThenHash) => {
                let store = Worker::spawn(
                    "sluice-store",
                    (hasher, file),
                    |(hasher, file), chunk| {
                        for piece in chunk.chunks(STORE_PIECE_BYTES) {
                            file.write_all(piece)?;
                            hasher.update(piece);
                        }
                        Ok(())
                    },
                    |(hasher, file)| {
                        drop(file); // closed before the object is placed
                        hasher
                    },
                );
                (store, None)
            }
            (file, _) => {
                let hash = Worker::spawn(
                    "sluice-hash",
                    hasher,
                    |h, chunk| {
                        h.update(chunk);
                        Ok(())
                    },
                    |h| h,
                );
                (hash, file)
            }
        };
        let writing = file
            .map(|f| Worker::spawn("sluice-write", f, |f, chunk| f.write_all(chunk), drop))
            .transpose();
        match (hashing, writing) {
            (Ok(hasher), Ok(writer)) => Stage::Threaded { hasher, writer },
            (Err(e), _) | (_, Err(e)) => {
                Stage::Broken(e.kind(), format!("starting a storing thread: {e}"))
            }
        }
    }

    /// Hands a chunk to the threads (an owned one as it is, a borrowed one copied); an error
    /// when one of them has stopped.
    fn send(&mut self, bytes: Chunk<'_>) -> std::io::Result<()> {
        if let Stage::Threaded { hasher, writer } = self {
            let chunk = bytes.into_shared();
            let written = writer.as_ref().is_none_or(|w| w.send(chunk.clone()));
            if written && hasher.send(chunk) {
                return Ok(());
            }
            // A thread stopped: take its error and keep it for `finish` too.
            let stopped = std::mem::replace(
                self,
                Stage::Broken(std::io::ErrorKind::Other, String::new()),
            );
            *self = match stopped.finish() {
                Err(e) => Stage::Broken(e.kind(), e.to_string()),
                Ok(_) => Stage::Broken(
                    std::io::ErrorKind::Other,
                    "a storing thread stopped early".to_string(),
                ),
            };
        }
        match self {
            Stage::Broken(kind, why) => Err(std::io::Error::new(*kind, why.clone())),
            _ => Ok(()),
        }
    }

    /// The hash of everything written, once every byte is in the (closed) file.
    fn finish(self) -> std::io::Result<Sha256> {
        match self {
            Stage::Inline(hasher) => Ok(hasher),
            Stage::Threaded { hasher, writer } => {
                if let Some(writer) = writer {
                    writer.finish()?;
                }
                hasher.finish()
            }
            Stage::Broken(kind, why) => Err(std::io::Error::new(kind, why)),
        }
    }
}

/// A new object being written. Dropping it unfinished leaves nothing at its URI.
pub struct ObjectWriter {
    uri: String,
    size: u64,
    threads: StoreThreads,
    stage: Option<Stage>,
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
        Ok(Self::new(
            uri,
            WriteSink::Local {
                file: Some(file),
                temp,
                dest,
            },
        ))
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
            threads: StoreThreads::default(),
            stage: Some(Stage::Inline(Sha256::new())),
            sink: Some(sink),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Chooses how the object is stored once it is big (before its first write).
    pub fn set_store_threads(&mut self, threads: StoreThreads) {
        self.threads = threads;
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), DataError> {
        self.write_chunk(Chunk::Borrowed(bytes)).await
    }

    /// `write` for bytes the caller gives away: a big object's hashing thread takes them as they
    /// are instead of a copy.
    pub async fn write_vec(&mut self, bytes: Vec<u8>) -> Result<(), DataError> {
        self.write_chunk(Chunk::Shared(Bytes::from(bytes))).await
    }

    /// `write_vec` for bytes shared with others (a slice of a bigger buffer): no copy either.
    pub async fn write_bytes(&mut self, bytes: Bytes) -> Result<(), DataError> {
        self.write_chunk(Chunk::Shared(bytes)).await
    }

    async fn write_chunk(&mut self, bytes: Chunk<'_>) -> Result<(), DataError> {
        let (Some(sink), Some(stage)) = (&mut self.sink, &mut self.stage) else {
            return Err(DataError::Closed {
                uri: self.uri.clone(),
            });
        };
        let size_after = self.size + bytes.len() as u64;
        if size_after > HASH_THREAD_THRESHOLD_BYTES {
            // The chunk that makes the object big already goes to the threads: a big first
            // chunk would otherwise be hashed and written here while they wait.
            if let Stage::Inline(hasher) = stage {
                let file = match sink {
                    WriteSink::Local { file, .. } => file.take(),
                    WriteSink::Remote(_) => None,
                };
                *stage = Stage::threaded(std::mem::take(hasher), file, self.threads);
            }
        }
        // The caller writes a local file until the storing threads take it over.
        let inline = matches!(stage, Stage::Inline(_));
        match sink {
            WriteSink::Local { file, .. } if inline => {
                let file = file.as_mut().ok_or_else(|| DataError::Closed {
                    uri: self.uri.clone(),
                })?;
                file.write_all(&bytes).map_err(|e| io_error(&self.uri, e))?;
            }
            WriteSink::Local { .. } => {}
            WriteSink::Remote(upload) => {
                upload
                    .wait_for_capacity(MAX_PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| store_error(&self.uri, e))?;
                upload.write(&bytes);
            }
        }
        match stage {
            Stage::Inline(hasher) => hasher.update(&*bytes),
            _ => stage.send(bytes).map_err(|e| io_error(&self.uri, e))?,
        }
        self.size = size_after;
        Ok(())
    }

    /// Makes the object visible at its URI and returns its size and hash.
    pub async fn finish(mut self) -> Result<Written, DataError> {
        // The hash first: an object whose hash is unknown must not become visible.
        let sha256 = match self.stage.take().map(Stage::finish) {
            Some(Ok(hasher)) => hex::encode(hasher.finalize()),
            Some(Err(e)) => return Err(io_error(&self.uri, e)),
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
        // Closes the storing threads' queues: they end after the chunks already sent, the
        // writing one writing them to a file no longer linked anywhere.
        drop(self.stage.take());
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
    async fn local_reads_are_positional_and_a_shrunk_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o");
        std::fs::write(&path, pattern(1000)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut reader = ObjectReader::local("file:///o", file).unwrap();
        reader.seek(990).unwrap();
        assert_eq!(reader.read(64).await.unwrap(), pattern(1000)[990..]);
        assert!(reader.read(64).await.unwrap().is_empty(), "at the end");
        reader.seek(100).unwrap();
        let chunk = reader.read_chunk(400).await.unwrap();
        assert_eq!(chunk.len(), 400);
        // The object shrinks after the read was granted and before its bytes are taken.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(200)
            .unwrap();
        let mut dest = vec![0; chunk.len()];
        let err = chunk.read_into(&mut dest).unwrap_err().to_string();
        assert!(err.contains("file:///o"), "{err}");
    }

    #[tokio::test]
    async fn big_objects_hash_on_a_thread_to_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        let threshold = HASH_THREAD_THRESHOLD_BYTES as usize;
        for threads in [StoreThreads::WriteAndHashApart, StoreThreads::WriteThenHash] {
            // Small chunks cross the threshold after some inline ones; a chunk of 3 MiB
            // crosses it at once and goes to the threads whole.
            for chunk_len in [64 << 10, 3 << 20] {
                for len in [0, 1000, threshold + 1, 10 << 20] {
                    let name = format!("{threads:?}-{chunk_len}-{len}");
                    let dest = dir.path().join(format!("o{name}"));
                    let temp = dir.path().join(format!("t{name}"));
                    let mut writer =
                        ObjectWriter::local("file:///o", temp.clone(), dest.clone()).unwrap();
                    writer.set_store_threads(threads);
                    let data = pattern(len);
                    for chunk in data.chunks(chunk_len) {
                        writer.write(chunk).await.unwrap();
                    }
                    let written = writer.finish().await.unwrap();
                    assert_eq!(written.size, len as u64, "{name}");
                    assert_eq!(written.sha256, hex::encode(Sha256::digest(&data)), "{name}");
                    assert_eq!(std::fs::read(&dest).unwrap(), data, "{name}");
                    assert!(!temp.exists(), "{name}");
                }
            }
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

    #[tokio::test]
    async fn a_write_that_fails_on_the_storing_thread_fails_the_object() {
        for threads in [StoreThreads::WriteAndHashApart, StoreThreads::WriteThenHash] {
            a_write_fails_on_the_storing_thread(threads).await;
        }
    }

    async fn a_write_fails_on_the_storing_thread(threads: StoreThreads) {
        // The "file" is a pipe whose reader goes away after 6 MiB: the thread's writes then fail
        // with a broken pipe, as a full disk would fail them.
        let (reader, pipe) = std::io::pipe().unwrap();
        let drain = std::thread::spawn(move || {
            let mut sink = vec![0u8; 6 << 20];
            let _ = std::io::Read::read_exact(&mut { reader }, &mut sink);
        });
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("o");
        let file = std::fs::File::from(std::os::fd::OwnedFd::from(pipe));
        let sink = WriteSink::Local {
            file: Some(file),
            temp: dir.path().join("t"),
            dest: dest.clone(),
        };
        let mut writer = ObjectWriter::new("file:///o", sink);
        writer.set_store_threads(threads);
        let mut failed = None;
        for _ in 0..64 {
            if let Err(e) = writer.write_vec(vec![7u8; 1 << 20]).await {
                failed = Some(e);
                break;
            }
        }
        let error = match failed {
            Some(e) => e,
            None => writer.finish().await.unwrap_err(),
        };
        drain.join().unwrap();
        assert!(
            matches!(&error, DataError::Local { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe),
            "{threads:?}: {error:?}"
        );
        assert!(!dest.exists(), "{threads:?}");
    }
}
