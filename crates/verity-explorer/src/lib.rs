//! The explorer: the pages a person reads to see what a network is doing — an overview, jobs
//! with their auctions, timelines, results and provenance, providers ranked by trust with the
//! score explained term by term, validators with their audit records, and blocks.
//!
//! Every node serves it beside the API (same port). Pages are rendered on the server from the
//! same views the JSON API returns ([`Source`] is the seam: the node implements it, unit tests
//! use fixtures), with a little plain JavaScript for live updates (the API's event stream) and
//! the "verify" button (the API's verifier endpoint). No build step, no external assets.

use std::sync::Arc;

use axum::Router;
use verity_api::{
    BlockView, Head, JobPage, JobQuery, JobView, NetworkStats, ProvenanceView, ProviderView,
    Resolution,
};
use verity_ledger::trust::AuditorProfile;
use verity_types::{Address, JobId};

mod format;
mod pages;
mod routes;

pub use routes::PAGES;

/// What a node could not read (a storage error): shown as a 500 page, never a panic.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// What the overview shows of a recent block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSummary {
    pub height: u64,
    pub timestamp_ms: u64,
    pub proposer: Address,
    pub txs: usize,
}

/// Where the explorer reads from: the node's committed state and stored blocks, as the API's
/// views. Reads are synchronous (in-memory state, database reads for blocks); the explorer
/// calls them on blocking threads, off the async executor.
pub trait Source: Send + Sync + 'static {
    fn head(&self) -> Head;
    fn stats(&self) -> NetworkStats;
    /// A page of jobs as `GET /v1/jobs` returns it; `Err` says what is wrong with the query.
    fn jobs(&self, query: &JobQuery) -> Result<JobPage, String>;
    /// The newest jobs, by submission height.
    fn recent_jobs(&self, count: usize) -> Vec<verity_api::JobSummary>;
    fn job(&self, id: &JobId) -> Option<JobView>;
    fn provenance(&self, id: &JobId) -> Option<ProvenanceView>;
    /// Providers, best trust score first.
    fn providers(&self) -> Vec<ProviderView>;
    fn provider(&self, address: &Address) -> ProviderView;
    fn auditors(&self) -> Vec<AuditorProfile>;
    fn block(&self, height: u64) -> Result<Option<BlockView>, SourceError>;
    /// The newest `count` blocks, newest first (without their transactions' outcomes).
    fn recent_blocks(&self, count: usize) -> Vec<BlockSummary>;
    /// What an id prefix names; `Err` says why it is not a valid prefix.
    fn resolve(&self, prefix: &str) -> Result<Resolution, String>;
}

/// The explorer's pages and assets, for the node to merge beside its API.
pub fn router<S: Source>(source: Arc<S>) -> Router {
    routes::router(source)
}

/// A page's address for a route of [`PAGES`] and an id (pages and API routes share one
/// template syntax).
pub fn page_path(template: &str, id: impl std::fmt::Display) -> String {
    verity_api::routes::path(template, id)
}
