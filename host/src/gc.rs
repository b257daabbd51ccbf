//! `sluice gc`: removes the objects of runs that ended long ago (documents, offloaded values,
//! traces, logs and the raw data they created) and the cache entries that pointed into them.
//! Runs still running are never touched; the run rows stay, marked purged.

use std::time::Duration;

use serde::Serialize;

use crate::data::{DataError, DataStore};
use crate::records::{now_micros, Records, RecordsError};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Records(#[from] RecordsError),
}

/// What gc removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub runs: Vec<String>,
    pub objects: u64,
    pub bytes: u64,
    pub cache_entries: u64,
    /// Runs left as they were because a store holding their objects could not be opened or
    /// listed; the next gc tries them again.
    pub skipped: Vec<SkippedRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedRun {
    pub run: String,
    pub reason: String,
}

/// Removes (or, in a dry run, measures) a run's objects in each of its stores; what was
/// removed is added to `report` either way, so a store failing half-way still counts.
async fn purge_objects(
    store: &DataStore,
    raw_data_path: Option<&str>,
    prefix: &str,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<(), DataError> {
    let mut places = vec![store.clone()];
    if let Some(url) = raw_data_path {
        places.push(DataStore::open(url)?);
    }
    for place in &places {
        let usage = if dry_run {
            place.usage(prefix).await
        } else {
            place.delete_prefix(prefix).await
        }?;
        report.objects += usage.objects;
        report.bytes += usage.bytes;
    }
    Ok(())
}

/// Purges every run that ended more than `older_than` ago.
pub async fn collect(
    records: &Records,
    store: &DataStore,
    older_than: Duration,
    dry_run: bool,
) -> Result<GcReport, GcError> {
    let cutoff = now_micros() - older_than.as_micros().min(i64::MAX as u128) as i64;
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    for run in records.purge_candidates(cutoff).await? {
        let prefix = format!("{}/{}/{}", run.project, run.domain, run.run_id);
        // One run's unreachable store (a bucket gone, a raw-data URL that never worked) does
        // not stop the others; the run stays unpurged, and its cache entries stay with it.
        let raw_data_path = run.raw_data_path.as_deref();
        if let Err(e) = purge_objects(store, raw_data_path, &prefix, dry_run, &mut report).await {
            report.skipped.push(SkippedRun {
                run: run.run_id,
                reason: e.to_string(),
            });
            continue;
        }
        report.cache_entries += if dry_run {
            records.cache_entries_of_run(&run.run_id).await?
        } else {
            records.mark_purged(&run.run_id).await?
        };
        report.runs.push(run.run_id);
    }
    Ok(report)
}
