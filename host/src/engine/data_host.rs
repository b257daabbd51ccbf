//! The `data` WIT interface: thin adapters from guest calls to the attempt's [`DataSession`].
//! Every check (grants, names, stores) lives in the session; this file only converts types and
//! keeps the guest's handles in the store's resource table.

use wasmtime::component::Resource;

use super::attempt::AttemptState;
use crate::bindings::data::{self as wit, DataError as WitError, DirEntry, Reference};
use crate::data::frames::{FrameReader, FrameWriter};
use crate::data::session::dir_entry_done;
use crate::data::{DataError, DataSession, DirBuild, ObjectReader, ObjectWriter};
use crate::values::reference::RefMeta;

/// Largest chunk one `read` call returns, whatever the guest asks for: bounds the host buffer.
pub const MAX_READ_CHUNK_BYTES: u32 = 8 << 20;
/// Handles (readers and writers) one attempt may hold open at once.
pub const MAX_OPEN_HANDLES: usize = 1024;

pub struct FileReaderHandle(ObjectReader);

impl FileReaderHandle {
    pub(super) fn reader(&mut self) -> &mut ObjectReader {
        &mut self.0
    }
}

pub struct FileWriterHandle {
    writer: ObjectWriter,
    format: Option<String>,
    /// Set when the file is an entry of a directory being built.
    in_dir: Option<(DirBuild, String)>,
}

pub struct DirWriterHandle(DirBuild);

pub struct FrameReaderHandle(FrameReader);

pub struct FrameWriterHandle(FrameWriter);

type Res<T> = wasmtime::Result<Result<T, WitError>>;

pub(super) fn to_wit(e: DataError) -> WitError {
    let text = e.to_string();
    match e {
        DataError::NotGranted { .. } | DataError::Unresolved { .. } => WitError::NotGranted(text),
        DataError::Missing { .. } => WitError::Missing(text),
        DataError::NotAFile { .. }
        | DataError::Closed { .. }
        | DataError::BadEntry { .. }
        | DataError::Frame { .. }
        | DataError::BadName { .. } => WitError::Invalid(text),
        _ => WitError::Store(text),
    }
}

pub fn reference_to_wit(meta: RefMeta) -> Reference {
    Reference {
        uri: meta.uri,
        size: meta.size,
        sha256: meta.sha256,
        format: meta.format,
        rows: meta.rows,
        columns: meta.columns,
    }
}

impl AttemptState {
    fn session(&mut self) -> Result<&mut DataSession, WitError> {
        self.data.as_mut().ok_or_else(|| {
            WitError::Invalid("no data access here (only while a task runs)".to_string())
        })
    }

    fn room_for_handle(&mut self) -> Result<(), WitError> {
        if self.data_handles >= MAX_OPEN_HANDLES {
            return Err(WitError::Invalid(format!(
                "too many open handles (at most {MAX_OPEN_HANDLES} per attempt); drop some first"
            )));
        }
        Ok(())
    }
}

/// Pushes a new handle into the resource table, turning a full table into a trap.
macro_rules! push {
    ($self:ident, $value:expr) => {
        match $self.room_for_handle() {
            Ok(()) => {
                let handle = $self.table.push($value)?;
                $self.data_handles += 1;
                Ok(handle)
            }
            Err(e) => Err(e),
        }
    };
}

impl AttemptState {
    fn push_writer(
        &mut self,
        created: Result<ObjectWriter, WitError>,
        format: Option<String>,
        in_dir: Option<(DirBuild, String)>,
    ) -> Res<Resource<FileWriterHandle>> {
        Ok(match created {
            Ok(writer) => push!(
                self,
                FileWriterHandle {
                    writer,
                    format,
                    in_dir
                }
            ),
            Err(e) => Err(e),
        })
    }
}

impl wit::Host for AttemptState {
    async fn open_file(&mut self, uri: String) -> Res<Resource<FileReaderHandle>> {
        let opened = match self.session() {
            Ok(s) => s.open_file(&uri).await.map_err(to_wit),
            Err(e) => Err(e),
        };
        Ok(match opened {
            Ok(reader) => push!(self, FileReaderHandle(reader)),
            Err(e) => Err(e),
        })
    }

    async fn create_file(
        &mut self,
        name: Option<String>,
        format: Option<String>,
    ) -> Res<Resource<FileWriterHandle>> {
        let created = match self.session() {
            Ok(s) => s.create_file(name.as_deref()).await.map_err(to_wit),
            Err(e) => Err(e),
        };
        self.push_writer(created, format, None)
    }

    async fn list_dir(&mut self, uri: String) -> Res<Vec<DirEntry>> {
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(session
            .list_dir(&uri)
            .await
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|(name, meta)| DirEntry {
                        name,
                        file: reference_to_wit(meta),
                    })
                    .collect()
            })
            .map_err(to_wit))
    }

    async fn open_frame(
        &mut self,
        uri: String,
        columns: Option<Vec<String>>,
        batch_rows: u32,
    ) -> Res<Resource<FrameReaderHandle>> {
        let opened = match self.session() {
            Ok(s) => s
                .open_frame(&uri, columns.as_deref(), batch_rows as usize)
                .await
                .map_err(to_wit),
            Err(e) => Err(e),
        };
        Ok(match opened {
            Ok(reader) => push!(self, FrameReaderHandle(reader)),
            Err(e) => Err(e),
        })
    }

    async fn create_frame(
        &mut self,
        name: Option<String>,
        format: Option<String>,
        columns: Vec<(String, String)>,
    ) -> Res<Resource<FrameWriterHandle>> {
        let created = match self.session() {
            Ok(s) => s
                .create_frame(name.as_deref(), format.as_deref(), columns)
                .await
                .map_err(to_wit),
            Err(e) => Err(e),
        };
        Ok(match created {
            Ok(writer) => push!(self, FrameWriterHandle(writer)),
            Err(e) => Err(e),
        })
    }

    async fn create_dir(&mut self, name: Option<String>) -> Res<Resource<DirWriterHandle>> {
        let build = match self.session() {
            Ok(s) => s.new_dir(name.as_deref()),
            Err(e) => return Ok(Err(e)),
        };
        Ok(push!(self, DirWriterHandle(build)))
    }
}

impl wit::HostFileReader for AttemptState {
    async fn read(&mut self, this: Resource<FileReaderHandle>, max: u32) -> Res<Vec<u8>> {
        let reader = self.table.get_mut(&this)?;
        let max = max.min(MAX_READ_CHUNK_BYTES) as usize;
        Ok(reader.0.read(max).await.map_err(to_wit))
    }

    async fn seek(&mut self, this: Resource<FileReaderHandle>, offset: u64) -> Res<()> {
        let reader = self.table.get_mut(&this)?;
        Ok(reader.0.seek(offset).map_err(to_wit))
    }

    async fn size(&mut self, this: Resource<FileReaderHandle>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.0.size())
    }

    async fn drop(&mut self, this: Resource<FileReaderHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.data_handles -= 1;
        Ok(())
    }
}

impl wit::HostFileWriter for AttemptState {
    async fn write(&mut self, this: Resource<FileWriterHandle>, bytes: Vec<u8>) -> Res<()> {
        let handle = self.table.get_mut(&this)?;
        Ok(handle.writer.write_vec(bytes).await.map_err(to_wit))
    }

    async fn finish(&mut self, this: Resource<FileWriterHandle>) -> Res<Reference> {
        let handle = self.table.delete(this)?;
        self.data_handles -= 1;
        let written = match handle.writer.finish().await {
            Ok(w) => w,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if let Some((dir, name)) = &handle.in_dir {
            dir_entry_done(dir, name, &written);
        }
        Ok(Ok(reference_to_wit(
            session.file_created(written, handle.format),
        )))
    }

    async fn drop(&mut self, this: Resource<FileWriterHandle>) -> wasmtime::Result<()> {
        // Dropping the writer discards its unfinished object.
        self.table.delete(this)?;
        self.data_handles -= 1;
        Ok(())
    }
}

impl wit::HostDirWriter for AttemptState {
    async fn create_file(
        &mut self,
        this: Resource<DirWriterHandle>,
        name: String,
    ) -> Res<Resource<FileWriterHandle>> {
        let dir = self.table.get(&this)?.0.clone();
        let created = match self.session() {
            Ok(s) => s.create_dir_file(&dir, &name).await.map_err(to_wit),
            Err(e) => Err(e),
        };
        self.push_writer(created, None, Some((dir, name)))
    }

    async fn add_file(
        &mut self,
        this: Resource<DirWriterHandle>,
        name: String,
        uri: String,
    ) -> Res<()> {
        let dir = self.table.get(&this)?.0.clone();
        Ok(match self.session() {
            Ok(s) => s.add_to_dir(&dir, &name, &uri).await.map_err(to_wit),
            Err(e) => Err(e),
        })
    }

    async fn finish(&mut self, this: Resource<DirWriterHandle>) -> Res<Reference> {
        let dir = self.table.delete(this)?.0;
        self.data_handles -= 1;
        Ok(self.session().map(|s| reference_to_wit(s.finish_dir(dir))))
    }

    async fn drop(&mut self, this: Resource<DirWriterHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.data_handles -= 1;
        Ok(())
    }
}

impl wit::HostFrameReader for AttemptState {
    async fn next(&mut self, this: Resource<FrameReaderHandle>) -> Res<Option<Vec<u8>>> {
        let reader = self.table.get_mut(&this)?;
        Ok(reader.0.next_ipc().map_err(to_wit))
    }

    async fn next_columns(&mut self, this: Resource<FrameReaderHandle>) -> Res<Option<Vec<u8>>> {
        let reader = self.table.get_mut(&this)?;
        Ok(reader.0.next_columns().map_err(to_wit))
    }

    async fn drop(&mut self, this: Resource<FrameReaderHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.data_handles -= 1;
        Ok(())
    }
}

impl wit::HostFrameWriter for AttemptState {
    async fn write(&mut self, this: Resource<FrameWriterHandle>, ipc: Vec<u8>) -> Res<()> {
        let writer = self.table.get_mut(&this)?;
        Ok(writer.0.write_ipc(ipc).await.map_err(to_wit))
    }

    async fn write_columns(
        &mut self,
        this: Resource<FrameWriterHandle>,
        columns: Vec<u8>,
    ) -> Res<()> {
        let writer = self.table.get_mut(&this)?;
        Ok(writer.0.write_columns(&columns).await.map_err(to_wit))
    }

    async fn finish(&mut self, this: Resource<FrameWriterHandle>) -> Res<Reference> {
        let writer = self.table.delete(this)?.0;
        self.data_handles -= 1;
        let meta = match writer.finish().await {
            Ok(m) => m,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        Ok(self
            .session()
            .map(|s| reference_to_wit(s.frame_created(meta))))
    }

    async fn drop(&mut self, this: Resource<FrameWriterHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.data_handles -= 1;
        Ok(())
    }
}
