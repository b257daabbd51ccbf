//! Moving the user's own files in and out: uploads for `--in name=@path`, reads for
//! `sluice cat` and `sluice get`.
//!
//! Uploads are content-addressed: a file goes to `<project>/<domain>/uploads/<sha256>/<name>`
//! and a directory to `<project>/<domain>/uploads/<listing hash>/`, so uploading the same bytes
//! twice stores them once.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::frames::{describe_local, format_from_name, FrameFormat};
use crate::data::{check_scope_name, dir_listing_hash, DataError, DataStore, ObjectReader};
use crate::host::{Host, HostError};
use crate::values::reference::RefMeta;
use crate::values::RefKind;

/// Bytes read from a local file per write to the store.
const UPLOAD_CHUNK_BYTES: usize = 1 << 20;

fn io_err(path: &Path, e: impl std::fmt::Display) -> HostError {
    HostError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// SHA-256 and size of a local file.
fn hash_file(path: &Path) -> Result<(String, u64), HostError> {
    let mut file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; UPLOAD_CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Every regular file under `root` (relative '/'-separated names, sorted). Symbolic links are
/// refused: what is uploaded is exactly what is in the directory.
fn local_listing(root: &Path) -> Result<Vec<(String, PathBuf)>, HostError> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<(), HostError> {
        for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type().map_err(|e| io_err(&path, e))?;
            if kind.is_symlink() {
                return Err(io_err(&path, "a symbolic link; upload its target instead"));
            } else if kind.is_dir() {
                walk(&path, &rel, out)?;
            } else if kind.is_file() {
                out.push((rel, path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    out.sort();
    Ok(out)
}

impl Host {
    /// Uploads a local file or directory into the default store (once per content) and returns
    /// the reference to pass as an input of a run in `project`/`domain`.
    pub async fn upload(
        &self,
        path: &Path,
        kind: RefKind,
        project: &str,
        domain: &str,
    ) -> Result<RefMeta, HostError> {
        check_scope_name("project", project)?;
        check_scope_name("domain", domain)?;
        let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
        let base = format!("{project}/{domain}/uploads");
        match kind {
            RefKind::Dir => {
                if !meta.is_dir() {
                    return Err(io_err(path, "not a directory (this input is a dir)"));
                }
                let files = local_listing(path)?;
                let mut hashed = Vec::with_capacity(files.len());
                let mut total = 0;
                for (name, local) in files {
                    let (sha, size) = hash_file(&local)?;
                    total += size;
                    hashed.push((name, local, sha));
                }
                let dir_hash = dir_listing_hash(
                    hashed
                        .iter()
                        .map(|(name, _, sha)| (name.as_str(), sha.as_str())),
                );
                let dir_rel = format!("{base}/{dir_hash}");
                if !self.store().exists(&dir_rel).await? {
                    for (name, local, _) in &hashed {
                        self.copy_in(local, &format!("{dir_rel}/{name}")).await?;
                    }
                }
                Ok(RefMeta {
                    kind,
                    uri: self.store().uri_of(&dir_rel),
                    size: Some(total),
                    sha256: Some(dir_hash),
                    format: None,
                    rows: None,
                    columns: Vec::new(),
                })
            }
            _ => {
                if !meta.is_file() {
                    return Err(io_err(path, "not a file"));
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "file".to_string());
                let (sha, size) = hash_file(path)?;
                let rel = format!("{base}/{sha}/{name}");
                if !self.store().exists(&rel).await? {
                    self.copy_in(path, &rel).await?;
                }
                let format = format_from_name(&name);
                let (rows, columns) = match FrameFormat::parse(format.as_deref(), &rel) {
                    Ok(frame_format) if kind == RefKind::DataFrame => {
                        describe_local(path, frame_format)
                    }
                    _ => (None, Vec::new()),
                };
                Ok(RefMeta {
                    kind,
                    uri: self.store().uri_of(&rel),
                    size: Some(size),
                    sha256: Some(sha),
                    format,
                    rows,
                    columns,
                })
            }
        }
    }

    async fn copy_in(&self, local: &Path, rel: &str) -> Result<(), HostError> {
        let mut file = std::fs::File::open(local).map_err(|e| io_err(local, e))?;
        let mut writer = self.store().create_writer(rel).await?;
        let mut buf = vec![0u8; UPLOAD_CHUNK_BYTES];
        loop {
            let n = file.read(&mut buf).map_err(|e| io_err(local, e))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]).await?;
        }
        writer.finish().await?;
        Ok(())
    }

    /// Opens any object of the host's stores for reading (the user's own access, for
    /// `sluice cat` and `sluice get`; guests go through their grants instead).
    pub async fn open_uri(&self, uri: &str) -> Result<ObjectReader, HostError> {
        let (store, rel) = self.store_for(uri)?;
        Ok(store.open_reader(uri, &rel, None).await?)
    }

    /// The store holding `uri`: one of the host's, or (for a run's raw-data path elsewhere)
    /// the bucket or file system it names.
    fn store_for(&self, uri: &str) -> Result<(DataStore, String), HostError> {
        if let Ok((store, rel)) = self.stores().resolve(uri) {
            return Ok((store.clone(), rel));
        }
        let store = DataStore::open(&DataStore::root_of(uri)?)?;
        let rel = store.relative(uri).ok_or_else(|| DataError::Unresolved {
            uri: uri.to_string(),
        })?;
        Ok((store, rel))
    }

    /// Lists a directory reference's files (for `sluice get` of a directory).
    pub async fn list_uri(&self, uri: &str) -> Result<Vec<(String, u64)>, HostError> {
        let uri = uri.trim_end_matches('/');
        let (store, rel) = self.store_for(uri)?;
        let listing = store.list_dir(uri, &rel).await?;
        Ok(listing.into_iter().map(|f| (f.name, f.size)).collect())
    }
}
