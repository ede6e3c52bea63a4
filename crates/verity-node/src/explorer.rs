//! The node as the explorer's [`Source`]: the same views the JSON API serves.

use verity_api::{
    BlockView, Head, JobPage, JobQuery, JobSummary, JobView, NetworkStats, ProvenanceView,
    ProviderView, Resolution,
};
use verity_explorer::{BlockSummary, Source, SourceError};
use verity_ledger::trust::AuditorProfile;
use verity_types::{Address, IdPrefix, JobId};

use crate::api::{resolve_prefix, views};
use crate::node::Node;

impl Source for Node {
    fn head(&self) -> Head {
        views::head(self)
    }

    fn stats(&self) -> NetworkStats {
        // A storage error leaves the window empty; the counts by state still show.
        views::stats(self).unwrap_or_else(|_| NetworkStats::default())
    }

    fn jobs(&self, query: &JobQuery) -> Result<JobPage, String> {
        views::check_limit(query.limit.unwrap_or(50))?;
        views::jobs(self, query).map_err(|e| e.to_string())
    }

    fn recent_jobs(&self, count: usize) -> Vec<JobSummary> {
        views::recent_jobs(&self.state(), count)
    }

    fn job(&self, id: &JobId) -> Option<JobView> {
        let (job, archived) = self
            .job_anywhere(id)
            .map_err(|e| tracing::warn!("cannot read an archived job: {e}"))
            .ok()
            .flatten()?;
        Some(views::job_view(&self.state(), job, archived))
    }

    fn provenance(&self, id: &JobId) -> Option<ProvenanceView> {
        views::provenance(self, id)
            .map_err(|e| tracing::warn!("cannot read a provenance record: {e}"))
            .ok()
            .flatten()
    }

    fn providers(&self) -> Vec<ProviderView> {
        views::providers(self)
    }

    fn provider(&self, address: &Address) -> ProviderView {
        views::provider_view(self, &self.state(), *address)
    }

    fn auditors(&self) -> Vec<AuditorProfile> {
        AuditorProfile::all(&self.state())
    }

    fn block(&self, height: u64) -> Result<Option<BlockView>, SourceError> {
        views::block(self, height).map_err(|e| SourceError(e.to_string()))
    }

    fn recent_blocks(&self, count: usize) -> Vec<BlockSummary> {
        let tip = self.state().height;
        (0..count as u64)
            .filter_map(|back| tip.checked_sub(back).filter(|h| *h > 0))
            .filter_map(|h| self.storage().block(h).ok().flatten())
            .map(|b| BlockSummary {
                height: b.header.height,
                timestamp_ms: b.header.timestamp_ms,
                proposer: b.header.proposer,
                txs: b.txs.len(),
            })
            .collect()
    }

    fn resolve(&self, prefix: &str) -> Result<Resolution, String> {
        let prefix: IdPrefix = prefix
            .parse()
            .map_err(|e| format!("`{prefix}` is not an id prefix: {e}"))?;
        resolve_prefix(self, &prefix).map_err(|e| e.to_string())
    }
}
