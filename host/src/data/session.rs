//! One attempt's view of the data plane: the references it holds and where its new objects go.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::frames::{format_from_name, FrameFormat, FrameReader, FrameWriter};
use super::grants::check_relative_name;
use super::{
    dir_listing_hash, Access, DataError, DataStore, Grants, ObjectReader, ObjectWriter, Stores,
    Written,
};
use crate::values::reference::RefMeta;
use crate::values::RefKind;

/// Bytes moved per read when a file is copied into a directory.
const COPY_CHUNK_BYTES: usize = 1 << 20;
/// Longest name hint kept for a new object.
const MAX_NAME_HINT_LEN: usize = 100;

/// Files finished inside a directory being built: name -> (size, sha256).
pub type DirEntries = Arc<Mutex<BTreeMap<String, (u64, String)>>>;

/// A directory being built: files land under `rel` in `store`.
#[derive(Clone)]
pub struct DirBuild {
    pub uri: String,
    rel: String,
    store: DataStore,
    pub entries: DirEntries,
}

/// The data plane as one attempt sees it.
pub struct DataSession {
    stores: Arc<Stores>,
    grants: Grants,
    /// New objects go to `raw_store` under `raw_prefix`
    /// (`<project>/<domain>/<run>/<action>/<attempt>`).
    raw_store: DataStore,
    raw_prefix: String,
    next_object: u32,
    /// What the host knows of each object this attempt created (size and hash it computed).
    created: HashMap<String, RefMeta>,
    /// The references the attempt was given, as given (their format says how to read a frame).
    given: HashMap<String, RefMeta>,
}

impl DataSession {
    pub fn new(stores: Arc<Stores>, raw_store: DataStore, raw_prefix: String) -> Self {
        DataSession {
            stores,
            grants: Grants::default(),
            raw_store,
            raw_prefix,
            next_object: 0,
            created: HashMap::new(),
            given: HashMap::new(),
        }
    }

    /// Lets the attempt open `meta` (an input, or a reference a called task returned).
    pub fn grant(&mut self, meta: &RefMeta) {
        match meta.kind {
            RefKind::Dir => self.grants.grant_dir(&meta.uri),
            _ => self.grants.grant_file(&meta.uri),
        }
        self.given.insert(meta.uri.clone(), meta.clone());
    }

    /// Whether the attempt may hand `uri` on (in its outputs).
    pub fn check(&self, uri: &str) -> Result<Access, DataError> {
        self.grants.check(uri)
    }

    /// What the host computed about an object this attempt created.
    pub fn created(&self, uri: &str) -> Option<&RefMeta> {
        self.created.get(uri)
    }

    /// The store of a granted `uri`, its path there, and for a directory entry the directory's
    /// path (the entry is opened relative to it).
    fn locate(&self, uri: &str) -> Result<(&DataStore, String, Option<String>), DataError> {
        let access = self.grants.check(uri)?;
        let (store, rel) = self.stores.resolve(uri)?;
        let within = match access {
            Access::Whole => None,
            Access::DirEntry { dir, .. } => Some(self.stores.resolve(&dir)?.1),
        };
        Ok((store, rel, within))
    }

    pub async fn open_file(&self, uri: &str) -> Result<ObjectReader, DataError> {
        let (store, rel, within) = self.locate(uri)?;
        store.open_reader(uri, &rel, within.as_deref()).await
    }

    /// Opens a frame the attempt holds, reading `columns` (all when none) in batches.
    pub async fn open_frame(
        &self,
        uri: &str,
        columns: Option<&[String]>,
        batch_rows: usize,
    ) -> Result<FrameReader, DataError> {
        let (store, rel, within) = self.locate(uri)?;
        let source = store.frame_source(uri, &rel, within.as_deref()).await?;
        let known = self.created.get(uri).or_else(|| self.given.get(uri));
        let format = match known.and_then(|m| m.format.clone()) {
            Some(f) => Some(f),
            None => format_from_name(uri),
        };
        let format = FrameFormat::parse(format.as_deref(), uri)?;
        FrameReader::open(uri, source, format, columns, batch_rows)
    }

    pub async fn create_frame(
        &mut self,
        hint: Option<&str>,
        format: Option<&str>,
        declared: Vec<(String, String)>,
    ) -> Result<FrameWriter, DataError> {
        let format = FrameFormat::parse(format, self.raw_store.base_url())?;
        // The extension says the format to anyone reading the object without its reference.
        let base = hint.unwrap_or("frame");
        let hint = if base.ends_with(&format!(".{}", format.extension())) {
            base.to_string()
        } else {
            format!("{base}.{}", format.extension())
        };
        let rel = self.new_object_rel(Some(&hint));
        let sink = self.raw_store.create_writer(&rel).await?;
        Ok(FrameWriter::new(sink, format, declared))
    }

    /// Records a finished frame as created (and so granted) by this attempt.
    pub fn frame_created(&mut self, meta: RefMeta) -> RefMeta {
        self.grants.grant_file(&meta.uri);
        self.created.insert(meta.uri.clone(), meta.clone());
        meta
    }

    /// A fresh object path in the attempt's raw-data prefix, keeping a cleaned name hint.
    fn new_object_rel(&mut self, hint: Option<&str>) -> String {
        self.next_object += 1;
        let n = self.next_object;
        let hint: String = hint
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .take(MAX_NAME_HINT_LEN)
            .collect();
        let hint = hint.trim_start_matches('.');
        if hint.is_empty() {
            format!("{}/o{n}", self.raw_prefix)
        } else {
            format!("{}/o{n}-{hint}", self.raw_prefix)
        }
    }

    pub async fn create_file(&mut self, hint: Option<&str>) -> Result<ObjectWriter, DataError> {
        let rel = self.new_object_rel(hint);
        self.raw_store.create_writer(&rel).await
    }

    /// Records a finished file as created (and so granted) by this attempt.
    pub fn file_created(&mut self, written: Written, format: Option<String>) -> RefMeta {
        let meta = RefMeta {
            kind: RefKind::File,
            uri: written.uri,
            size: Some(written.size),
            sha256: Some(written.sha256),
            format,
            rows: None,
            columns: Vec::new(),
        };
        self.grants.grant_file(&meta.uri);
        self.created.insert(meta.uri.clone(), meta.clone());
        meta
    }

    /// Every file of a granted directory, as references readable with `open_file`.
    pub async fn list_dir(&self, uri: &str) -> Result<Vec<(String, RefMeta)>, DataError> {
        let uri = uri.trim_end_matches('/');
        if self.grants.check(uri)? != Access::Whole {
            return Err(DataError::NotGranted {
                uri: uri.to_string(),
                reason: "a directory is listed by its own reference".into(),
            });
        }
        let (store, rel) = self.stores.resolve(uri)?;
        let listing = store.list_dir(uri, &rel).await?;
        Ok(listing
            .into_iter()
            .map(|f| {
                let file_uri = format!("{uri}/{}", f.name);
                let mut meta = self
                    .created
                    .get(&file_uri)
                    .cloned()
                    .unwrap_or_else(|| RefMeta::new(RefKind::File, file_uri));
                meta.size = Some(f.size);
                (f.name, meta)
            })
            .collect())
    }

    pub fn new_dir(&mut self, hint: Option<&str>) -> DirBuild {
        let rel = self.new_object_rel(hint);
        DirBuild {
            uri: self.raw_store.uri_of(&rel),
            rel,
            store: self.raw_store.clone(),
            entries: DirEntries::default(),
        }
    }

    /// A new file at `name` inside a directory being built.
    pub async fn create_dir_file(
        &self,
        dir: &DirBuild,
        name: &str,
    ) -> Result<ObjectWriter, DataError> {
        check_relative_name(name).map_err(|reason| DataError::BadEntry {
            uri: dir.uri.clone(),
            reason,
        })?;
        let taken = dir
            .entries
            .lock()
            .map(|e| e.contains_key(name))
            .unwrap_or(true);
        if taken {
            return Err(DataError::BadEntry {
                uri: dir.uri.clone(),
                reason: format!("{name:?} is already in the directory"),
            });
        }
        dir.store
            .create_writer(&format!("{}/{name}", dir.rel))
            .await
    }

    /// Copies a granted file into a directory being built.
    pub async fn add_to_dir(&self, dir: &DirBuild, name: &str, uri: &str) -> Result<(), DataError> {
        let mut reader = self.open_file(uri).await?;
        let mut writer = self.create_dir_file(dir, name).await?;
        loop {
            let chunk = reader.read(COPY_CHUNK_BYTES).await?;
            if chunk.is_empty() {
                break;
            }
            writer.write_vec(chunk).await?;
        }
        let written = writer.finish().await?;
        dir_entry_done(dir, name, &written);
        Ok(())
    }

    /// Completes a directory: its reference carries the total size and a hash of its listing.
    pub fn finish_dir(&mut self, dir: DirBuild) -> RefMeta {
        let entries = dir.entries.lock().map(|e| e.clone()).unwrap_or_default();
        let mut total = 0;
        for (name, (size, sha)) in &entries {
            total += size;
            let file_uri = format!("{}/{name}", dir.uri);
            let mut meta = RefMeta::new(RefKind::File, file_uri.clone());
            meta.size = Some(*size);
            meta.sha256 = Some(sha.clone());
            self.created.insert(file_uri, meta);
        }
        let meta = RefMeta {
            kind: RefKind::Dir,
            uri: dir.uri,
            size: Some(total),
            sha256: Some(dir_listing_hash(
                entries
                    .iter()
                    .map(|(n, (_, sha))| (n.as_str(), sha.as_str())),
            )),
            format: None,
            rows: None,
            columns: Vec::new(),
        };
        self.grants.grant_dir(&meta.uri);
        self.created.insert(meta.uri.clone(), meta.clone());
        meta
    }
}

/// Notes a finished file in its directory's listing.
pub fn dir_entry_done(dir: &DirBuild, name: &str, written: &Written) {
    if let Ok(mut entries) = dir.entries.lock() {
        entries.insert(name.to_string(), (written.size, written.sha256.clone()));
    }
}
