//! Streams, listings and the set of stores a host reads references from.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;

use super::frames::FrameSource;
use super::objects::{io_error, store_error};
use super::{object_path, DataError, DataStore, ObjectReader, ObjectWriter};

/// Directory (inside a local store) that holds objects being written until they finish.
const LOCAL_TEMP_DIR: &str = ".sluice-tmp";

/// One file of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Relative to the directory, '/'-separated.
    pub name: String,
    pub size: u64,
}

/// Every file under a directory, sorted by name.
pub type DirListing = Vec<ListedFile>;

impl DataStore {
    /// The path of `uri` inside this store, if it belongs to it.
    pub fn relative(&self, uri: &str) -> Option<String> {
        let rest = uri.strip_prefix(&self.base)?.strip_prefix('/')?;
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// Opens an object for reading. With `within_dir`, `rel` is opened relative to that
    /// directory (itself relative to the store), so it cannot leave it even by a symbolic link.
    pub async fn open_reader(
        &self,
        uri: &str,
        rel: &str,
        within_dir: Option<&str>,
    ) -> Result<ObjectReader, DataError> {
        match &self.local_dir {
            Some(root) => {
                let file = match within_dir {
                    Some(dir) => {
                        let entry = rel
                            .strip_prefix(dir)
                            .and_then(|r| r.strip_prefix('/'))
                            .unwrap_or(rel);
                        root.open_dir(dir).and_then(|d| d.open(entry))
                    }
                    None => root.open(rel),
                }
                .map_err(|e| io_error(uri, e))?;
                ObjectReader::local(uri, file.into_std())
            }
            None => ObjectReader::remote(uri, self.store.clone(), object_path(rel)).await,
        }
    }

    /// A frame's bytes: the file itself on a local store, fetched whole from another store.
    pub async fn frame_source(
        &self,
        uri: &str,
        rel: &str,
        within_dir: Option<&str>,
    ) -> Result<FrameSource, DataError> {
        if self.local_dir.is_some() {
            return match self
                .open_reader(uri, rel, within_dir)
                .await?
                .into_local_file()
            {
                Some(file) => Ok(FrameSource::Local(file)),
                None => Err(DataError::NotAFile {
                    uri: uri.to_string(),
                }),
            };
        }
        let got = self
            .store
            .get(&object_path(rel))
            .await
            .map_err(|e| store_error(uri, e))?;
        Ok(FrameSource::Fetched(
            got.bytes().await.map_err(|e| store_error(uri, e))?,
        ))
    }

    /// Starts a new object at `rel`; nothing is visible there until the writer finishes.
    pub async fn create_writer(&self, rel: &str) -> Result<ObjectWriter, DataError> {
        let uri = self.uri_of(rel);
        match &self.local_root {
            Some(root) => {
                let temp = root
                    .join(LOCAL_TEMP_DIR)
                    .join(ulid::Ulid::generate().to_string());
                ObjectWriter::local(&uri, temp, root.join(rel))
            }
            None => ObjectWriter::remote(&uri, &self.store, &object_path(rel)).await,
        }
    }

    /// Lists every file under the directory `rel`. On a local store a symbolic link is refused
    /// rather than followed: a directory holds only its own files.
    pub async fn list_dir(&self, uri: &str, rel: &str) -> Result<DirListing, DataError> {
        let mut files = match &self.local_dir {
            Some(root) => {
                let dir = root.open_dir(rel).map_err(|e| io_error(uri, e))?;
                let mut files = Vec::new();
                walk_local(uri, &dir, "", &mut files)?;
                files
            }
            None => {
                let prefix = object_path(rel);
                let metas: Vec<_> = self
                    .store
                    .list(Some(&prefix))
                    .try_collect()
                    .await
                    .map_err(|e| store_error(uri, e))?;
                let skip = prefix.as_ref().len() + 1;
                metas
                    .into_iter()
                    .filter_map(|m| {
                        let name = m.location.as_ref().get(skip..)?.to_string();
                        Some(ListedFile { name, size: m.size })
                    })
                    .collect()
            }
        };
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// Whether an object exists at `rel` (a file) or under it (a directory prefix).
    pub async fn exists(&self, rel: &str) -> Result<bool, DataError> {
        let uri = self.uri_of(rel);
        if let Some(root) = &self.local_dir {
            return match root.metadata(rel) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_error(&uri, e)),
            };
        }
        match self.store.head(&object_path(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => {
                let prefix = object_path(rel);
                let mut listing = self.store.list(Some(&prefix));
                Ok(listing
                    .try_next()
                    .await
                    .map_err(|e| store_error(&uri, e))?
                    .is_some())
            }
            Err(e) => Err(store_error(&uri, e)),
        }
    }
}

/// What sits under a prefix (for gc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixUsage {
    pub objects: u64,
    pub bytes: u64,
}

impl DataStore {
    /// Counts the objects under `rel/` and their bytes.
    pub async fn usage(&self, rel: &str) -> Result<PrefixUsage, DataError> {
        let uri = self.uri_of(rel);
        let prefix = object_path(rel);
        let mut listing = self.store.list(Some(&prefix));
        let mut usage = PrefixUsage::default();
        while let Some(meta) = listing.try_next().await.map_err(|e| store_error(&uri, e))? {
            usage.objects += 1;
            usage.bytes += meta.size;
        }
        Ok(usage)
    }

    /// Removes every object under `rel/` (and, in a local store, the directories that held
    /// them); returns what was there.
    pub async fn delete_prefix(&self, rel: &str) -> Result<PrefixUsage, DataError> {
        let usage = self.usage(rel).await?;
        let uri = self.uri_of(rel);
        if let Some(root) = &self.local_dir {
            return match root.remove_dir_all(rel) {
                Ok(()) => Ok(usage),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(usage),
                Err(e) => Err(io_error(&uri, e)),
            };
        }
        let prefix = object_path(rel);
        let paths: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| store_error(&uri, e))?;
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(&uri, e)),
            }
        }
        Ok(usage)
    }
}

fn walk_local(
    uri: &str,
    dir: &cap_std::fs::Dir,
    prefix: &str,
    out: &mut Vec<ListedFile>,
) -> Result<(), DataError> {
    let entries = dir.entries().map_err(|e| io_error(uri, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(uri, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type().map_err(|e| io_error(uri, e))?;
        if kind.is_symlink() {
            return Err(DataError::BadEntry {
                uri: format!("{uri}/{full}"),
                reason: "a symbolic link; directories may hold only their own files".into(),
            });
        } else if kind.is_dir() {
            let sub = entry.open_dir().map_err(|e| io_error(uri, e))?;
            walk_local(uri, &sub, &full, out)?;
        } else if kind.is_file() {
            let size = entry.metadata().map_err(|e| io_error(uri, e))?.len();
            out.push(ListedFile { name: full, size });
        }
    }
    Ok(())
}

/// The stores a host resolves reference URIs against: its default store, any raw-data stores
/// and the external prefixes it is allowed to read.
#[derive(Clone, Default)]
pub struct Stores {
    stores: Vec<DataStore>,
    /// URI prefixes outside the stores' own objects that inputs may point at.
    allowed_prefixes: Vec<String>,
}

impl Stores {
    pub fn new(default: DataStore) -> Self {
        Stores {
            stores: vec![default],
            allowed_prefixes: Vec::new(),
        }
    }

    /// Adds a store (a raw-data path), keeping one per base URL.
    pub fn add(&mut self, store: DataStore) {
        if !self.stores.iter().any(|s| s.base == store.base) {
            self.stores.push(store);
        }
    }

    /// Allows inputs to point under `prefix` (whose store must also be added).
    pub fn allow_prefix(&mut self, prefix: &str) {
        self.allowed_prefixes
            .push(prefix.trim_end_matches('/').to_string());
    }

    /// The store holding `uri` and the object's path inside it.
    pub fn resolve(&self, uri: &str) -> Result<(&DataStore, String), DataError> {
        self.stores
            .iter()
            .filter_map(|s| s.relative(uri).map(|rel| (s, rel)))
            .max_by_key(|(s, _)| s.base.len())
            .ok_or_else(|| DataError::Unresolved {
                uri: uri.to_string(),
            })
    }

    /// Whether a run of `project` may take `uri` as an input: an object of one of the stores
    /// under the project's own prefix, or anything under an allowed prefix.
    pub fn check_input(&self, uri: &str, project: &str) -> Result<(), DataError> {
        let allowed = self.allowed_prefixes.iter().any(|p| {
            uri == p
                || uri
                    .strip_prefix(p.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        });
        if allowed {
            return Ok(());
        }
        let (_, rel) = self.resolve(uri)?;
        let owner = rel.split('/').next().unwrap_or_default();
        if owner != project {
            return Err(DataError::NotGranted {
                uri: uri.to_string(),
                reason: format!(
                    "belongs to project {owner:?}, not {project:?}, and is under no allowed prefix"
                ),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bases: Vec<&str> = self.stores.iter().map(|s| s.base.as_str()).collect();
        f.debug_struct("Stores")
            .field("stores", &bases)
            .field("allowed_prefixes", &self.allowed_prefixes)
            .finish()
    }
}
