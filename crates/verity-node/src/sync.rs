//! State sync: a node that starts from another node's committed state instead of replaying
//! every block since genesis (`verity node run --sync-from URL`).
//!
//! The peer is not trusted. What the new node believes, and why, in the order it checks:
//! - the snapshot's state root is the one block `height + 1` names in its header, and that
//!   block (or one built on it) carries a finalization certificate of a quorum of the genesis
//!   validators: the same check as certified provenance;
//! - block `height`, which becomes the tip, is that block's parent (by id);
//! - the operation log to fetch is the one that root commits to (QMDB's ops-root witness);
//! - the state store (QMDB) is rebuilt by QMDB's own sync, each batch checked against that
//!   log's root, and reaches the certified root;
//! - the plain entries the ledger runs on are exactly the store's (as many, in key order, each
//!   its value).
//!
//! A lie anywhere fails the sync with an error naming the link that failed, before anything
//! is written to the node's database, and the store it began is removed: the directory can
//! sync again or start from genesis. A sync the peer's pruning overtakes (it no longer holds
//! the log the snapshot named) starts over from a new snapshot, up to [`SYNC_ATTEMPTS`]
//! times.

use std::path::PathBuf;

use verity_api::StateSnapshot;
use verity_client::{CertifiedRoot, Client, ClientError, ProvenanceError, TrustedValidators};
use verity_ledger::{Block, State};
use verity_store::{Fetch, StateStore, StoreError, SyncTarget};
use verity_types::Digest;

use crate::error::StorageError;
use crate::node::{Node, NodeConfig};
use crate::storage::{Storage, StoredBlock};

/// The largest snapshot a syncing node reads (a million accounts are ~100 MB).
pub const MAX_SNAPSHOT_BYTES: usize = 2 << 30;
/// The largest answer to one sync request: [`verity_store::MAX_SYNC_OPS`] operations.
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// Attempts per request: a peer's transient failure (busy, a dropped connection) is retried,
/// waiting longer each time (0.4 s to 25 s, about a minute in all); one that keeps failing
/// ends the sync.
const FETCH_ATTEMPTS: u32 = 8;
/// Syncs begun from a new snapshot when the peer's pruning overtook the last one.
pub const SYNC_ATTEMPTS: u32 = 3;
/// How long the snapshot may take to arrive (a million accounts are ~100 MB).
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// What a sync established.
#[derive(Debug, Clone)]
pub struct Synced {
    pub height: u64,
    pub state_root: Digest,
    pub entries: usize,
    /// Operations of the store's log fetched (from its sync boundary).
    pub operations: u64,
    /// The certified block (the one naming the root, or a descendant) and its signers.
    pub certified_height: u64,
    pub signers: usize,
    pub validators: usize,
}

/// Why a sync failed. Every variant but `Local` and `NotEmpty` means the peer served something
/// that does not check out, or could not serve: try another peer.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "{dir} already holds a chain: state sync starts a node from an empty data directory only"
    )]
    NotEmpty { dir: PathBuf },
    #[error("the peer: {0}")]
    Peer(#[from] ClientError),
    #[error("the peer's snapshot: {0}")]
    BadSnapshot(String),
    #[error("the peer's state is not certified by the genesis validators: {0}")]
    NotCertified(#[from] ProvenanceError),
    #[error("the peer's state store: {0}")]
    Store(#[from] StoreError),
    #[error("this node's database: {0}")]
    Local(#[from] StorageError),
    /// The peer pruned the log the snapshot named before the sync had fetched it (it prunes
    /// every 256 blocks), [`SYNC_ATTEMPTS`] times running.
    #[error(
        "the peer pruned its log past the snapshot before the sync could fetch it, {0} times: a peer that prunes less often, or a faster link, is needed"
    )]
    Overtaken(u32),
}

/// Starts the node in `config.data_dir` from the state of the node at `url`: see the module
/// docs. Refuses a directory that already holds a chain ([`SyncError::NotEmpty`]).
pub async fn sync_from(config: &NodeConfig, url: &str) -> Result<Synced, SyncError> {
    let storage = Storage::open(&config.data_dir)?;
    if storage.has_state()? {
        return Err(SyncError::NotEmpty {
            dir: config.data_dir.clone(),
        });
    }
    let peer = Client::new(url);
    for attempt in 1..=SYNC_ATTEMPTS {
        match sync_once(config, &storage, &peer).await {
            Err(SyncError::Overtaken(_)) if attempt < SYNC_ATTEMPTS => {
                tracing::warn!(
                    attempt,
                    "the peer pruned its log past the snapshot during the sync: starting over from a new snapshot"
                );
            }
            Err(SyncError::Overtaken(_)) => return Err(SyncError::Overtaken(attempt)),
            done => return done,
        }
    }
    Err(SyncError::Overtaken(SYNC_ATTEMPTS))
}

/// One sync, from one snapshot.
async fn sync_once(
    config: &NodeConfig,
    storage: &Storage,
    peer: &Client,
) -> Result<Synced, SyncError> {
    let snapshot = snapshot_from(peer).await?;
    let bad = |reason: String| SyncError::BadSnapshot(reason);
    let block = Block::from_bytes(&snapshot.block).map_err(|e| bad(e.to_string()))?;
    if block.header.height != snapshot.height {
        return Err(bad(format!(
            "its block is block {}, not {}",
            block.header.height, snapshot.height
        )));
    }
    let chain_id = &config.genesis.chain_id;
    if block.header.chain_id != *chain_id {
        return Err(bad(format!(
            "its block is of chain `{}`, not `{chain_id}`",
            block.header.chain_id
        )));
    }

    // The root first: nothing is fetched for a state the validators did not finalize.
    let trusted = TrustedValidators {
        chain_id: chain_id.clone(),
        validators: config.genesis.validators().into_iter().collect(),
    };
    let certified = peer
        .certified_root(snapshot.height, snapshot.state_root, &trusted)
        .await?;
    let tip_id = block.id();
    if certified.parent_id != tip_id {
        return Err(bad(format!(
            "block {} is not the parent of the certified block {}",
            snapshot.height, certified.block_height
        )));
    }

    // The log to fetch must be the one the certified root names (the log root commits to its
    // size): a peer cannot send this node after a log of its own making.
    if !verity_store::verify_ops_root(
        &snapshot.ops_root,
        &snapshot.ops_root_witness,
        &snapshot.state_root,
    ) {
        return Err(bad("its log root is not the certified state root's".into()));
    }
    let store_dir = config.data_dir.join("state");
    // Whatever fails from here, nothing in the database refers to the store yet: it goes,
    // so a new sync (or a start from genesis) finds the directory as it was.
    let synced = finish_sync(config, storage, peer, snapshot, block, &certified).await;
    if synced.is_err() {
        let _ = std::fs::remove_dir_all(&store_dir);
    }
    synced
}

/// The snapshot, waiting out a busy peer (it serves one at a time).
async fn snapshot_from(peer: &Client) -> Result<StateSnapshot, SyncError> {
    let long = peer.clone().with_request_timeout(SNAPSHOT_TIMEOUT);
    let mut attempt = 0;
    loop {
        match long.state_snapshot(MAX_SNAPSHOT_BYTES).await {
            Err(ClientError::Refused { status: 503, .. }) if attempt + 1 < FETCH_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Syncs the store to the snapshot's log, checks the entries against it, and writes them
/// with block `height` to the database.
async fn finish_sync(
    config: &NodeConfig,
    storage: &Storage,
    peer: &Client,
    snapshot: StateSnapshot,
    block: Block,
    certified: &CertifiedRoot,
) -> Result<Synced, SyncError> {
    let bad = |reason: String| SyncError::BadSnapshot(reason);
    let chain_id = &config.genesis.chain_id;
    let store = sync_store(config, peer, &snapshot).await?;
    let committed = store.committed()?;
    if committed.root != snapshot.state_root || committed.height != Some(snapshot.height) {
        return Err(bad(format!(
            "the synced store's root is {} at height {:?}, not the certified {} at {}",
            committed.root, committed.height, snapshot.state_root, snapshot.height
        )));
    }
    let entries = decode_entries(&snapshot.entries, store.active_keys()?)
        .map_err(|e| bad(format!("its entries are not the store's: {e}")))?;
    store
        .holds_exactly(entries.iter().map(|(k, v)| (k, v)))
        .map_err(|e| bad(format!("its entries are not the store's: {e}")))?;
    // Entries the store holds were written by the ledger, so they decode; a state of another
    // height would have another root.
    let state = State::from_entries(entries.iter().cloned())
        .map_err(|e| bad(format!("its entries do not decode: {e}")))?;
    if state.height != snapshot.height || state.chain_id != *chain_id {
        return Err(bad(format!(
            "its state is chain `{}` at height {}",
            state.chain_id, state.height
        )));
    }
    // Durable before the database names it.
    store.flush()?;
    drop(store);

    let stored = StoredBlock {
        parent_id: block.parent_id,
        header: block.header,
        txs: block.txs,
        state_root: snapshot.state_root,
    };
    storage.put_synced(&certified.parent_id, &stored, &entries, committed.size)?;
    Ok(Synced {
        height: snapshot.height,
        state_root: snapshot.state_root,
        entries: entries.len(),
        operations: snapshot.size.saturating_sub(snapshot.lower),
        certified_height: certified.certified_height,
        signers: certified.signers,
        validators: config.genesis.validators().len(),
    })
}

/// A state entry: store key, value.
type Entry = (Vec<u8>, Vec<u8>);

/// The snapshot's entries, which must be `count` (what the synced store holds): decoded one
/// at a time, so a peer claiming more gets an error, not an allocation.
fn decode_entries(bytes: &[u8], count: u64) -> Result<Vec<Entry>, String> {
    use borsh::BorshDeserialize;
    let mut reader = bytes;
    let claimed = u32::deserialize_reader(&mut reader).map_err(|e| e.to_string())?;
    if u64::from(claimed) != count {
        return Err(format!(
            "it lists {claimed} entries, the store holds {count}"
        ));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(claimed as usize);
    for _ in 0..claimed {
        let entry = Entry::deserialize_reader(&mut reader).map_err(|e| e.to_string())?;
        // In key order, each key once (as `State::entries` lists them): a key listed twice
        // would stand in for one left out, and the count would still match.
        if entries.last().is_some_and(|(last, _)| *last >= entry.0) {
            return Err("its keys are not in strictly ascending order".into());
        }
        entries.push(entry);
    }
    if !reader.is_empty() {
        return Err(format!("{} bytes follow its entries", reader.len()));
    }
    Ok(entries)
}

/// Rebuilds the state store in `<dir>/state` by QMDB's sync from `peer`, answering the
/// store's requests here (the store runs on its own thread; fetching is async).
async fn sync_store(
    config: &NodeConfig,
    peer: &Client,
    snapshot: &StateSnapshot,
) -> Result<StateStore, SyncError> {
    let dir = config.data_dir.join("state");
    // Left by an interrupted sync: nothing in the database refers to it yet.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| StorageError(format!("cannot clear {}: {e}", dir.display())))?;
    }
    let target = SyncTarget {
        ops_root: snapshot.ops_root,
        lower: snapshot.lower,
        size: snapshot.size,
    };
    let (fetch, mut requests) = tokio::sync::mpsc::unbounded_channel::<Fetch>();
    let syncing = tokio::task::spawn_blocking(move || StateStore::sync(&dir, target, fetch));
    tokio::pin!(syncing);
    // Set when the peer answers that its log no longer holds what was asked (410).
    let overtaken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        tokio::select! {
            synced = &mut syncing => {
                let synced = synced
                    .map_err(|e| StorageError(format!("the sync's thread failed: {e}")))?;
                return match synced {
                    Err(_) if overtaken.load(std::sync::atomic::Ordering::SeqCst) => {
                        Err(SyncError::Overtaken(1))
                    }
                    other => other.map_err(SyncError::from),
                };
            }
            Some(Fetch { request, reply }) = requests.recv() => {
                let peer = peer.clone();
                let overtaken = overtaken.clone();
                tokio::spawn(async move {
                    let answer = fetch_answer(&peer, request).await;
                    if let Err(FetchError::Pruned(_)) = &answer {
                        overtaken.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    let _ = reply.send(answer.map_err(|e| e.to_string()));
                });
            }
        }
    }
}

/// Why a sync request got no answer.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// The peer's log no longer holds it: asking again cannot help.
    #[error("{0}")]
    Pruned(ClientError),
    #[error("{0}")]
    Failed(String),
}

async fn fetch_answer(
    peer: &Client,
    request: verity_store::SyncRequest,
) -> Result<Vec<u8>, FetchError> {
    let mut last = String::new();
    for attempt in 0..FETCH_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
        }
        match peer.sync_answer(request, MAX_ANSWER_BYTES).await {
            Ok(bytes) => return Ok(bytes),
            Err(e @ ClientError::Refused { status: 410, .. }) => return Err(FetchError::Pruned(e)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(FetchError::Failed(format!("{request:?}: {last}")))
}

impl Node {
    /// The committed state for a node that syncs from this one, read consistently with the
    /// state store's commit (they move together, but not atomically: a block may be in the
    /// store before it is the head, so the read is retried until both agree). `None` at
    /// genesis: a new node starts from the genesis file.
    pub fn state_snapshot(&self) -> Result<Option<StateSnapshot>, crate::NodeError> {
        for _ in 0..100 {
            let (state, _, root) = self.head();
            if state.height == 0 {
                return Ok(None);
            }
            let point = self.state_store().sync_point()?;
            if point.committed.height != Some(state.height) || point.committed.root != root {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            let block = self
                .storage()
                .block(state.height)?
                .ok_or_else(|| StorageError(format!("block {} is missing", state.height)))?;
            // Read from the database: a read that fails would leave an entry out, and the
            // snapshot would be refused by whoever syncs from it; say so here instead.
            let reads = state.watch_reads();
            let entries = state
                .encode_entries()
                .map_err(|e| StorageError(format!("cannot encode the state: {e}")))?;
            reads
                .check(&state)
                .map_err(|why| StorageError(format!("cannot read the state to serve it: {why}")))?;
            return Ok(Some(StateSnapshot {
                height: state.height,
                block: block.to_block().to_bytes(),
                state_root: root,
                ops_root: point.target.ops_root,
                ops_root_witness: point.witness,
                lower: point.target.lower,
                size: point.target.size,
                entries,
            }));
        }
        Err(StorageError("the state store and the head did not settle on one block".into()).into())
    }
}
