//! Loading components: precompile once, keep the machine code on disk, map it on later loads.
//!
//! Compiling a component takes from 76 ms (a small Rust guest) to 10 s (a JS or Python guest);
//! mapping a precompiled one takes about 0.1 ms. The cache file name holds the component's SHA-256
//! and a hash of everything in the engine's configuration that affects compiled code, so a
//! changed setting or wasmtime version never loads stale code.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::attempt::{describe_component, AttemptLimits};
use super::{Engine, EngineError};
use crate::bindings::TaskEnvironmentPre;
use crate::spec::TaskSpec;

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Compiled now (and written to the cache).
    Compiled,
    /// Mapped from the on-disk cache without compiling.
    DiskCache,
}

/// A component ready to run: its tasks, and an `InstancePre` from which each attempt gets a
/// fresh instance.
pub struct LoadedComponent {
    /// SHA-256 of the component's bytes, lowercase hex.
    pub digest: String,
    /// Where it was loaded from (a path, or a name the embedder gave).
    pub source_name: String,
    /// The environment's own name; its tasks are known as `<environment>.<task>`.
    pub environment: String,
    pub size_bytes: u64,
    pub compile_source: CompileSource,
    pub tasks: Vec<TaskSpec>,
    pub(crate) pre: TaskEnvironmentPre<super::attempt::AttemptState>,
}

impl LoadedComponent {
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// `<environment>.<task>`, the name cache keys use.
    pub fn qualified_name(&self, task: &str) -> String {
        format!("{}.{task}", self.environment)
    }
}

/// Feeds `Hash` output into SHA-256 so the engine's compatibility hash is stable across runs
/// (std's `DefaultHasher` makes no such promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // unused: the digest is read with `finalize`
    }
}

/// The preamble every WebAssembly binary starts with.
const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// The version and layer words after it: a core module is version 1, layer 0; a component has
/// layer 1 (its version word changes while the format is in preview).
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];
const COMPONENT_LAYER: [u8; 2] = [1, 0];

/// Refuses, with a reason a user can act on, bytes that are not a component at all: wasmtime's
/// own message for them is a dump of the expected magic bytes.
fn check_component_header(bytes: &[u8], source_name: &str) -> Result<(), EngineError> {
    let refuse = |reason| {
        Err(EngineError::NotAComponent {
            source_name: source_name.to_string(),
            reason,
        })
    };
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return refuse("not a WebAssembly file (it does not start with \"\\0asm\")");
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return refuse(
            "a core WebAssembly module, not a component: build the task for wasm32-wasip2 \
             (or wrap the module with `wasm-tools component new`)",
        );
    }
    if bytes[6..8] != COMPONENT_LAYER {
        return refuse("a WebAssembly binary of an unknown layer, not a component");
    }
    Ok(())
}

impl Engine {
    /// Compiles or maps `bytes`, links it, and asks it to describe its tasks.
    pub async fn load(
        &self,
        bytes: &[u8],
        source_name: &str,
    ) -> Result<LoadedComponent, EngineError> {
        check_component_header(bytes, source_name)?;
        let digest = hex::encode(Sha256::digest(bytes));
        let cache_path = self.cache_path(&digest);
        let (component, compile_source) = match self.map_cached(&cache_path) {
            Some(component) => (component, CompileSource::DiskCache),
            None => {
                let component = self
                    .compile_into_cache(bytes, source_name, &cache_path)
                    .await?;
                (component, CompileSource::Compiled)
            }
        };
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| EngineError::Link {
                    source_name: source_name.to_string(),
                    message: format!("{e:#}"),
                })?;
        let pre = TaskEnvironmentPre::new(instance_pre).map_err(|e| EngineError::Link {
            source_name: source_name.to_string(),
            message: format!("{e:#}"),
        })?;
        let limits = AttemptLimits::for_describe(self.config.max_memory_bytes);
        let (environment, tasks) =
            describe_component(&self.engine, &pre, &limits, source_name).await?;
        Ok(LoadedComponent {
            digest,
            source_name: source_name.to_string(),
            environment,
            size_bytes: bytes.len() as u64,
            compile_source,
            tasks,
            pre,
        })
    }

    fn cache_path(&self, digest: &str) -> PathBuf {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut hasher);
        let engine_hash = hex::encode(hasher.0.finalize());
        self.config
            .compile_cache_dir
            .join(format!("{digest}-{}.cwasm", &engine_hash[..16]))
    }

    fn map_cached(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the file is one this engine configuration wrote with `precompile_component`
        // (its name carries the engine's compatibility hash) in the sluice home, which only the
        // host's user writes. A file that fails to deserialize is recompiled and replaced.
        unsafe { Component::deserialize_file(&self.engine, path) }.ok()
    }

    async fn compile_into_cache(
        &self,
        bytes: &[u8],
        source_name: &str,
        path: &Path,
    ) -> Result<Component, EngineError> {
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let compiled = tokio::task::spawn_blocking(move || engine.precompile_component(&owned))
            .await
            .map_err(|e| EngineError::Config(format!("compile thread: {e}")))?
            .map_err(|e| EngineError::Compile {
                source_name: source_name.to_string(),
                message: format!("{e:#}"),
            })?;
        let io_err = |e: std::io::Error| EngineError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        // Write beside the final name and rename, so a concurrent loader never maps half a file.
        let tmp = path.with_extension(format!("tmp-{}", ulid::Ulid::generate()));
        std::fs::write(&tmp, &compiled).map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)?;
        // SAFETY: as in `map_cached`; the bytes were produced just now by this engine.
        unsafe { Component::deserialize_file(&self.engine, path) }.map_err(|e| {
            EngineError::Compile {
                source_name: source_name.to_string(),
                message: format!("mapping the compiled code: {e:#}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(bytes: &[u8]) -> String {
        match check_component_header(bytes, "t.wasm") {
            Err(e) => e.to_string(),
            Ok(()) => "accepted".to_string(),
        }
    }

    #[test]
    fn files_that_are_not_components_are_refused_by_their_header() {
        assert!(refusal(b"").contains("not a WebAssembly file"));
        assert!(refusal(b"root:x:0:0:root").contains("not a WebAssembly file"));
        assert!(refusal(b"\0asm\x01\0\0\0").contains("a core WebAssembly module, not a component"));
        assert!(refusal(b"\0asm\x0d\0\x02\0").contains("unknown layer"));
        // A component's preamble (version 0xd while the format is in preview, layer 1).
        assert_eq!(refusal(b"\0asm\x0d\0\x01\0"), "accepted");
    }
}
