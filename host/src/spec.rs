//! What the host knows about a task: its interface and the settings it declared.

use serde::{Deserialize, Serialize};

use crate::values::Interface;

/// How a task's results may be reused (see `executor::cache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "version", rename_all = "lowercase")]
pub enum CacheVersion {
    #[default]
    Disable,
    Auto,
    Override {
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CachePolicy {
    #[serde(flatten)]
    pub version: CacheVersion,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_inputs: Vec<String>,
    #[serde(default)]
    pub serialize: bool,
    /// Entries older than this are not reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    #[serde(default)]
    pub scope: CacheScope,
}

/// Which runs share a task's cache entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CacheScope {
    /// Runs of the same project and domain.
    #[default]
    ProjectDomain,
    /// Every run recorded in the same database.
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RetryPolicy {
    pub retries: u32,
    pub backoff_ms: u64,
}

/// One task of a loaded component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    pub interface: Interface,
    /// SHA-256 of the interface's canonical encoding (see `values::types`).
    pub interface_hash: String,
    pub cache: CachePolicy,
    pub retry: RetryPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_limit_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
}
