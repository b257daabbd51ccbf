//! The append-only event log of each run: what happened, in the order it was written.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

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

/// Most events one `INSERT` appends. A run's transactions append one to four (a cache miss:
/// created, cache-miss, started); each statement saved is a statement-cache lookup, its
/// bindings, cursors and halt in SQLite, or a round trip's worth of protocol on PostgreSQL.
const EVENTS_PER_INSERT: usize = 4;
/// Columns of one event row, bound in this order.
const EVENT_COLUMNS: usize = 6;

/// The `INSERT` of `rows` events (1 ..= EVENTS_PER_INSERT), built once: the statement caches of
/// both backends key on the SQL text, so it must be the same text every time.
fn insert_events_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<&'static str>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (1..=EVENTS_PER_INSERT)
            .map(|n| {
                let values: Vec<String> = (0..n)
                    .map(|row| {
                        let first = row * EVENT_COLUMNS + 1;
                        let params: Vec<String> = (first..first + EVENT_COLUMNS)
                            .map(|p| format!("${p}"))
                            .collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                // Built once per row count for the life of the process.
                &*Box::leak(
                    format!(
                        "INSERT INTO events (run_id, id, action_id, at, kind, detail) VALUES {}",
                        values.join(", ")
                    )
                    .into_boxed_str(),
                )
            })
            .collect()
    });
    all[rows.clamp(1, EVENTS_PER_INSERT) - 1]
}

/// The statements that append `happened` (kind, detail), in order, to one action's events:
/// one `INSERT` per [`EVENTS_PER_INSERT`] events.
pub(crate) fn events(
    run_id: &str,
    action_id: &str,
    happened: Vec<(&str, Option<String>)>,
) -> Vec<Statement> {
    let mut statements = Vec::with_capacity(happened.len().div_ceil(EVENTS_PER_INSERT));
    let mut happened = happened.into_iter().peekable();
    while happened.peek().is_some() {
        let mut params = Vec::with_capacity(EVENTS_PER_INSERT * EVENT_COLUMNS);
        let mut rows = 0;
        for (kind, detail) in happened.by_ref().take(EVENTS_PER_INSERT) {
            push_event_row(&mut params, run_id, action_id, kind, detail);
            rows += 1;
        }
        statements.push((insert_events_sql(rows), params));
    }
    statements
}

/// The statement that appends one event.
pub(crate) fn event(
    run_id: &str,
    action_id: &str,
    kind: &str,
    detail: Option<String>,
) -> Statement {
    let mut params = Vec::with_capacity(EVENT_COLUMNS);
    push_event_row(&mut params, run_id, action_id, kind, detail);
    (insert_events_sql(1), params)
}

/// Binds one event row; its time and id are taken now, so ids sort in the order events are
/// built.
fn push_event_row(
    params: &mut Vec<SqlValue>,
    run_id: &str,
    action_id: &str,
    kind: &str,
    detail: Option<String>,
) {
    let at = now_micros();
    let seq = EVENT_COUNTER.fetch_add(1, Ordering::Relaxed);
    params.extend([
        run_id.into(),
        event_id(at, seq).into(),
        action_id.into(),
        at.into(),
        kind.into(),
        detail.into(),
    ]);
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
    use super::*;

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

    #[tokio::test]
    async fn events_written_several_to_a_statement_read_back_in_order() {
        let happened: Vec<(&str, Option<String>)> = (0..EVENTS_PER_INSERT + 1)
            .map(|i| (kind::STARTED, Some(format!("event {i}"))))
            .collect();
        let statements = events("r1", "a0", happened);
        // Four rows in the first INSERT (placeholders numbered on), the fifth in its own.
        assert_eq!(statements.len(), 2);
        let (sql, params) = &statements[0];
        assert_eq!(params.len(), EVENTS_PER_INSERT * EVENT_COLUMNS);
        assert!(sql.ends_with("($19, $20, $21, $22, $23, $24)"), "{sql}");
        assert_eq!(statements[1].1.len(), EVENT_COLUMNS);
        assert!(statements[1].0.ends_with("VALUES ($1, $2, $3, $4, $5, $6)"));

        let records = Records::connect("sqlite::memory:").await.unwrap();
        let run = [(
            "INSERT INTO runs (id, project, domain, component_digest, task, phase, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                "r1".into(),
                "p".into(),
                "d".into(),
                "c".into(),
                "t".into(),
                "running".into(),
                0i64.into(),
            ],
        )];
        records.backend().transaction("run", &run).await.unwrap();
        let changed = records
            .backend()
            .transaction("events", &statements)
            .await
            .unwrap();
        assert_eq!(changed, [EVENTS_PER_INSERT as u64, 1]);
        let details: Vec<String> = records
            .events("r1")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| e.detail)
            .collect();
        let expected: Vec<String> = (0..=EVENTS_PER_INSERT)
            .map(|i| format!("event {i}"))
            .collect();
        assert_eq!(details, expected);
    }
}
