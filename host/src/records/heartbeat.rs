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
//!
//! A heartbeat that finds one of its runs claimed by another process (a host that was taken
//! for stopped, say frozen for longer than the stale time, then woke up) tells that run, and
//! the executor stops it ([`LiveRun::taken_over`]): the run is the other process's now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

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
    /// Its process ran on this machine and is gone (`/proc`).
    Exited,
    /// Its host has been silent past [`HEARTBEAT_STALE_AFTER`].
    Gone,
    /// Nothing to tell it by (a row from before heartbeats, on another machine).
    Unknown,
}

/// Judges a run's host from its row: `host` (the recorded process), `heartbeat_at` and the
/// time now, all in microseconds.
pub fn run_host(host: Option<&str>, heartbeat_at: Option<i64>, now: i64) -> RunHost {
    match host.and_then(HostProcess::parse).map(|p| p.liveness()) {
        Some(Liveness::Alive) => return RunHost::Alive,
        Some(Liveness::Gone) => return RunHost::Exited,
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

/// The runs this host is running now, each with the signal that it was taken over (shared by
/// the clones of one [`Records`]).
#[derive(Debug, Default)]
pub(crate) struct LiveRuns(Mutex<HashMap<String, Arc<Notify>>>);

impl RunHost {
    /// The run stopped: its process exited, or its host fell silent.
    pub fn stopped(self) -> bool {
        matches!(self, RunHost::Exited | RunHost::Gone)
    }
}

impl LiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Tells run `id`, if it is still live here, that another process holds it now.
    fn taken_over(&self, id: &str) {
        if let Some(signal) = self.lock().get(id) {
            // A stored permit: the run sees it even if it is not waiting at this moment.
            signal.notify_one();
        }
    }
}

/// Keeps a run in the host's heartbeats until dropped (when the run ends, fails, or its
/// future is dropped: a run nobody drives is not reported as running).
pub struct LiveRun {
    runs: Arc<LiveRuns>,
    id: String,
    taken: Arc<Notify>,
}

impl LiveRun {
    pub fn run_id(&self) -> &str {
        &self.id
    }

    /// Completes when a heartbeat finds the run claimed by another process (a resume that
    /// took this host for stopped): the run must stop here.
    pub async fn taken_over(&self) {
        self.taken.notified().await
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        self.runs.lock().remove(&self.id);
    }
}

impl Records {
    /// Counts `run_id` among the runs this host reports as running, until the guard drops.
    pub fn live_run(&self, run_id: &str) -> LiveRun {
        let runs = self.live.clone();
        let taken = Arc::new(Notify::new());
        runs.lock().insert(run_id.to_string(), taken.clone());
        LiveRun {
            runs,
            id: run_id.to_string(),
            taken,
        }
    }

    /// Records, at time `at` (microseconds), that this process still runs each of its live
    /// runs. A run that ended, or that another process has claimed since (a resume after this
    /// host was taken for stopped), is left alone, and a claimed one is told
    /// ([`LiveRun::taken_over`]). Nothing is written when no run is live.
    pub async fn heartbeat(&self, at: i64) -> Result<(), RecordsError> {
        let ids = self.live.ids();
        let changed = self.heartbeat_runs(&ids, at).await?;
        for (id, _) in ids.iter().zip(changed).filter(|(_, n)| *n == 0) {
            // Not matched: the run ended (its guard not yet dropped) or another process holds
            // it. Rare, so read the row to tell which.
            if let Some(run) = self.run_record(id).await? {
                if run.phase == PHASE_RUNNING && run.host.as_deref() != self.process() {
                    self.live.taken_over(id);
                }
            }
        }
        Ok(())
    }

    /// [`Records::heartbeat`] for the given runs (of this process), without telling anyone;
    /// returns the rows each run's update changed (1, or 0 for a run not held any more).
    pub async fn heartbeat_runs(
        &self,
        run_ids: &[String],
        at: i64,
    ) -> Result<Vec<u64>, RecordsError> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
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
            .await
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
