//! What `sluice gc` needs from the records: finished runs older than a cut-off, and marking
//! them purged together with the cache entries that pointed into them.

use super::backend::Kind;
use super::runs::PHASE_RUNNING;
use super::{now_micros, Records, RecordsError};

/// A finished run whose objects gc may remove.
#[derive(Debug, Clone)]
pub struct PurgeCandidate {
    pub run_id: String,
    pub project: String,
    pub domain: String,
    pub raw_data_path: Option<String>,
    pub ended_at: i64,
}

impl Records {
    /// Finished runs that ended before `ended_before` (microseconds) and are not purged yet.
    pub async fn purge_candidates(
        &self,
        ended_before: i64,
    ) -> Result<Vec<PurgeCandidate>, RecordsError> {
        let rows = self
            .backend()
            .query(
                "listing old runs",
                "SELECT id, project, domain, raw_data_path, ended_at FROM runs \
                 WHERE phase <> $1 AND ended_at < $2 AND purged_at IS NULL ORDER BY id",
                vec![PHASE_RUNNING.into(), ended_before.into()],
                &[Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| PurgeCandidate {
                run_id: r[0].text().unwrap_or_default(),
                project: r[1].text().unwrap_or_default(),
                domain: r[2].text().unwrap_or_default(),
                raw_data_path: r[3].text(),
                ended_at: r[4].int().unwrap_or_default(),
            })
            .collect())
    }

    /// Marks a run purged and removes the cache entries whose outputs were in it; returns how
    /// many entries went.
    pub async fn mark_purged(&self, run_id: &str) -> Result<u64, RecordsError> {
        let changed = self
            .backend()
            .transaction(
                &format!("marking run {run_id} purged"),
                &[
                    (
                        "DELETE FROM cache_entries WHERE run_id = $1",
                        vec![run_id.into()],
                    ),
                    (
                        "UPDATE runs SET purged_at = $1 WHERE id = $2",
                        vec![now_micros().into(), run_id.into()],
                    ),
                ],
            )
            .await?;
        Ok(changed.first().copied().unwrap_or(0))
    }

    /// Cache entries that point into a run (for a dry run of gc).
    pub async fn cache_entries_of_run(&self, run_id: &str) -> Result<u64, RecordsError> {
        let rows = self
            .backend()
            .query(
                "counting cache entries",
                "SELECT COUNT(*) FROM cache_entries WHERE run_id = $1",
                vec![run_id.into()],
                &[Kind::Int],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r[0].int())
            .unwrap_or_default()
            .max(0) as u64)
    }
}
