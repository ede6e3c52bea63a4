//! The API's views of the node's state, built once here for both the JSON API and the
//! explorer's pages (`verity_explorer::Source`), so the two never disagree.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use borsh::BorshDeserialize;
use verity_api::{
    BlockFinality, BlockTx, BlockView, ConsensusView, Head, JobPage, JobQuery, JobSummary, JobView,
    NetworkStats, ProvenanceView, ProviderView, StateProof, VoterView,
};
use verity_ledger::{
    Account, EntryKind, Job, JobPhase, JobState, Provenance, StakeInfo, State, TrustProfile,
};
use verity_store::StoreError;
use verity_types::merkle::InclusionProof;
use verity_types::{Address, BlockId, Digest, JobId, TxBody};

use super::MAX_PAGE;
use crate::error::StorageError;
use crate::node::Node;
use crate::storage::ArchiveRow;

/// Blocks in the recent window `stats` counts results over.
pub const STATS_WINDOW_BLOCKS: u64 = 100;

pub fn head(node: &Node) -> Head {
    let (s, state_root) = node.state_with_root();
    Head {
        chain_id: s.chain_id.clone(),
        height: s.height,
        timestamp_ms: s.timestamp_ms,
        state_root,
        mempool: node.mempool_len(),
        providers_online: node.providers_online(online_window(node)),
        block_interval_ms: node.config.block_interval_ms,
        consensus: node.consensus_status().map(|c| ConsensusView {
            validators: c.validators,
            validators_seen: c.validators_seen(),
            voters: c
                .voters
                .iter()
                .map(|v| VoterView {
                    validator: v.validator,
                    last_view: v.last_view,
                    voting: c.is_voting(v),
                })
                .collect(),
            finalized_height: c.finalized_height.max(s.height),
            finalized_view: c.finalized_view,
            current_view: c.current_view,
            last_finalized_ms: c.last_finalized_ms,
            blocks_proposed: c.blocks_proposed,
            blocks_rejected: c.blocks_rejected,
            store_failures: c.store_failures,
            nullified_views: c.nullified_views,
            faults_seen: c.faults_seen,
        }),
        auditor: node.auditor_view(),
    }
}

/// A provider counts as online if it announced itself within ~10 seconds of blocks.
pub fn online_window(node: &Node) -> u64 {
    (10_000 / node.config.block_interval_ms.max(1)).max(4)
}

/// `job` as the API shows it, at `state`'s height; `archived` if it came from the archive.
/// `job` is as its client submitted it, source inline ([`Node::job_anywhere`] reads it so).
pub fn job_view(state: &State, job: Job, archived: bool) -> JobView {
    let failure = match job.state() {
        JobState::Expired | JobState::Slashed | JobState::Overturned => {
            job.timeline.last().map(|e| e.note.clone())
        }
        _ => None,
    };
    JobView {
        lock_deadline: job.lock_deadline(),
        deadline: job.deadline(),
        current_price: job
            .request
            .offer
            .price_at(state.height.saturating_sub(job.submitted_height)),
        failure,
        job,
        archived,
    }
}

pub fn check_limit(limit: usize) -> Result<(), String> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(format!("limit must be between 1 and {MAX_PAGE}"));
    }
    Ok(())
}

/// A job's row in the archive's listing table.
pub(crate) fn archive_row(job: &Job) -> ArchiveRow {
    ArchiveRow {
        summary: summary(job),
        fulfiller: job.fulfiller(),
    }
}

fn summary(job: &Job) -> JobSummary {
    JobSummary {
        id: job.id,
        state: job.state(),
        client: job.client,
        program_hash: job.program_hash,
        mode: job.request.mode,
        submitted_height: job.submitted_height,
        locker: job.locker(),
        lock_price: job.lock_price(),
        max_price: job.request.offer.max_price,
        max_cycles: job.request.max_cycles,
    }
}

/// Archived jobs one listing reads at most: past that, it answers with what it found and a
/// cursor to go on from, so a filter that matches little cannot make a request read the
/// whole archive.
pub const MAX_ARCHIVE_SCAN: usize = 10_000;
/// Archived jobs read from the database at a time while listing.
const ARCHIVE_BATCH: usize = 256;

/// One page of jobs in id order, filtered, from the state and the node's archive (jobs that
/// retired from the state); `query.limit` must have passed [`check_limit`]. `next` is the
/// cursor to go on from: after a full page, or after [`MAX_ARCHIVE_SCAN`] archived jobs read.
pub fn jobs(node: &Node, query: &JobQuery) -> Result<JobPage, StorageError> {
    jobs_reading(node, query, ARCHIVE_BATCH, MAX_ARCHIVE_SCAN)
}

/// [`jobs`], reading the archive `batch` jobs at a time and starting no batch once `budget`
/// were read.
fn jobs_reading(
    node: &Node,
    query: &JobQuery,
    batch: usize,
    budget: usize,
) -> Result<JobPage, StorageError> {
    let state = node.state();
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let mut live = match query.after {
        Some(a) => state
            .jobs
            .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
        None => state
            .jobs
            .range((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)),
    }
    .map(|(_, job)| job)
    .peekable();
    let (mut archived, mut archive_from, mut archive_done, mut scanned) =
        (std::collections::VecDeque::new(), query.after, false, 0);
    let mut jobs = Vec::new();
    let mut examined: Option<JobId> = None;
    loop {
        if archived.is_empty() && !archive_done {
            if scanned >= budget {
                return Ok(JobPage {
                    jobs,
                    next: examined,
                });
            }
            let read = node.storage().archived_rows(archive_from.as_ref(), batch)?;
            scanned += read.len();
            archive_done = read.len() < batch;
            archive_from = read.last().map(|r| r.summary.id).or(archive_from);
            archived.extend(read);
        }
        // The smaller id of the two; a job in both (retired at the block being swapped in)
        // is the state's.
        let from_state = match (live.peek(), archived.front()) {
            (None, None) => break,
            (Some(l), Some(a)) => l.id <= a.summary.id,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        let row: ArchiveRow = if from_state {
            let job = live.next().expect("peeked");
            if archived.front().is_some_and(|a| a.summary.id == job.id) {
                archived.pop_front();
            }
            archive_row(&job)
        } else {
            archived.pop_front().expect("looked at")
        };
        let s = &row.summary;
        if query.state.is_some_and(|state| state != s.state)
            || query.client.is_some_and(|c| c != s.client)
            || query
                .provider
                .is_some_and(|p| Some(p) != s.locker && Some(p) != row.fulfiller)
        {
            examined = Some(s.id);
            continue;
        }
        if jobs.len() == limit {
            let next = jobs.last().map(|j: &JobSummary| j.id);
            return Ok(JobPage { jobs, next });
        }
        examined = Some(s.id);
        jobs.push(row.summary);
    }
    Ok(JobPage { jobs, next: None })
}

/// The `count` newest jobs, by submission height (ties by id). A scan of every job: the
/// explorer's overview asks for ten; issue 16's indexed store will replace it.
pub fn recent_jobs(state: &State, count: usize) -> Vec<JobSummary> {
    let mut newest: Vec<_> = state.jobs.values().collect();
    newest.sort_by(|a, b| {
        b.submitted_height
            .cmp(&a.submitted_height)
            .then(a.id.cmp(&b.id))
    });
    newest.iter().take(count).map(|job| summary(job)).collect()
}

/// A finished job's provenance record with its proof against the current state root, from
/// the state store (blocking: call it from a blocking thread). `None` if the job has no
/// record (unknown or not finished).
pub fn provenance(node: &Node, id: &JobId) -> Result<Option<ProvenanceView>, StoreError> {
    let Some(proved) = node
        .state_store()
        .prove(&EntryKind::Provenance.store_key(&id.0.0))?
    else {
        return Ok(None);
    };
    let record = Provenance::try_from_slice(&proved.value)
        .map_err(|e| StoreError::Database(format!("a stored provenance record: {e}")))?;
    Ok(Some(ProvenanceView {
        record,
        proof: InclusionProof {
            proof: proved.proof,
        },
        state_root: proved.at.root,
        height: proved.at.height.unwrap_or(0),
    }))
}

/// One state entry and its proof against the current state root, from the state store
/// (blocking). `None` if there is no such entry.
pub fn state_proof(
    node: &Node,
    kind: EntryKind,
    id: Digest,
) -> Result<Option<StateProof>, StoreError> {
    let Some(proved) = node.state_store().prove(&kind.store_key(&id.0))? else {
        return Ok(None);
    };
    let bad = |e: &dyn std::fmt::Display| StoreError::Database(format!("a stored entry: {e}"));
    let bytes = proved.value.as_slice();
    let value = match kind {
        EntryKind::Account => {
            serde_json::to_value(Account::try_from_slice(bytes).map_err(|e| bad(&e))?)
        }
        EntryKind::Stake => {
            serde_json::to_value(StakeInfo::try_from_slice(bytes).map_err(|e| bad(&e))?)
        }
        EntryKind::Job => serde_json::to_value(Job::try_from_slice(bytes).map_err(|e| bad(&e))?),
        EntryKind::Provenance => {
            serde_json::to_value(Provenance::try_from_slice(bytes).map_err(|e| bad(&e))?)
        }
    }
    .map_err(|e| bad(&e))?;
    Ok(Some(StateProof {
        kind,
        id,
        encoded: BASE64.encode(&proved.value),
        value,
        state_root: proved.at.root,
        height: proved.at.height.unwrap_or(0),
        proof: InclusionProof {
            proof: proved.proof,
        },
    }))
}

pub fn provider_view(node: &Node, state: &State, address: Address) -> ProviderView {
    let stats = state.providers.get(&address).cloned().unwrap_or_default();
    let last = node.last_seen(&address);
    let profile = TrustProfile::of(state, &address);
    ProviderView {
        address,
        stake: state.stakes.get(&address).cloned().unwrap_or_default(),
        trust_score: profile.score,
        profile,
        stats,
        online: last.is_some_and(|h| state.height.saturating_sub(h) <= online_window(node)),
        last_seen_height: last,
    }
}

/// Every staked provider or provider with a record, best score first.
pub fn providers(node: &Node) -> Vec<ProviderView> {
    let state = node.state();
    let mut who: BTreeSet<Address> = state.providers.keys().collect();
    who.extend(
        state
            .stakes
            .iter()
            .filter(|(_, s)| s.provider > 0)
            .map(|(a, _)| a),
    );
    let mut views: Vec<ProviderView> = who
        .into_iter()
        .map(|a| provider_view(node, &state, a))
        .collect();
    views.sort_by(|a, b| {
        b.trust_score
            .cmp(&a.trust_score)
            .then(b.profile.fulfilled.cmp(&a.profile.fulfilled))
            .then(a.address.cmp(&b.address))
    });
    views
}

/// A stored block with each transaction's outcome.
pub fn block(node: &Node, height: u64) -> Result<Option<BlockView>, StorageError> {
    let Some(stored) = node.storage().block(height)? else {
        return Ok(None);
    };
    // The next block names this one's id; only the tip's is computed (hashing the block).
    let id = match node.storage().block(height + 1)? {
        Some(next) => next.parent_id,
        None => stored.to_block().id(),
    };
    let mut txs = Vec::with_capacity(stored.txs.len());
    for tx in &stored.txs {
        let id = tx.id();
        let job_id = match &tx.tx.body {
            TxBody::SubmitJob(_) => Some(JobId::submitted_by(id)),
            body => body.job_id(),
        };
        txs.push(BlockTx {
            id,
            signer: tx.tx.signer,
            nonce: tx.tx.nonce,
            kind: tx.tx.body.kind().to_string(),
            job_id,
            error: node.storage().tx_outcome(&id)?.and_then(|o| o.error),
        });
    }
    Ok(Some(BlockView {
        height,
        id,
        parent_id: stored.parent_id,
        timestamp_ms: stored.header.timestamp_ms,
        proposer: stored.header.proposer,
        state_root: stored.state_root,
        txs,
        finality: finality(node, id)?,
    }))
}

/// Block `id`'s certificate, if this node kept one, checked against the validator set as any
/// client would check it; one that does not check out is reported as none.
fn finality(node: &Node, id: BlockId) -> Result<Option<BlockFinality>, StorageError> {
    let Some(bytes) = node.certificate(&id)? else {
        return Ok(None);
    };
    let state = node.state();
    let validators: Vec<Address> = state.validators.iter().copied().collect();
    Ok(
        verity_consensus::certificate::verify(&state.chain_id, &validators, &bytes, id)
            .ok()
            .map(|c| BlockFinality {
                view: c.view,
                signers: c.signers,
                validators: validators.len(),
            }),
    )
}

/// Jobs by state, and results delivered over the last [`STATS_WINDOW_BLOCKS`] blocks.
pub fn stats(node: &Node) -> Result<NetworkStats, StorageError> {
    let state = node.state();
    let mut jobs_by_state: BTreeMap<JobState, u64> =
        JobState::ALL.into_iter().map(|s| (s, 0)).collect();
    // The window opens at a stored block (block 1 at the earliest, or the block a node that
    // started by state sync started at), whose time it starts at.
    let first = node.storage().synced_from()?.unwrap_or(1);
    let start = state.height.saturating_sub(STATS_WINDOW_BLOCKS).max(first);
    let start_ms = node
        .storage()
        .block(start)?
        .map_or(state.timestamp_ms, |b| b.header.timestamp_ms);
    let (mut results, mut proofs) = (0, 0);
    // Jobs that retired from the state still count, from the archive's tally.
    for (name, n) in node.storage().archived_counts()? {
        if let Ok(s) = name.parse::<JobState>() {
            *jobs_by_state.entry(s).or_default() += n;
        }
    }
    for job in state.jobs.values() {
        *jobs_by_state.entry(job.state()).or_default() += 1;
        // The result the job stands on: an overturned job's is the challenger's proof.
        let delivered = match &job.phase {
            JobPhase::Overturned { correction, .. } => Some((correction.height, true)),
            phase => phase.delivery().map(|d| (d.height, d.proof_hash.is_some())),
        };
        if let Some((_, proven)) = delivered.filter(|(height, _)| *height > start) {
            results += 1;
            proofs += u64::from(proven);
        }
    }
    Ok(NetworkStats {
        jobs_by_state,
        window_blocks: state.height.saturating_sub(start),
        window_ms: state.timestamp_ms.saturating_sub(start_ms),
        results_in_window: results,
        proofs_in_window: proofs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_ledger::ChangeSet;
    use verity_types::{Digest, ProgramHash};

    use crate::storage::StoredBlock;
    use crate::{NodeConfig, devnet};

    fn id(i: u8) -> JobId {
        JobId(Digest([i; 32]))
    }

    /// A node whose archive holds jobs 1 to 7 (clients alternate), and none in its state.
    fn archived_node(dir: &std::path::Path) -> std::sync::Arc<Node> {
        let node = Node::open(NodeConfig::new(dir.to_path_buf(), devnet::genesis())).unwrap();
        let jobs: Vec<Job> = (1..=7u8)
            .map(|i| {
                Job::submitted(
                    id(i),
                    Address([i % 2; 32]),
                    ProgramHash(Digest([0; 32])),
                    false,
                    verity_testkit::fib_job(1),
                    1,
                )
            })
            .collect();
        let block = StoredBlock {
            parent_id: BlockId(Digest([8; 32])),
            header: verity_ledger::BlockHeader {
                chain_id: "test".into(),
                height: 99,
                timestamp_ms: 0,
                parent: Digest([0; 32]),
                proposer: Address([0; 32]),
            },
            txs: vec![],
            state_root: Digest([0; 32]),
        };
        node.storage()
            .commit_block(
                &BlockId(Digest([9; 32])),
                &block,
                &ChangeSet::new(),
                0,
                &[],
                &[],
                &jobs
                    .iter()
                    .map(|j| (j.clone(), archive_row(j)))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        node
    }

    fn ids(page: &JobPage) -> Vec<JobId> {
        page.jobs.iter().map(|j| j.id).collect()
    }

    #[test]
    fn a_listing_reads_a_bounded_part_of_the_archive_and_says_where_to_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let node = archived_node(dir.path());
        let all = JobQuery {
            limit: Some(3),
            ..Default::default()
        };
        // A page, then the rest from its cursor: every archived job once, in id order.
        let first = jobs_reading(&node, &all, 2, 100).unwrap();
        assert_eq!(
            (ids(&first), first.next),
            (vec![id(1), id(2), id(3)], Some(id(3)))
        );
        let rest = jobs_reading(
            &node,
            &JobQuery {
                after: first.next,
                limit: Some(50),
                ..Default::default()
            },
            2,
            100,
        )
        .unwrap();
        assert_eq!(
            (ids(&rest), rest.next),
            (vec![id(4), id(5), id(6), id(7)], None)
        );

        // A filter nothing matches stops reading after the budget (4 jobs, 2 at a time) and
        // says where it got to; going on from there reaches the end.
        let nobody = JobQuery {
            client: Some(Address([7; 32])),
            limit: Some(50),
            ..Default::default()
        };
        let page = jobs_reading(&node, &nobody, 2, 4).unwrap();
        assert_eq!((ids(&page), page.next), (vec![], Some(id(4))));
        let page = jobs_reading(
            &node,
            &JobQuery {
                after: page.next,
                ..nobody.clone()
            },
            2,
            4,
        )
        .unwrap();
        assert_eq!((ids(&page), page.next), (vec![], None));

        // Filters apply to archived jobs as to the state's.
        let odd = jobs_reading(
            &node,
            &JobQuery {
                client: Some(Address([1; 32])),
                limit: Some(50),
                ..Default::default()
            },
            2,
            100,
        )
        .unwrap();
        assert_eq!(ids(&odd), vec![id(1), id(3), id(5), id(7)]);
        // And they are counted by their state.
        assert_eq!(stats(&node).unwrap().jobs_by_state[&JobState::Submitted], 7);
    }
}
