//! The wasmtime layer: one engine per host (pooling allocator, epoch deadlines), components
//! precompiled once and cached on disk, one `InstancePre` per component and a fresh store per
//! attempt. Knows nothing of SQL; the guest's data calls go to the attempt's `DataSession`, its
//! trace calls to its `TraceSession`, its calls to other tasks to its `CallSession`.

mod attempt;
mod compile;
pub mod data_host;
mod describe;
mod direct_read;
pub mod log;
mod tasks_host;
mod trace_host;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;

pub use attempt::{AttemptFailure, AttemptLimits, AttemptReport};
pub use compile::{CompileSource, LoadedComponent};

use crate::bindings::TaskEnvironment;
use crate::data::DataSession;
use crate::executor::children::CallSession;
use crate::traces::TraceSession;
use attempt::AttemptState;

/// How often the epoch advances. Deadlines are checked at this granularity and a running guest
/// yields to other tasks on the runtime this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each pooled memory and table kept resident between instances.
const POOL_KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// Engine-wide settings. Per-attempt limits are in [`AttemptLimits`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where precompiled components are kept (`<home>/compiled` by default).
    pub compile_cache_dir: PathBuf,
    /// Use the pooling instance allocator (fast instantiation; reserves address space up front).
    pub pooling: bool,
    /// Component instances alive at once across the host (the pool's size).
    pub max_instances: u32,
    /// Largest linear memory any attempt may reach; per-attempt caps must be at or below it.
    pub max_memory_bytes: u64,
}

impl EngineConfig {
    pub fn new(compile_cache_dir: PathBuf) -> Self {
        EngineConfig {
            compile_cache_dir,
            pooling: true,
            max_instances: 256,
            max_memory_bytes: 4 << 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("engine configuration: {0}")]
    Config(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// The bytes are not a WebAssembly component at all (checked before compiling).
    #[error("{source_name}: {reason}")]
    NotAComponent {
        source_name: String,
        reason: &'static str,
    },
    #[error("{source_name}: not a loadable component: {message}")]
    Compile {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: does not fit the sluice:task world: {message}")]
    Link {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: describe failed: {message}")]
    Describe {
        source_name: String,
        message: String,
    },
}

/// The wasmtime engine, its linker and the epoch ticker.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<AttemptState>,
    config: EngineConfig,
    ticker_stop: Arc<AtomicBool>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let mut wasm_config = wasmtime::Config::new();
        wasm_config.wasm_component_model(true);
        wasm_config.epoch_interruption(true);
        if config.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            pool.total_component_instances(config.max_instances);
            // Components built from Python or JS hold several core instances, memories and
            // tables each; size the pool for them rather than for the smallest Rust guest.
            pool.total_core_instances(config.max_instances * 8);
            pool.total_memories(config.max_instances * 2);
            pool.total_tables(config.max_instances * 8);
            pool.max_core_instances_per_component(64);
            pool.max_memories_per_component(8);
            pool.max_tables_per_component(32);
            pool.table_elements(100_000);
            pool.max_core_instance_size(16 << 20);
            pool.max_component_instance_size(16 << 20);
            pool.max_memory_size(config.max_memory_bytes as usize);
            // Reset the first pages of a reused slot with memset instead of handing them back to
            // the kernel: the next instance then starts without page faults on its stack and
            // first heap pages.
            pool.linear_memory_keep_resident(POOL_KEEP_RESIDENT_BYTES);
            pool.table_keep_resident(POOL_KEEP_RESIDENT_BYTES);
            // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), reset only the pages the instance
            // dirtied instead of zeroing the whole resident region.
            pool.pagemap_scan(wasmtime::Enabled::Auto);
            wasm_config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = wasmtime::Engine::new(&wasm_config)
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        // WASI is linked because every component built by today's toolchains imports it, but the
        // context granted to it has no files, network, environment or arguments (see attempt.rs).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| EngineError::Config(format!("linking WASI: {e:#}")))?;
        TaskEnvironment::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| EngineError::Config(format!("linking sluice:task: {e:#}")))?;
        direct_read::link(&mut linker)
            .map_err(|e| EngineError::Config(format!("linking direct reads: {e:#}")))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let weak_engine = engine.weak();
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| EngineError::Config(format!("starting the epoch thread: {e}")))?;

        Ok(Engine {
            engine,
            linker,
            config,
            ticker_stop,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    /// Runs one attempt of `task` in a fresh instance of `component`.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_attempt(
        &self,
        component: &LoadedComponent,
        limits: &AttemptLimits,
        task: &str,
        inputs: &[u8],
        data: DataSession,
        trace: TraceSession,
        calls: CallSession,
    ) -> AttemptReport {
        attempt::run_attempt(
            &self.engine,
            &component.pre,
            limits,
            task,
            inputs,
            attempt::Sessions { data, trace, calls },
        )
        .await
    }
}
