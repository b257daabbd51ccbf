//! An action's start, held back until it is needed, so that an attempt that ends before it
//! waits for anything is recorded once, in rows that are born finished.
//!
//! Recording an action the plain way takes two transactions: its start (for a root action the
//! run too, the action and attempt 1, all running, with their events) and its end (three
//! updates and the closing events). Most tasks end within the first poll of their attempt: the
//! guest runs to the end without waiting for an epoch tick, a stream, a child or a timer. For
//! those, the start is held and written at the end together with it, as inserts of the final
//! rows: one commit instead of two and no updates (measured by `sluice-bench records`: in
//! memory 14.4 - 17.8 µs per run against 9.0 - 11.7 µs, on a SQLite file 54 - 70 µs against
//! 33 - 40 µs; concatenating the two transactions alone saved nothing in memory). Children are
//! held the same way (a durable fan-out of 10,000: 6,476 - 6,486 tasks/s with only roots held,
//! 8,374 - 10,043 with children too).
//!
//! What the plain way promised still holds, because the start is written on its own, before
//! anything else happens, as soon as:
//! - the attempt waits for anything (so a run that takes time shows as running, is
//!   heartbeated, and can be resumed after a crash: a host that dies before that loses a run
//!   nobody had been told about yet, whose caller died with it, or a child that its resumed
//!   caller simply calls again);
//! - a row under the action is about to be written (a child action, a trace checkpoint, an
//!   event): no row ever refers to a run or action that is not recorded.
//!
//! The state is behind an async mutex: a writer holds it while its transaction is in
//! flight, so whoever comes next finds the start written, or still held if that write failed.

use std::sync::Arc;

use super::events::Statement;
use super::lifecycle::{
    action_row, attempt_row, closing_statements, finish_statements, run_row, start_events,
    start_statements, AfterAttempt, AttemptEnd, NewRun, RowEnd,
};
use super::{Records, RecordsError};

/// An action's start, not written yet: its rows are built when they are written, its opening
/// events were built (with their times and ids) when it started.
pub struct HeldStart {
    run: NewRun,
    opened: Vec<Statement>,
}

/// Whether an action's start is written yet; shared by everything that may write a row of the
/// action or under it.
pub struct StartRecord(tokio::sync::Mutex<Option<HeldStart>>);

impl StartRecord {
    /// A start already in the records (a resumed run, a reopened child), or not made yet.
    pub fn written() -> Arc<StartRecord> {
        Arc::new(StartRecord(tokio::sync::Mutex::new(None)))
    }

    /// Holds `run`'s start; its `created`, `extra` and `started` events are taken now.
    pub fn held(run: NewRun, extra: &[(&str, Option<String>)]) -> Arc<StartRecord> {
        let opened = start_events(&run, extra);
        Arc::new(StartRecord(tokio::sync::Mutex::new(Some(HeldStart {
            run,
            opened,
        }))))
    }

    /// Writes the start if it is still held; later callers wait for a write in flight.
    pub async fn write(&self, records: &Records) -> Result<(), RecordsError> {
        write_held(&mut *self.0.lock().await, records).await
    }

    /// Writes the start if it is still held and nobody is writing it now. For a caller that
    /// cannot wait for the lock: the attempt's own poller, since whoever holds it may be a
    /// future inside the attempt (a trace being recorded), which moves only when polled.
    pub async fn write_unless_busy(&self, records: &Records) -> Result<(), RecordsError> {
        match self.0.try_lock() {
            Ok(mut state) => write_held(&mut state, records).await,
            Err(_) => Ok(()),
        }
    }

    /// The start, if it is still held, for the caller to write with the attempt's end; after
    /// this nothing else writes it.
    pub async fn take(&self) -> Option<HeldStart> {
        self.0.lock().await.take()
    }
}

/// Writes the start in `state` if it is still there (the caller holds the lock).
async fn write_held(state: &mut Option<HeldStart>, records: &Records) -> Result<(), RecordsError> {
    if let Some(held) = state.as_ref() {
        let what = format!(
            "starting action {} of run {}",
            held.run.action_id, held.run.run_id
        );
        let statements = start_statements(&held.run, records.process(), held.opened.clone());
        records.backend().transaction(&what, &statements).await?;
        *state = None;
    }
    Ok(())
}

impl Records {
    /// Records the end of an action's first attempt together with its start, which was held:
    /// when the action ends with it, as rows born finished; when a retry follows, as the
    /// start's transaction and the end's in one.
    pub async fn finish_held_attempt(
        &self,
        held: HeldStart,
        end: &AttemptEnd,
        after: &AfterAttempt,
    ) -> Result<(), RecordsError> {
        let what = format!("recording attempt {} of run {}", end.attempt, end.run_id);
        let HeldStart { run, opened } = held;
        let statements = match after {
            AfterAttempt::Retry { .. } => {
                let mut statements = start_statements(&run, self.process(), opened);
                statements.extend(finish_statements(end, after));
                statements
            }
            AfterAttempt::Final { cache } => {
                let row_end = RowEnd::of(end.ended_at, &end.outcome);
                let mut statements = Vec::with_capacity(6 + opened.len());
                if run.parent_id.is_none() {
                    statements.push(run_row(&run, &row_end, self.process()));
                }
                statements.push(action_row(&run, &row_end));
                statements.push(attempt_row(
                    &run.run_id,
                    &run.action_id,
                    end.attempt,
                    run.started_at,
                    &run.inputs_uri,
                    &row_end,
                    Some(end),
                ));
                statements.extend(opened);
                statements.extend(closing_statements(end, cache.as_deref()));
                statements
            }
        };
        self.backend().transaction(&what, &statements).await?;
        Ok(())
    }
}
