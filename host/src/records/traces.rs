//! Trace checkpoints: the recorded results of traced calls inside an action.

use super::backend::Kind;
use super::events::{event, kind};
use super::{now_micros, Records, RecordsError};

/// Identifies one traced call of an action.
#[derive(Debug, Clone)]
pub struct TraceKey<'a> {
    pub run_id: &'a str,
    pub action_id: &'a str,
    pub name: &'a str,
    /// SHA-256 of the call's arguments (MessagePack), hex.
    pub args_hash: &'a str,
}

impl Records {
    /// Where the items of a recorded trace are, if one was recorded.
    pub async fn trace_lookup(&self, key: &TraceKey<'_>) -> Result<Option<String>, RecordsError> {
        let rows = self
            .backend()
            .query(
                &format!("looking up trace {} of run {}", key.name, key.run_id),
                "SELECT uri FROM traces WHERE run_id = $1 AND action_id = $2 AND name = $3 \
                 AND args_hash = $4",
                vec![
                    key.run_id.into(),
                    key.action_id.into(),
                    key.name.into(),
                    key.args_hash.into(),
                ],
                &[Kind::Text],
            )
            .await?;
        Ok(rows.into_iter().next().and_then(|r| r[0].text()))
    }

    /// Records a trace (the first record of a key wins) and its event.
    pub async fn trace_record(
        &self,
        key: &TraceKey<'_>,
        attempt: u32,
        uri: &str,
        items: usize,
    ) -> Result<(), RecordsError> {
        let what = format!("recording trace {} of run {}", key.name, key.run_id);
        let statements = [
            (
                "INSERT INTO traces (run_id, action_id, name, args_hash, attempt, uri, items, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (run_id, action_id, name, args_hash) DO NOTHING",
                vec![
                    key.run_id.into(),
                    key.action_id.into(),
                    key.name.into(),
                    key.args_hash.into(),
                    (attempt as i64).into(),
                    uri.into(),
                    (items as i64).into(),
                    now_micros().into(),
                ],
            ),
            event(
                key.run_id,
                key.action_id,
                kind::TRACE_RECORDED,
                Some(format!(
                    "{} ({items} item(s)) by attempt {attempt}",
                    key.name
                )),
            ),
        ];
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }
}
