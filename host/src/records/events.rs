//! The append-only event log of each run: what happened, in the order it was written.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

use super::backend::{Kind, SqlValue};
use super::{now_micros, Records, RecordsError};

/// What an event says happened (the `kind` column).
pub mod kind {
    pub const CREATED: &str = "created";
    pub const STARTED: &str = "started";
    pub const CACHE_HIT: &str = "cache-hit";
    pub const CACHE_MISS: &str = "cache-miss";
    pub const CACHE_WAIT: &str = "cache-wait";
    pub const CACHE_WRITTEN: &str = "cache-written";
    pub const TRACE_RECORDED: &str = "trace-recorded";
    pub const TRACE_REPLAYED: &str = "trace-replayed";
    pub const RETRY_SCHEDULED: &str = "retry-scheduled";
    pub const ATTEMPT_LOST: &str = "attempt-lost";
    pub const RESUMED: &str = "resumed";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
}

/// A statement and its parameters, to run inside a transaction with others.
pub(crate) type Statement = (&'static str, Vec<SqlValue>);

/// Orders events written by one process within the same microsecond.
static EVENT_COUNTER: AtomicU32 = AtomicU32::new(0);

/// An event's id: `e`, then `at` as 16 hex digits and `seq` as 8, so ids sort in the order
/// they were written (written into one buffer: `format!` cost ten times as much, and every run
/// writes three events).
fn event_id(at: i64, seq: u32) -> String {
    let mut id = [b'e'; 25];
    let hex_digits = hex::encode_to_slice((at as u64).to_be_bytes(), &mut id[1..17])
        .and_then(|()| hex::encode_to_slice(seq.to_be_bytes(), &mut id[17..]));
    debug_assert!(hex_digits.is_ok(), "the slices are twice the bytes' length");
    id.iter().map(|&b| b as char).collect()
}

/// The statement that appends one event.
pub(crate) fn event(
    run_id: &str,
    action_id: &str,
    kind: &str,
    detail: Option<String>,
) -> Statement {
    let at = now_micros();
    let seq = EVENT_COUNTER.fetch_add(1, Ordering::Relaxed);
    (
        "INSERT INTO events (run_id, id, action_id, at, kind, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            run_id.into(),
            event_id(at, seq).into(),
            action_id.into(),
            at.into(),
            kind.into(),
            detail.into(),
        ],
    )
}

/// One recorded event.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub action_id: String,
    pub at: i64,
    pub kind: String,
    pub detail: Option<String>,
}

impl Records {
    /// Appends one event on its own.
    pub async fn append_event(
        &self,
        run_id: &str,
        action_id: &str,
        kind: &str,
        detail: Option<String>,
    ) -> Result<(), RecordsError> {
        let what = format!("recording a {kind} event of run {run_id}");
        self.backend()
            .transaction(&what, &[event(run_id, action_id, kind, detail)])
            .await?;
        Ok(())
    }

    /// A run's events, oldest first.
    pub async fn events(&self, run_id: &str) -> Result<Vec<EventRecord>, RecordsError> {
        let rows = self
            .backend()
            .query(
                &format!("reading the events of run {run_id}"),
                "SELECT action_id, at, kind, detail FROM events WHERE run_id = $1 ORDER BY id",
                vec![run_id.into()],
                &[Kind::Text, Kind::Int, Kind::Text, Kind::Text],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut row = row.into_iter();
                let mut next = || row.next().unwrap_or(SqlValue::Null);
                EventRecord {
                    action_id: next().text().unwrap_or_default(),
                    at: next().int().unwrap_or_default(),
                    kind: next().text().unwrap_or_default(),
                    detail: next().text(),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::event_id;

    #[test]
    fn event_ids_are_fixed_width_hex_that_sort_in_write_order() {
        assert_eq!(event_id(0, 0), "e000000000000000000000000");
        assert_eq!(
            event_id(0x0123_4567_89ab_cdef, 0xfedc_ba98),
            format!("e{:016x}{:08x}", 0x0123_4567_89ab_cdef_u64, 0xfedc_ba98_u32)
        );
        let written = [
            (1_700_000_000_000_000, 7),
            (1_700_000_000_000_000, 8),
            (1_700_000_000_000_001, 0),
        ];
        let ids: Vec<String> = written.iter().map(|&(at, seq)| event_id(at, seq)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
