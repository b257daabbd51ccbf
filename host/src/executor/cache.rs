//! The cache: which key a run has, whether an entry answers it, and serialized executions.
//!
//! # The key recipe (version 1)
//!
//! `cache key = SHA-256( "sluice-cache-key/1\n" ++ part("task") ++ part("inputs") ++
//! part("interface") ++ part("config") ++ part("version") )`, where each
//! `part(name) = name ++ "=" ++ decimal byte length of the value ++ ":" ++ value ++ "\n"`
//! (the length keeps any value from running into the next one), and the values are:
//!
//! - **task**: the fully qualified name `<environment>.<task>`;
//! - **inputs**: the *input hash*, lowercase hex SHA-256 of the canonical MessagePack document
//!   (maps with sorted keys, see `values::msgpack`) of every input except the task's
//!   `ignored_inputs`, after offloaded values are brought back, where each reference is
//!   replaced by a reference holding only its kind, its format and **its content hash** when
//!   one is known (everything written through sluice is SHA-256d while it streams; a reference
//!   given with a `sha256` is trusted as the user's hash) or, when none is, **its URI and
//!   size** (a shallow hash). Equal bytes uploaded twice therefore give the same key;
//! - **interface**: the task's interface hash (SHA-256 of its canonical type descriptors);
//! - **config**: lowercase hex SHA-256 of the JSON `{"ignored_inputs":[...sorted],
//!   "memory_limit_bytes":N|null}`: the task settings that change what gets reused (which
//!   inputs count) or what the body can compute (a task sees its memory cap through failed
//!   allocations); deadlines, retries and size limits do not change a successful result;
//! - **version**: `auto:<component SHA-256>` for `cache = "auto"` (any rebuild invalidates) or
//!   `override:<string>` for a version the author bumps.
//!
//! Entries are looked up by key within a *scope*: `<project>/<domain>` (the default) or
//! `global`. An entry answers a run only if it is younger than the task's `max_age` and its
//! outputs document, offloaded values and referenced objects all still exist; otherwise the
//! run executes and the event log says why.

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::context::RunContext;
use super::offload::read_document;
use super::RunError;
use crate::engine::LoadedComponent;
use crate::records::{now_micros, CacheEntry};
use crate::spec::{CacheScope, CacheVersion, TaskSpec};
use crate::values::reference::{collect_refs, map_refs, RefMeta};
use crate::values::{msgpack, Value};

/// How often a run waiting for a serialized execution checks for its entry.
pub const SERIALIZE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Added to a reservation's lifetime beyond the holder's longest possible execution, after
/// which a holder that died is replaced by a waiting run.
pub const RESERVATION_MARGIN: Duration = Duration::from_secs(60);

/// The cache settings one run applies.
#[derive(Debug, Clone)]
pub struct CachePlan {
    pub key: String,
    pub scope: String,
    pub task: String,
    pub component_digest: String,
    pub serialize: bool,
    pub max_age_ms: Option<u64>,
    /// The run's stored inputs document and its SHA-256, when known (recorded in the entry so
    /// a hit with the same document can point at it instead of storing a copy).
    pub inputs: Option<(String, String)>,
}

impl CachePlan {
    /// The entry a successful action with these outputs writes.
    pub fn entry(&self, run_id: &str, action_id: &str, outputs_uri: &str) -> CacheEntry {
        let (inputs_uri, inputs_sha256) = match &self.inputs {
            Some((uri, sha)) => (Some(uri.clone()), Some(sha.clone())),
            None => (None, None),
        };
        CacheEntry {
            cache_key: self.key.clone(),
            scope: self.scope.clone(),
            task: self.task.clone(),
            component_digest: self.component_digest.clone(),
            outputs_uri: outputs_uri.to_string(),
            run_id: run_id.to_string(),
            action_id: action_id.to_string(),
            created_at: now_micros(),
            inputs_uri,
            inputs_sha256,
        }
    }
}

/// The version part of the key; none when the task does not cache.
pub fn cache_version(spec: &TaskSpec, component_digest: &str) -> Option<String> {
    match &spec.cache.version {
        CacheVersion::Disable => None,
        CacheVersion::Auto => Some(format!("auto:{component_digest}")),
        CacheVersion::Override { value } => Some(format!("override:{value}")),
    }
}

/// The input hash: see the module documentation.
pub fn input_hash(inputs: &BTreeMap<String, Value>, ignored: &[String]) -> String {
    let kept: BTreeMap<String, Value> = inputs
        .iter()
        .filter(|(name, _)| !ignored.contains(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    // A reference that does not decode is hashed as it is: validation has already accepted
    // the document, so this does not happen for inputs that reach the cache.
    let hashed =
        map_refs(kept.clone(), "inputs", &mut |_, meta| Ok(hash_form(meta))).unwrap_or(kept);
    hex::encode(Sha256::digest(msgpack::encode_document(&hashed)))
}

/// What of a reference goes into the input hash.
fn hash_form(meta: RefMeta) -> RefMeta {
    let mut form = RefMeta::new(meta.kind, String::new());
    form.format = meta.format;
    match meta.sha256 {
        Some(sha) => form.sha256 = Some(sha),
        None => {
            form.uri = meta.uri;
            form.size = meta.size;
        }
    }
    form
}

/// The config hash: see the module documentation.
pub fn config_hash(spec: &TaskSpec) -> String {
    let mut ignored = spec.cache.ignored_inputs.clone();
    ignored.sort();
    let config = serde_json::json!({
        "ignored_inputs": ignored,
        "memory_limit_bytes": spec.memory_limit_bytes,
    });
    hex::encode(Sha256::digest(config.to_string().as_bytes()))
}

/// The cache key: see the module documentation.
pub fn cache_key(
    task: &str,
    input_hash: &str,
    interface_hash: &str,
    config: &str,
    version: &str,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"sluice-cache-key/1\n");
    for (name, value) in [
        ("task", task),
        ("inputs", input_hash),
        ("interface", interface_hash),
        ("config", config),
        ("version", version),
    ] {
        hasher.update(format!("{name}={}:", value.len()).as_bytes());
        hasher.update(value.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// The plan for a run of `spec` with these (valid) inputs; none when the task does not cache.
pub fn plan(
    component: &LoadedComponent,
    spec: &TaskSpec,
    inputs: &BTreeMap<String, Value>,
    project: &str,
    domain: &str,
) -> Option<CachePlan> {
    let version = cache_version(spec, &component.digest)?;
    let task = component.qualified_name(&spec.name);
    let key = cache_key(
        &task,
        &input_hash(inputs, &spec.cache.ignored_inputs),
        &spec.interface_hash,
        &config_hash(spec),
        &version,
    );
    let scope = match spec.cache.scope {
        CacheScope::Global => "global".to_string(),
        CacheScope::ProjectDomain => format!("{project}/{domain}"),
    };
    Some(CachePlan {
        key,
        scope,
        task,
        component_digest: component.digest.clone(),
        serialize: spec.cache.serialize,
        max_age_ms: spec.cache.max_age_ms,
        inputs: None,
    })
}

/// What a lookup found.
pub enum Lookup {
    /// A usable entry and its outputs, whole.
    Hit {
        entry: Box<CacheEntry>,
        outputs: BTreeMap<String, Value>,
    },
    /// No usable entry, and why.
    Miss(String),
}

/// Finds the entry for `plan` and checks that everything it points at is still there.
pub async fn lookup(ctx: &RunContext, plan: &CachePlan) -> Result<Lookup, RunError> {
    let Some(entry) = ctx.records.cache_lookup(&plan.key, &plan.scope).await? else {
        return Ok(Lookup::Miss("no entry for this key".into()));
    };
    if let Some(max_age) = plan.max_age_ms {
        let age_ms = (now_micros() - entry.created_at).max(0) as u64 / 1000;
        if age_ms > max_age {
            return Ok(Lookup::Miss(format!(
                "the entry from run {} is {age_ms} ms old, above the max age of {max_age} ms",
                entry.run_id
            )));
        }
    }
    match intact_outputs(ctx, &entry).await {
        Ok(outputs) => Ok(Lookup::Hit {
            entry: Box::new(entry),
            outputs,
        }),
        Err(gone) => {
            // The entry can never answer again; a newer one (same key) is left alone.
            ctx.records
                .cache_remove(&plan.key, &plan.scope, &entry.outputs_uri)
                .await?;
            Ok(Lookup::Miss(format!(
                "the entry from run {} points at data that is gone ({gone}); running again",
                entry.run_id
            )))
        }
    }
}

/// The entry's outputs, whole, if its document and every object it refers to still exist.
async fn intact_outputs(
    ctx: &RunContext,
    entry: &CacheEntry,
) -> Result<BTreeMap<String, Value>, String> {
    let doc = read_document(&ctx.store, &ctx.stores, &entry.outputs_uri, "outputs")
        .await
        .map_err(|e| e.to_string())?;
    for (path, meta) in collect_refs(&doc, "outputs").map_err(|e| e.to_string())? {
        let (store, rel) = ctx.stores.resolve(&meta.uri).map_err(|e| e.to_string())?;
        if !store.exists(&rel).await.map_err(|e| e.to_string())? {
            return Err(format!("{path}: {} does not exist", meta.uri));
        }
    }
    Ok(doc)
}

/// How long a serialized execution may hold its key: its longest possible run plus a margin.
pub fn reservation_lifetime(spec: &TaskSpec, timeout: Duration) -> Duration {
    let attempts = spec.retry.retries.saturating_add(1);
    let backoff =
        Duration::from_millis(spec.retry.backoff_ms).saturating_mul(1 << attempts.min(16));
    timeout
        .saturating_mul(attempts)
        .saturating_add(backoff)
        .saturating_add(RESERVATION_MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::RefKind;

    #[test]
    fn the_key_changes_with_each_part_and_only_with_them() {
        let base = cache_key("env.t", "i", "f", "c", "v");
        assert_eq!(base, cache_key("env.t", "i", "f", "c", "v"));
        for other in [
            cache_key("env.u", "i", "f", "c", "v"),
            cache_key("env.t", "j", "f", "c", "v"),
            cache_key("env.t", "i", "g", "c", "v"),
            cache_key("env.t", "i", "f", "d", "v"),
            cache_key("env.t", "i", "f", "c", "w"),
            // Lengths keep parts apart: moving a byte across a boundary changes the key.
            cache_key("env.ti", "", "f", "c", "v"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn input_hash_skips_ignored_inputs_and_hashes_references_by_content() {
        let mut a = BTreeMap::new();
        a.insert("x".to_string(), Value::Int(1));
        a.insert("note".to_string(), Value::String("first".into()));
        let mut b = a.clone();
        b.insert("note".to_string(), Value::String("second".into()));
        let ignored = vec!["note".to_string()];
        assert_eq!(input_hash(&a, &ignored), input_hash(&b, &ignored));
        assert_ne!(input_hash(&a, &[]), input_hash(&b, &[]));

        let file = |uri: &str, sha: Option<&str>| {
            let mut meta = RefMeta::new(RefKind::File, uri);
            meta.size = Some(3);
            meta.sha256 = sha.map(str::to_string);
            BTreeMap::from([("f".to_string(), meta.to_value())])
        };
        // Same content at two places: same hash. No content hash: the place counts.
        let sha = "ab".repeat(32);
        assert_eq!(
            input_hash(&file("file:///a", Some(&sha)), &[]),
            input_hash(&file("file:///b", Some(&sha)), &[])
        );
        assert_ne!(
            input_hash(&file("file:///a", None), &[]),
            input_hash(&file("file:///b", None), &[])
        );
    }
}
