//! Heartbeats: how a process on another machine (a shared PostgreSQL) tells a live run from one
//! whose host stopped, where `/proc` cannot be looked at.
//!
//! A run's row carries `heartbeat_at`, set when the run is created or claimed by a resume, and
//! set again every [`HEARTBEAT_INTERVAL`] (by default) by the host running it, for as long as
//! the run runs (`Host` keeps one task for all its runs; a run shorter than the interval is
//! written no more than before). A row with a parseable process on this machine is judged by
//! `/proc` ([`super::liveness`]), which is exact; any other row with a heartbeat is judged by its
//! age: silent for [`HEARTBEAT_STALE_AFTER`] means stopped. A row without one (written by a
//! sluice from before heartbeats, which never sends them) is unknown, never taken for stopped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::liveness::{HostProcess, Liveness};
use super::{Records, RecordsError, PHASE_RUNNING};

/// How often a host records that its runs still run, unless the builder says otherwise.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A run whose host has not reported for this long counts as stopped (six default intervals:
/// a host that misses a few beats to a slow database is not taken for dead).
pub const HEARTBEAT_STALE_AFTER: Duration = Duration::from_secs(30);
/// The longest interval a host may be given: three beats fit in the stale time.
pub const HEARTBEAT_INTERVAL_MAX: Duration = Duration::from_secs(10);

/// How the host of a `running` run stands, as far as this process can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunHost {
    /// Its process runs on this machine (`/proc`).
    Alive,
    /// Its host reported this many seconds ago, within [`HEARTBEAT_STALE_AFTER`].
    Reporting { seconds_ago: u64 },
    /// Its process is gone, or its host has been silent past [`HEARTBEAT_STALE_AFTER`].
    Gone,
    /// Nothing to tell it by (a row from before heartbeats, on another machine).
    Unknown,
}

/// Judges a run's host from its row: `host` (the recorded process), `heartbeat_at` and the
/// time now, all in microseconds.
pub fn run_host(host: Option<&str>, heartbeat_at: Option<i64>, now: i64) -> RunHost {
    match host.and_then(HostProcess::parse).map(|p| p.liveness()) {
        Some(Liveness::Alive) => return RunHost::Alive,
        Some(Liveness::Gone) => return RunHost::Gone,
        Some(Liveness::Unknown) | None => {}
    }
    let Some(beat) = heartbeat_at else {
        return RunHost::Unknown;
    };
    // A clock behind the writer's gives a negative age: the host reported just now.
    let age = Duration::from_micros(now.saturating_sub(beat).max(0) as u64);
    if age > HEARTBEAT_STALE_AFTER {
        RunHost::Gone
    } else {
        RunHost::Reporting {
            seconds_ago: age.as_secs(),
        }
    }
}

/// The runs this host is running now (shared by the clones of one [`Records`]).
#[derive(Debug, Default)]
pub(crate) struct LiveRuns(Mutex<HashSet<String>>);

impl LiveRuns {
    fn ids(&self) -> Vec<String> {
        let live = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        live.iter().cloned().collect()
    }
}

/// Keeps a run in the host's heartbeats until dropped (when the run ends, fails, or its
/// future is dropped: a run nobody drives is not reported as running).
pub struct LiveRun {
    runs: Arc<LiveRuns>,
    id: String,
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        let mut live = self.runs.0.lock().unwrap_or_else(PoisonError::into_inner);
        live.remove(&self.id);
    }
}

impl Records {
    /// Counts `run_id` among the runs this host reports as running, until the guard drops.
    pub fn live_run(&self, run_id: &str) -> LiveRun {
        let runs = self.live.clone();
        runs.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run_id.to_string());
        LiveRun {
            runs,
            id: run_id.to_string(),
        }
    }

    /// Records, at time `at` (microseconds), that this process still runs each of its live
    /// runs. A run that ended, or that another process has claimed since (a resume after this
    /// host was taken for stopped), is left alone. Nothing is written when no run is live.
    pub async fn heartbeat(&self, at: i64) -> Result<(), RecordsError> {
        let ids = self.live.ids();
        self.heartbeat_runs(&ids, at).await
    }

    /// [`Records::heartbeat`] for the given runs (of this process).
    pub async fn heartbeat_runs(&self, run_ids: &[String], at: i64) -> Result<(), RecordsError> {
        if run_ids.is_empty() {
            return Ok(());
        }
        let me = self.process().unwrap_or("");
        let statements: Vec<_> = run_ids
            .iter()
            .map(|id| {
                (
                    "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND phase = $3 \
                     AND COALESCE(host, '') = $4",
                    vec![
                        at.into(),
                        id.as_str().into(),
                        PHASE_RUNNING.into(),
                        me.into(),
                    ],
                )
            })
            .collect();
        self.backend()
            .transaction("recording the heartbeat of this host's runs", &statements)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn this_machine_is_told_by_proc_and_others_by_their_heartbeat() {
        let me = HostProcess::current()
            .expect("this machine has /proc")
            .to_record();
        let now = 100 * SECOND;
        // Alive here, however old its heartbeat.
        assert_eq!(run_host(Some(&me), Some(0), now), RunHost::Alive);
        assert_eq!(run_host(Some(&me), None, now), RunHost::Alive);
        let elsewhere = Some("another-machine:boot:7:7");
        assert_eq!(
            run_host(elsewhere, Some(now - 4 * SECOND), now),
            RunHost::Reporting { seconds_ago: 4 }
        );
        let stale = HEARTBEAT_STALE_AFTER.as_micros() as i64;
        assert_eq!(
            run_host(elsewhere, Some(now - stale), now),
            RunHost::Reporting { seconds_ago: 30 }
        );
        assert_eq!(
            run_host(elsewhere, Some(now - stale - 1), now),
            RunHost::Gone
        );
        // A writer's clock ahead of ours: it reported just now.
        assert_eq!(
            run_host(elsewhere, Some(now + SECOND), now),
            RunHost::Reporting { seconds_ago: 0 }
        );
        // No heartbeat: a sluice from before them, never taken for stopped.
        assert_eq!(run_host(elsewhere, None, now), RunHost::Unknown);
        assert_eq!(run_host(None, None, now), RunHost::Unknown);
        // No process recorded (no /proc where it ran), but a heartbeat: judged by it.
        assert_eq!(run_host(None, Some(0), now), RunHost::Gone);
    }

    #[tokio::test]
    async fn a_run_is_live_until_its_guard_drops() {
        let records = Records::connect("sqlite::memory:").await.unwrap();
        let first = records.live_run("r1");
        let second = records.clone().live_run("r2");
        let mut ids = records.live.ids();
        ids.sort();
        assert_eq!(ids, ["r1", "r2"]);
        drop(first);
        assert_eq!(records.live.ids(), ["r2"]);
        drop(second);
        assert!(records.live.ids().is_empty());
    }
}
