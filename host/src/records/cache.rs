//! Cache entries and the reservations of serialized caching. The key recipe is the executor's
//! (`executor::cache`); this module only stores and finds entries.

use serde::Serialize;

use super::backend::{Kind, SqlValue};
use super::events::Statement;
use super::{now_micros, Records, RecordsError};

/// The accepted outputs of an action, reusable by any run with the same key in the same scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheEntry {
    pub cache_key: String,
    /// `global` or `<project>/<domain>`.
    pub scope: String,
    /// `<environment>.<task>`
    pub task: String,
    pub component_digest: String,
    pub outputs_uri: String,
    pub run_id: String,
    pub action_id: String,
    pub created_at: i64,
    /// The inputs document of the run that made the entry, and its SHA-256.
    pub inputs_uri: Option<String>,
    pub inputs_sha256: Option<String>,
}

const SELECT_ENTRY: &str = "SELECT cache_key, scope, task, component_digest, outputs_uri, \
                            run_id, action_id, created_at, inputs_uri, inputs_sha256 \
                            FROM cache_entries";
const ENTRY_KINDS: &[Kind] = &[
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::Text,
];

fn entry_from_row(row: Vec<SqlValue>) -> CacheEntry {
    let mut row = row.into_iter();
    let mut text = || row.next().and_then(|v| v.text()).unwrap_or_default();
    let (cache_key, scope, task, component_digest, outputs_uri, run_id, action_id) =
        (text(), text(), text(), text(), text(), text(), text());
    CacheEntry {
        cache_key,
        scope,
        task,
        component_digest,
        outputs_uri,
        run_id,
        action_id,
        created_at: row.next().and_then(|v| v.int()).unwrap_or_default(),
        inputs_uri: row.next().and_then(|v| v.text()),
        inputs_sha256: row.next().and_then(|v| v.text()),
    }
}

/// Writes `entry`, replacing an older one with the same key and scope.
pub(crate) fn upsert_entry(entry: &CacheEntry) -> Statement {
    (
        "INSERT INTO cache_entries (cache_key, scope, task, component_digest, outputs_uri, \
         run_id, action_id, created_at, inputs_uri, inputs_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (cache_key, scope) DO UPDATE SET task = excluded.task, \
         component_digest = excluded.component_digest, outputs_uri = excluded.outputs_uri, \
         run_id = excluded.run_id, action_id = excluded.action_id, \
         created_at = excluded.created_at, inputs_uri = excluded.inputs_uri, \
         inputs_sha256 = excluded.inputs_sha256",
        vec![
            (&entry.cache_key).into(),
            (&entry.scope).into(),
            (&entry.task).into(),
            (&entry.component_digest).into(),
            (&entry.outputs_uri).into(),
            (&entry.run_id).into(),
            (&entry.action_id).into(),
            entry.created_at.into(),
            entry.inputs_uri.as_deref().into(),
            entry.inputs_sha256.as_deref().into(),
        ],
    )
}

impl Records {
    /// The entry for `key` in `scope`, if any.
    pub async fn cache_lookup(
        &self,
        key: &str,
        scope: &str,
    ) -> Result<Option<CacheEntry>, RecordsError> {
        let sql = format!("{SELECT_ENTRY} WHERE cache_key = $1 AND scope = $2");
        let rows = self
            .backend()
            .query(
                "looking up the cache",
                &sql,
                vec![key.into(), scope.into()],
                ENTRY_KINDS,
            )
            .await?;
        Ok(rows.into_iter().next().map(entry_from_row))
    }

    /// Entries, newest first; `task` filters by `<environment>.<task>`.
    pub async fn cache_list(&self, task: Option<&str>) -> Result<Vec<CacheEntry>, RecordsError> {
        let sql = format!("{SELECT_ENTRY} WHERE task = $1 OR $2 = 1 ORDER BY created_at DESC");
        let rows = self
            .backend()
            .query(
                "listing the cache",
                &sql,
                vec![task.unwrap_or("").into(), (task.is_none() as i64).into()],
                ENTRY_KINDS,
            )
            .await?;
        Ok(rows.into_iter().map(entry_from_row).collect())
    }

    /// Removes entries (of one task, or all); returns how many.
    pub async fn cache_clear(&self, task: Option<&str>) -> Result<u64, RecordsError> {
        let changed = self
            .backend()
            .transaction(
                "clearing the cache",
                &[(
                    "DELETE FROM cache_entries WHERE task = $1 OR $2 = 1",
                    vec![task.unwrap_or("").into(), (task.is_none() as i64).into()],
                )],
            )
            .await?;
        Ok(changed.first().copied().unwrap_or(0))
    }

    /// Removes one entry, if it still points at `outputs_uri` (a newer one is kept).
    pub async fn cache_remove(
        &self,
        key: &str,
        scope: &str,
        outputs_uri: &str,
    ) -> Result<(), RecordsError> {
        self.backend()
            .transaction(
                "removing a cache entry",
                &[(
                    "DELETE FROM cache_entries WHERE cache_key = $1 AND scope = $2 \
                     AND outputs_uri = $3",
                    vec![key.into(), scope.into(), outputs_uri.into()],
                )],
            )
            .await?;
        Ok(())
    }

    /// Takes the reservation of `key` for `owner` unless another live owner holds it.
    pub async fn cache_reserve(
        &self,
        key: &str,
        scope: &str,
        owner: &str,
        expires_at: i64,
    ) -> Result<bool, RecordsError> {
        let changed = self
            .backend()
            .transaction(
                "reserving a cache key",
                &[(
                    "INSERT INTO cache_reservations (cache_key, scope, owner, expires_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (cache_key, scope) DO UPDATE \
                     SET owner = excluded.owner, expires_at = excluded.expires_at \
                     WHERE cache_reservations.expires_at < $5 \
                     OR cache_reservations.owner = excluded.owner",
                    vec![
                        key.into(),
                        scope.into(),
                        owner.into(),
                        expires_at.into(),
                        now_micros().into(),
                    ],
                )],
            )
            .await?;
        Ok(changed.first().copied().unwrap_or(0) > 0)
    }

    /// Gives a reservation back.
    pub async fn cache_release(
        &self,
        key: &str,
        scope: &str,
        owner: &str,
    ) -> Result<(), RecordsError> {
        self.backend()
            .transaction(
                "releasing a cache key",
                &[(
                    "DELETE FROM cache_reservations WHERE cache_key = $1 AND scope = $2 \
                     AND owner = $3",
                    vec![key.into(), scope.into(), owner.into()],
                )],
            )
            .await?;
        Ok(())
    }
}
