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
    #[error("run {run}: {source}")]
    Data {
        run: String,
        #[source]
        source: DataError,
    },
}

/// What gc removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub runs: Vec<String>,
    pub objects: u64,
    pub bytes: u64,
    pub cache_entries: u64,
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
        let fail = |source| GcError::Data {
            run: run.run_id.clone(),
            source,
        };
        let prefix = format!("{}/{}/{}", run.project, run.domain, run.run_id);
        let mut places = vec![store.clone()];
        if let Some(url) = &run.raw_data_path {
            places.push(DataStore::open(url).map_err(fail)?);
        }
        for place in &places {
            let usage = if dry_run {
                place.usage(&prefix).await
            } else {
                place.delete_prefix(&prefix).await
            }
            .map_err(fail)?;
            report.objects += usage.objects;
            report.bytes += usage.bytes;
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
