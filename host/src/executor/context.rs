//! What every run shares: the engine, the records, the stores, the limits, the loaded
//! components (so a task can call a task of another environment), and the host-wide limit on
//! running children. Owned and behind an `Arc` so child actions can run on other runtime workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Semaphore;

use super::Limits;
use crate::data::{DataStore, Stores};
use crate::engine::{Engine, EngineError, LoadedComponent};
use crate::records::{Records, RecordsError};

/// Why a component could not be loaded or found.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Records(#[from] RecordsError),
}

/// The parts a run uses.
pub struct RunContext {
    pub engine: Engine,
    pub records: Records,
    /// The default store: documents, and raw data unless the run names another place.
    pub store: DataStore,
    /// Every store references may live in (the default one first).
    pub stores: Arc<Stores>,
    pub limits: Limits,
    /// Children running an attempt right now, across every run of this host
    /// (`Limits::max_running_children`). A parent waiting for its children holds no permit.
    pub running_children: Arc<Semaphore>,
    loaded: Mutex<Loaded>,
}

/// Components loaded by this host: by digest, and the newest of each environment by name.
#[derive(Default)]
struct Loaded {
    by_digest: HashMap<String, Arc<LoadedComponent>>,
    by_environment: HashMap<String, Arc<LoadedComponent>>,
}

impl RunContext {
    pub fn new(
        engine: Engine,
        records: Records,
        store: DataStore,
        stores: Arc<Stores>,
        limits: Limits,
    ) -> Self {
        // Waiting parents keep their instances, so running children get at most half the pool.
        let pool_share = (engine.config().max_instances as usize / 2).max(1);
        let running = limits.max_running_children.clamp(1, pool_share);
        RunContext {
            engine,
            records,
            store,
            stores,
            running_children: Arc::new(Semaphore::new(running)),
            limits,
            loaded: Mutex::default(),
        }
    }

    fn loaded(&self) -> MutexGuard<'_, Loaded> {
        match self.loaded.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Loads a component: compiles it (or maps its cached machine code), asks it to describe
    /// its tasks, and registers it. Loading the same bytes again returns the same component;
    /// the newest load of an environment is the one calls by `<environment>.<task>` reach.
    pub async fn load_bytes(
        &self,
        bytes: &[u8],
        source_name: &str,
    ) -> Result<Arc<LoadedComponent>, ComponentError> {
        let component = Arc::new(self.engine.load(bytes, source_name).await?);
        {
            // One guard for the look-up and the insert: a second `loaded()` while the first
            // guard lives (an `if let` keeps it to the end of the block) would deadlock.
            let mut loaded = self.loaded();
            if let Some(existing) = loaded.by_digest.get(&component.digest).cloned() {
                loaded
                    .by_environment
                    .insert(existing.environment.clone(), existing.clone());
                return Ok(existing);
            }
        }
        self.records
            .register_component(
                &component.digest,
                source_name,
                &component.environment,
                component.size_bytes,
                &component.tasks,
            )
            .await?;
        let mut loaded = self.loaded();
        let entry = loaded
            .by_digest
            .entry(component.digest.clone())
            .or_insert(component)
            .clone();
        loaded
            .by_environment
            .insert(entry.environment.clone(), entry.clone());
        Ok(entry)
    }

    /// Loads a component file.
    pub async fn load_file(&self, path: &str) -> Result<Arc<LoadedComponent>, ComponentError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| ComponentError::Io {
                path: path.to_string(),
                message: e.to_string(),
            })?;
        self.load_bytes(&bytes, path).await
    }

    /// The component of environment `name`: the one this host loaded last, otherwise the one
    /// registered last in the records (loaded from where it was registered from).
    pub async fn environment(
        &self,
        name: &str,
    ) -> Result<Option<Arc<LoadedComponent>>, ComponentError> {
        if let Some(found) = self.loaded().by_environment.get(name).cloned() {
            return Ok(Some(found));
        }
        match self.records.environment_source(name).await? {
            Some(source) => Ok(Some(self.load_file(&source).await?)),
            None => Ok(None),
        }
    }
}
