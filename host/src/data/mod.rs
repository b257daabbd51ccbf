//! The data plane: the object stores that hold every document, file and directory.
//!
//! Stores are chosen by URL: `file:///abs/dir` (the default, under the sluice home),
//! `memory://` (tests and benchmarks), `s3://bucket/prefix` (any S3-compatible endpoint),
//! `gs://bucket/prefix` or `az://container/prefix` (credentials from the environment). Objects are addressed by full URIs in the records, so a
//! record keeps pointing at the right place whatever store the host is started with later.

mod cloud;
pub mod columns;
mod encoder;
pub mod frames;
pub mod grants;
mod ipc_append;
mod ipc_file;
pub mod objects;
mod parquet_encoder;
mod parquet_read;
pub mod session;
mod spares;
mod stores;

use std::path::PathBuf;
use std::sync::Arc;

pub use grants::{Access, Grants};
pub use objects::{ObjectReader, ObjectWriter, Written};
pub use session::{DataSession, DirBuild};
pub use stores::{DirListing, ListedFile, Stores};

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Documents up to this size are written to and read from a local store directly on the calling
/// thread: the I/O takes microseconds, a hand-off to the blocking pool costs more (see
/// BENCHMARKS.md).
pub const INLINE_WRITE_MAX_BYTES: usize = 256 * 1024;

/// Longest project or domain name.
pub const MAX_SCOPE_NAME_LEN: usize = 63;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("store {url}: {message}")]
    Store { url: String, message: String },
    #[error("{uri}: {source}")]
    Object {
        uri: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{uri}: {source}")]
    Local {
        uri: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{uri}: not an object of this store ({base})")]
    Foreign { uri: String, base: String },
    #[error("{uri}: not granted: {reason}")]
    NotGranted { uri: String, reason: String },
    #[error("{uri}: missing: no object at this URI (deleted, or never written)")]
    Missing { uri: String },
    #[error("{uri}: not a file")]
    NotAFile { uri: String },
    #[error("{uri}: the writer is already finished")]
    Closed { uri: String },
    #[error("{uri}: {reason}")]
    BadEntry { uri: String, reason: String },
    #[error("{uri}: {message}")]
    Frame { uri: String, message: String },
    #[error("{uri}: not under any store this host uses (the default store, the run's raw-data path or an allowed prefix)")]
    Unresolved { uri: String },
    #[error("{what} {name:?}: must be 1 to {MAX_SCOPE_NAME_LEN} characters of a-z, 0-9, '-' or '_', starting with a letter or digit")]
    BadName { what: &'static str, name: String },
}

/// Writes a document, creating its directory on first use. No temporary file and rename:
/// nothing reads an object before a record points at it, and records are written after the
/// object. A file already there is replaced: it is what a host that stopped between writing
/// it and recording it left (possibly cut short), and a resumed run writes the same document
/// at the same path again (action ids are deterministic).
fn write_document(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    };
    let mut file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            open()?
        }
        Err(e) => return Err(e),
    };
    file.write_all(bytes)
}

/// The hash of a directory: SHA-256 over `name \0 sha256 \n` for each file, in name order.
/// Uploads and directories built by guests both use it, so equal trees get equal hashes.
pub fn dir_listing_hash<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::Digest;
    let mut listing = sha2::Sha256::new();
    for (name, sha256) in files {
        listing.update(format!("{name}\0{sha256}\n").as_bytes());
    }
    hex::encode(listing.finalize())
}

/// Checks a project or domain name, which becomes a path segment of every object of a run.
pub fn check_scope_name(what: &'static str, name: &str) -> Result<(), DataError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok && name.len() <= MAX_SCOPE_NAME_LEN {
        Ok(())
    } else {
        Err(DataError::BadName {
            what,
            name: name.to_string(),
        })
    }
}

/// `parts` joined into one string allocated once. Every run builds a dozen of these keys and
/// URIs; `format!` spent about 2,000 instructions on each (its formatting machinery and the
/// growing buffer), this about a tenth of that (`valgrind --tool=callgrind`, BENCHMARKS.md).
pub(crate) fn concat(parts: &[&str]) -> String {
    let mut joined = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        joined.push_str(part);
    }
    joined
}

/// Where one attempt's objects go: `<project>/<domain>/<run>/<action>/<attempt>/`.
#[derive(Debug, Clone)]
pub struct AttemptPrefix(String);

impl AttemptPrefix {
    pub fn new(project: &str, domain: &str, run: &str, action: &str, attempt: u32) -> Self {
        let attempt = attempt.to_string();
        AttemptPrefix(concat(&[
            project, "/", domain, "/", run, "/", action, "/", &attempt,
        ]))
    }

    /// The prefix itself, under which the attempt's raw data also goes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn inputs(&self) -> String {
        concat(&[&self.0, "/inputs.msgpack"])
    }
    pub fn outputs(&self) -> String {
        concat(&[&self.0, "/outputs.msgpack"])
    }
    pub fn log(&self) -> String {
        concat(&[&self.0, "/log.txt"])
    }
}

/// An object store and the URL it was opened from.
#[derive(Clone)]
pub struct DataStore {
    store: Arc<dyn ObjectStore>,
    /// The store's URL without a trailing slash; object URIs are `<base>/<path>`.
    base: String,
    /// For a local store: its directory, for direct file calls.
    local_root: Option<PathBuf>,
    /// The same directory as a capability: paths opened through it cannot leave it.
    local_dir: Option<Arc<cap_std::fs::Dir>>,
    /// For the host's local default store: directories and files made ahead (`spares.rs`).
    spares: Option<Arc<spares::Spares>>,
}

/// The object store's path of `key` (relative to the store): what `Path::from(key)` gives, split
/// on the character `/` instead of the string "/" (which sets up a substring search per call;
/// about 550 instructions fewer per path, counted with callgrind).
pub(crate) fn object_path(key: &str) -> Path {
    Path::from_iter(key.split(object_store::path::DELIMITER_CHAR))
}

impl DataStore {
    /// Opens a store by URL (creating a local directory if needed).
    pub fn open(url: &str) -> Result<DataStore, DataError> {
        let fail = |message: String| DataError::Store {
            url: url.to_string(),
            message,
        };
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(fail("a file:// store needs an absolute path".into()));
            }
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
            let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| fail(e.to_string()))?;
            let cap = cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority())
                .map_err(|e| fail(e.to_string()))?;
            return Ok(DataStore {
                store: Arc::new(fs),
                base: format!("file://{}", dir.trim_end_matches('/')),
                local_root: Some(PathBuf::from(dir)),
                local_dir: Some(Arc::new(cap)),
                spares: None,
            });
        }
        if url == "memory://" || url == "memory:///" {
            return Ok(DataStore {
                store: Arc::new(InMemory::new()),
                base: "memory://".to_string(),
                local_root: None,
                local_dir: None,
                spares: None,
            });
        }
        if let Some((scheme, rest)) = url.split_once("://") {
            if matches!(scheme, "s3" | "gs" | "az") {
                let store = cloud::open(scheme, rest).map_err(fail)?;
                return Ok(DataStore {
                    store,
                    base: url.trim_end_matches('/').to_string(),
                    local_root: None,
                    local_dir: None,
                    spares: None,
                });
            }
        }
        Err(fail(
            "unsupported store (file:///abs/dir, memory://, s3://bucket[/prefix], gs://bucket[/prefix], az://container[/prefix])"
                .into(),
        ))
    }

    /// For a local store on Linux: documents get directories and files made ahead on a thread
    /// of the store (see `spares.rs`); `tree_tail` is the directories below a run's own
    /// (`<root action>/1`). Elsewhere this changes nothing.
    pub fn make_inodes_ahead(mut self, tree_tail: &str) -> Self {
        if cfg!(target_os = "linux") {
            if let Some(root) = &self.local_root {
                self.spares = Some(Arc::new(spares::Spares::new(root, tree_tail)));
            }
        }
        self
    }

    /// The widest store URL that holds `uri`: `s3://bucket` for a cloud object, `file:///`
    /// for a local one.
    pub fn root_of(uri: &str) -> Result<String, DataError> {
        let unresolved = || DataError::Unresolved {
            uri: uri.to_string(),
        };
        let (scheme, rest) = uri.split_once("://").ok_or_else(unresolved)?;
        match scheme {
            "file" => Ok("file:///".to_string()),
            "s3" | "gs" | "az" => {
                let bucket = rest.split('/').next().filter(|b| !b.is_empty());
                Ok(format!("{scheme}://{}", bucket.ok_or_else(unresolved)?))
            }
            _ => Err(unresolved()),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn uri_of(&self, path: &str) -> String {
        concat(&[&self.base, "/", path])
    }

    fn path_of(&self, uri: &str) -> Result<Path, DataError> {
        uri.strip_prefix(&self.base)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(object_path)
            .ok_or_else(|| DataError::Foreign {
                uri: uri.to_string(),
                base: self.base.clone(),
            })
    }

    /// Stores `bytes` at `path` (relative to the store) and returns the object's URI.
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<String, DataError> {
        let uri = self.uri_of(path);
        if let Some(root) = &self.local_root {
            if bytes.len() <= INLINE_WRITE_MAX_BYTES {
                let written = match &self.spares {
                    Some(spares) => spares.write_document(path, &bytes),
                    None => write_document(&root.join(path), &bytes),
                };
                written.map_err(|e| DataError::Local {
                    uri: uri.clone(),
                    source: e,
                })?;
                return Ok(uri);
            }
        }
        self.store
            .put(&object_path(path), PutPayload::from(bytes))
            .await
            .map_err(|source| DataError::Object {
                uri: uri.clone(),
                source,
            })?;
        Ok(uri)
    }

    /// Reads a whole object by URI.
    pub async fn get(&self, uri: &str) -> Result<Bytes, DataError> {
        let path = self.path_of(uri)?;
        // Small local objects (documents) are read in place: object_store's local reads hop to
        // a blocking thread, which costs more than the read (a cache hit is mostly this read).
        // One open serves both the size check and the read: open, stat, read, close. (Reading
        // through `take(size)` keeps std's `File::read_to_end` from asking for the size and
        // position again and from probing for the end with one more read.)
        if let Some(dir) = &self.local_dir {
            let local_error = |e| objects::io_error(uri, e);
            let mut file = dir.open(path.as_ref()).map_err(local_error)?;
            let size = file.metadata().map_err(local_error)?.len();
            if size <= INLINE_WRITE_MAX_BYTES as u64 {
                let mut bytes = Vec::with_capacity(size as usize);
                std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, size), &mut bytes)
                    .map_err(local_error)?;
                return Ok(Bytes::from(bytes));
            }
        }
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| objects::store_error(uri, e))?;
        result
            .bytes()
            .await
            .map_err(|e| objects::store_error(uri, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_that_could_escape_or_collide_are_refused() {
        assert!(check_scope_name("project", "flytesnacks").is_ok());
        assert!(check_scope_name("project", "team-a_2").is_ok());
        for bad in ["", "..", "a/b", "Upper", "-x", &"x".repeat(64)] {
            let err = check_scope_name("project", bad).unwrap_err();
            assert!(err.to_string().starts_with("project "), "{err}");
        }
    }

    #[test]
    fn an_attempt_prefix_lays_out_project_domain_run_action_attempt() {
        let prefix = AttemptPrefix::new("p", "dev", "r01", "a0", 12);
        assert_eq!(prefix.as_str(), "p/dev/r01/a0/12");
        assert_eq!(prefix.inputs(), "p/dev/r01/a0/12/inputs.msgpack");
        assert_eq!(prefix.outputs(), "p/dev/r01/a0/12/outputs.msgpack");
        assert_eq!(prefix.log(), "p/dev/r01/a0/12/log.txt");
    }

    #[tokio::test]
    async fn objects_round_trip_by_uri_and_foreign_uris_are_refused() {
        let store = DataStore::open("memory://").unwrap();
        let uri = store
            .put("p/d/r/a0/1/inputs.msgpack", vec![1, 2])
            .await
            .unwrap();
        assert_eq!(uri, "memory:///p/d/r/a0/1/inputs.msgpack");
        assert_eq!(store.get(&uri).await.unwrap().as_ref(), &[1, 2]);
        let err = store.get("file:///etc/passwd").await.unwrap_err();
        assert!(matches!(err, DataError::Foreign { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_document_left_by_a_stopped_host_is_replaced_when_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = DataStore::open(&url).unwrap();
        // What a host killed in the middle of writing the inputs document leaves behind.
        let path = "p/d/r/a0/1/inputs.msgpack";
        std::fs::create_dir_all(dir.path().join("p/d/r/a0/1")).unwrap();
        std::fs::write(dir.path().join(path), [9u8; 100]).unwrap();
        let uri = store.put(path, vec![1, 2, 3]).await.unwrap();
        assert_eq!(store.get(&uri).await.unwrap().as_ref(), &[1, 2, 3]);
    }
}
