//! Trace checkpoints of one attempt: the guest's `trace` calls land here.
//!
//! A traced call is keyed by its action, its name and the SHA-256 of its arguments. Its items
//! are stored as one object under the attempt's prefix (`trace-<n>.msgpack`, a MessagePack
//! array of binaries), and the row pointing at it is written only after the object is stored,
//! so a replay never finds a row without its items.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::data::{DataError, DataStore};
use crate::records::events::kind;
use crate::records::{Records, RecordsError, StartRecord, TraceKey};
use crate::values::{msgpack, Value, ValueError};

/// Longest trace name accepted.
pub const MAX_TRACE_NAME_LEN: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("trace name must be 1 to {MAX_TRACE_NAME_LEN} bytes")]
    BadName,
    #[error("trace {name}: {size} bytes recorded, above the limit of {limit} bytes")]
    TooLarge { name: String, size: u64, limit: u64 },
    #[error("trace {name}: stored items are unreadable: {source}")]
    Corrupt {
        name: String,
        #[source]
        source: ValueError,
    },
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error(transparent)]
    Data(#[from] DataError),
}

/// The attempt whose traces a session records, and its prefix in the store.
pub struct TracedAttempt<'a> {
    pub run_id: &'a str,
    pub action_id: &'a str,
    pub attempt: u32,
    pub prefix: &'a str,
}

/// One attempt's view of its action's checkpoints.
pub struct TraceSession {
    records: Records,
    /// The action's start, written before the first row about its traces.
    start: Arc<StartRecord>,
    store: DataStore,
    run_id: String,
    action_id: String,
    attempt: u32,
    /// The attempt's prefix in `store`, where recorded items go.
    prefix: String,
    /// Largest recorded trace (the task's inline limit).
    limit_bytes: u64,
    recorded: u32,
}

impl TraceSession {
    pub fn new(
        records: Records,
        start: Arc<StartRecord>,
        store: DataStore,
        of: TracedAttempt<'_>,
        limit_bytes: u64,
    ) -> Self {
        TraceSession {
            records,
            start,
            store,
            run_id: of.run_id.to_string(),
            action_id: of.action_id.to_string(),
            attempt: of.attempt,
            prefix: of.prefix.to_string(),
            limit_bytes,
            recorded: 0,
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    fn key<'a>(&'a self, name: &'a str, args_hash: &'a str) -> TraceKey<'a> {
        TraceKey {
            run_id: &self.run_id,
            action_id: &self.action_id,
            name,
            args_hash,
        }
    }

    /// The items an earlier attempt recorded for this call. A row whose object is gone (removed
    /// by gc) counts as not recorded: the call runs again.
    pub async fn replay(
        &self,
        name: &str,
        args: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>, TraceError> {
        check_name(name)?;
        let args_hash = hex::encode(Sha256::digest(args));
        let Some(uri) = self
            .records
            .trace_lookup(&self.key(name, &args_hash))
            .await?
        else {
            return Ok(None);
        };
        let bytes = match self.store.get(&uri).await {
            Ok(bytes) => bytes,
            Err(DataError::Missing { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let items = match msgpack::decode(&bytes, &uri) {
            Ok(Value::List(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::Bytes(b) => Ok(b),
                    other => Err(other.kind_name()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|got| TraceError::Corrupt {
                    name: name.to_string(),
                    source: ValueError::Decode {
                        what: uri.clone(),
                        message: format!("expected binary items, got {got}"),
                    },
                })?,
            Ok(other) => {
                return Err(TraceError::Corrupt {
                    name: name.to_string(),
                    source: ValueError::Decode {
                        what: uri,
                        message: format!("expected a list, got {}", other.kind_name()),
                    },
                })
            }
            Err(source) => {
                return Err(TraceError::Corrupt {
                    name: name.to_string(),
                    source,
                })
            }
        };
        self.start.write(&self.records).await?;
        self.records
            .append_event(
                &self.run_id,
                &self.action_id,
                kind::TRACE_REPLAYED,
                Some(format!(
                    "{name} ({} item(s)) in attempt {}",
                    items.len(),
                    self.attempt
                )),
            )
            .await?;
        Ok(Some(items))
    }

    /// Stores the items of a finished call and records them.
    pub async fn record(
        &mut self,
        name: &str,
        args: &[u8],
        items: Vec<Vec<u8>>,
    ) -> Result<(), TraceError> {
        check_name(name)?;
        let size: u64 = items.iter().map(|i| i.len() as u64).sum();
        if size > self.limit_bytes {
            return Err(TraceError::TooLarge {
                name: name.to_string(),
                size,
                limit: self.limit_bytes,
            });
        }
        let count = items.len();
        let doc = msgpack::encode(&Value::List(items.into_iter().map(Value::Bytes).collect()));
        self.recorded += 1;
        let rel = format!("{}/trace-{}.msgpack", self.prefix, self.recorded);
        let uri = self.store.put(&rel, doc).await?;
        let args_hash = hex::encode(Sha256::digest(args));
        self.start.write(&self.records).await?;
        self.records
            .trace_record(&self.key(name, &args_hash), self.attempt, &uri, count)
            .await?;
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), TraceError> {
    if name.is_empty() || name.len() > MAX_TRACE_NAME_LEN {
        return Err(TraceError::BadName);
    }
    Ok(())
}
