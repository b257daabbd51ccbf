//! Offloading: an input or output value whose canonical encoding is larger than the offload
//! threshold is stored as its own object and replaced, in the stored document, by a reference
//! (extension type 5). Guests and callers never see the reference: the host hands the guest
//! the whole value, returns it whole to the caller, and reads it back when a recorded document
//! is shown or passed on. The inline document limit then applies to what stays inline.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::data::{AttemptPrefix, DataError, DataStore, Stores};
use crate::values::reference::RefMeta;
use crate::values::{msgpack, RefKind, Value, ValueError, ValuePath};

/// Why an offloaded value could not be brought back.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    #[error("{path}: {source}")]
    Data {
        path: String,
        #[source]
        source: DataError,
    },
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The document itself could not be fetched.
    #[error(transparent)]
    Document(DataError),
}

/// The stored form of `doc`: values above `threshold` bytes moved to objects beside the
/// document (`<attempt prefix>/<side>-<n>.msgpack`).
pub async fn offload(
    store: &DataStore,
    prefix: &AttemptPrefix,
    side: &str,
    doc: &BTreeMap<String, Value>,
    threshold: u64,
) -> Result<BTreeMap<String, Value>, DataError> {
    let mut stored = BTreeMap::new();
    for (i, (name, value)) in doc.iter().enumerate() {
        if matches!(value, Value::Ref(_)) {
            stored.insert(name.clone(), value.clone());
            continue;
        }
        let bytes = msgpack::encode(value);
        if (bytes.len() as u64) <= threshold {
            stored.insert(name.clone(), value.clone());
            continue;
        }
        let mut meta = RefMeta::new(RefKind::Offloaded, String::new());
        meta.size = Some(bytes.len() as u64);
        meta.sha256 = Some(hex::encode(Sha256::digest(&bytes)));
        meta.format = Some("msgpack".to_string());
        let rel = format!("{}/{side}-{i}.msgpack", prefix.as_str());
        meta.uri = store.put(&rel, bytes).await?;
        stored.insert(name.clone(), meta.to_value());
    }
    Ok(stored)
}

/// Brings back every offloaded value of a document (top-level entries, where `offload` puts
/// them). `project`, when given, must own each object (a run's inputs).
pub async fn inline_offloaded(
    stores: &Stores,
    doc: BTreeMap<String, Value>,
    side: &str,
    project: Option<&str>,
) -> Result<BTreeMap<String, Value>, OffloadError> {
    let mut out = BTreeMap::new();
    for (name, value) in doc {
        let path = ValuePath::root(side).field(&name);
        let value = match value {
            Value::Ref(r) if r.kind == RefKind::Offloaded => {
                let meta = RefMeta::from_reference(&r, &path)?;
                let fail = |source| OffloadError::Data {
                    path: path.to_string(),
                    source,
                };
                if let Some(project) = project {
                    stores.check_input(&meta.uri, project).map_err(fail)?;
                }
                let (store, _) = stores.resolve(&meta.uri).map_err(fail)?;
                let bytes = store.get(&meta.uri).await.map_err(fail)?;
                msgpack::decode(&bytes, &path.to_string())?
            }
            other => other,
        };
        out.insert(name, value);
    }
    Ok(out)
}

/// A recorded document read back from `store`, with its offloaded values brought back (what
/// `runs show`, a resume and a cache lookup all need).
pub async fn read_document(
    store: &DataStore,
    stores: &Stores,
    uri: &str,
    side: &str,
) -> Result<BTreeMap<String, Value>, OffloadError> {
    let bytes = store.get(uri).await.map_err(OffloadError::Document)?;
    let doc = msgpack::decode_document(&bytes, uri)?;
    inline_offloaded(stores, doc, side, None).await
}
