//! The node core: the current state, the mempool, storage and the event stream, and
//! `commit`, the one door through which blocks enter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::sync::broadcast;
use tracing::{info, warn};
use verity_consensus::{CommitError, ConsensusStatus, Gossip, Share, StatusHandle};
use verity_ledger::{
    Block, BlockOutcome, ChangeSet, Event, Genesis, SealedBlock, State, genesis_block_id,
};
use verity_store::{Staged, StateStore};
use verity_types::{Address, BlockId, Digest, JobId, SignedTx, TxBody, TxId};

use crate::error::{NodeError, StorageError};
use crate::mempool::{AdmitError, Mempool};
use crate::metrics::Metrics;
use verity_api::AuditorView;

/// Reads the auditor's counters (the node does not know the auditor, which uses the node).
type AuditorViewFn = Box<dyn Fn() -> AuditorView + Send + Sync>;
use crate::storage::{Storage, StoredBlock, TxOutcome};

/// Minimum milliseconds between blocks unless configured (the devnet's 250 ms).
pub const DEFAULT_BLOCK_INTERVAL_MS: u64 = 250;

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub genesis: Genesis,
    pub block_interval_ms: u64,
    pub mempool_limit: usize,
    pub max_tx_bytes: usize,
}

impl NodeConfig {
    pub fn new(data_dir: PathBuf, genesis: Genesis) -> NodeConfig {
        NodeConfig {
            data_dir,
            genesis,
            block_interval_ms: DEFAULT_BLOCK_INTERVAL_MS,
            mempool_limit: 10_000,
            max_tx_bytes: 1024 * 1024,
        }
    }
}

pub struct Node {
    pub config: NodeConfig,
    storage: Storage,
    /// The authenticated state (QMDB): its root is the state root blocks name.
    store: StateStore,
    /// The committed state, its block id and the state root after it (one lock: they change
    /// together).
    head: RwLock<(Arc<State>, BlockId, Digest)>,
    genesis_id: BlockId,
    /// Set when consensus runs: sends admitted transactions to the other validators.
    gossip: OnceLock<Gossip>,
    /// Set when consensus runs: shares accepted heartbeats with the other validators.
    pub(crate) share: OnceLock<Share>,
    consensus: OnceLock<StatusHandle>,
    /// What the auditor running against this node reports (registered when it starts).
    auditor: OnceLock<AuditorViewFn>,
    mempool: Mutex<Mempool>,
    events: broadcast::Sender<Event>,
    heartbeats: Mutex<BTreeMap<Address, u64>>,
    /// Finalization certificates not yet written (see [`Node::certified`]).
    pending_certificates: Mutex<BTreeMap<BlockId, Vec<u8>>>,
    metrics: Arc<Metrics>,
}

/// Blocks between two prunes of the state store.
const STATE_PRUNE_INTERVAL: u64 = 256;

/// Certificates held between commits: far more than arrive between two blocks.
const MAX_PENDING_CERTIFICATES: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data itself is still consistent because
    // every mutation here is a single assignment or a bounded queue operation.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Opens the node's database, resuming from the last committed block, or starting from
    /// genesis on first run.
    pub fn open(config: NodeConfig) -> Result<Arc<Node>, NodeError> {
        let storage = Storage::open(&config.data_dir)?;
        let mut genesis_state = State::from_genesis(&config.genesis)?;
        let genesis_id = genesis_block_id(&genesis_state);
        // Genesis is the state store's first commit (height 0): blocks change it from there.
        let genesis_changes = genesis_state.drain_changes();
        let state = match storage.load_state()? {
            Some(state) => {
                if state.chain_id != config.genesis.chain_id {
                    return Err(NodeError::WrongChain {
                        dir: config.data_dir.clone(),
                        found: state.chain_id,
                        expected: config.genesis.chain_id.clone(),
                    });
                }
                info!(
                    height = state.height,
                    "resuming from the last committed block"
                );
                state
            }
            None => {
                // The database's state starts as genesis, entry by entry, like the store's.
                storage.put_genesis_state(&genesis_changes)?;
                genesis_state
            }
        };
        // A genesis with the same chain id but other contents (accounts, stakes, params)
        // would replay differently: the first block names the genesis it followed.
        if let Some(first) = storage.block(1)?
            && first.parent_id != genesis_id
        {
            return Err(NodeError::WrongGenesis {
                dir: config.data_dir.clone(),
                found: first.parent_id,
                expected: genesis_id,
            });
        }
        let tip_id = match storage.block(state.height)? {
            Some(block) => block.to_block().id(),
            None => genesis_id,
        };
        let store_dir = config.data_dir.join("state");
        let store = open_state_store(&storage, &store_dir, state.height, &genesis_changes)?;
        let root = store.committed()?.root;
        let (events, _) = broadcast::channel(4096);
        let metrics = Arc::new(Metrics::new());
        let observed = metrics.clone();
        if !verity_vm::observe_verifications(move |took, valid| {
            observed.proof_verified(took, valid)
        }) {
            // A second node in one process (tests): the first node's metrics count for both.
            tracing::debug!("proof verifications are already observed in this process");
        }
        Ok(Arc::new(Node {
            mempool: Mutex::new(Mempool::new(config.mempool_limit, config.max_tx_bytes)),
            config,
            storage,
            store,
            head: RwLock::new((Arc::new(state), tip_id, root)),
            genesis_id,
            gossip: OnceLock::new(),
            share: OnceLock::new(),
            consensus: OnceLock::new(),
            auditor: OnceLock::new(),
            events,
            heartbeats: Mutex::new(BTreeMap::new()),
            pending_certificates: Mutex::new(BTreeMap::new()),
            metrics,
        }))
    }

    /// A snapshot of the current state (cheap: shared, immutable).
    pub fn state(&self) -> Arc<State> {
        self.head
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The id of the last committed block.
    pub fn tip_id(&self) -> BlockId {
        self.head.read().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The committed state, its block id and the state root after it, read together.
    pub fn head(&self) -> (Arc<State>, BlockId, Digest) {
        self.head.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stages a block's changes on the committed state (a block this node executes itself).
    fn stage_on_tip(&self, height: u64, changes: &ChangeSet) -> Result<Staged, CommitError> {
        self.store
            .stage(None, height, changes)
            .map_err(|e| CommitError::Storage(e.to_string()))
    }

    /// The state store: proofs of current entries against the head's root.
    pub fn state_store(&self) -> &StateStore {
        &self.store
    }

    /// The committed state and its state root, read together.
    pub fn state_with_root(&self) -> (Arc<State>, Digest) {
        let head = self.head.read().unwrap_or_else(|e| e.into_inner());
        (head.0.clone(), head.2)
    }

    /// Connects the node to a running consensus engine: admitted transactions are gossiped to
    /// the other validators, and `status` feeds the API.
    pub fn attach_consensus(&self, status: StatusHandle, gossip: Gossip) {
        let _ = self.consensus.set(status);
        let _ = self.gossip.set(gossip);
    }

    /// Shares the heartbeats this node accepts with the other validators.
    pub fn attach_share(&self, share: Share) {
        let _ = self.share.set(share);
    }

    /// Registers the auditor running against this node (for the API).
    pub fn attach_auditor(&self, view: impl Fn() -> AuditorView + Send + Sync + 'static) {
        let _ = self.auditor.set(Box::new(view));
    }

    pub fn auditor_view(&self) -> Option<AuditorView> {
        self.auditor.get().map(|view| view())
    }

    /// Consensus progress, when this node is a validator of a multi-validator network.
    pub fn consensus_status(&self) -> Option<ConsensusStatus> {
        self.consensus.get().map(StatusHandle::get)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Keeps block `id`'s finalization certificate (`verity_consensus::certificate`): in
    /// memory until the next block's commit writes it (consensus reports from its voting
    /// task, which must not wait for the database). A later one for the same block replaces
    /// it (both are valid).
    pub fn certified(&self, id: BlockId, certificate: &[u8]) {
        let mut pending = lock(&self.pending_certificates);
        if pending.len() >= MAX_PENDING_CERTIFICATES {
            pending.pop_first();
        }
        pending.insert(id, certificate.to_vec());
    }

    /// Block `id`'s finalization certificate, if this node saw one.
    pub fn certificate(&self, id: &BlockId) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(c) = lock(&self.pending_certificates).get(id) {
            return Ok(Some(c.clone()));
        }
        self.storage.blob(&certificate_key(id))
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn submit(&self, tx: SignedTx) -> Result<TxId, AdmitError> {
        // Pool first, then state: `commit` changes both under the pool lock, so admission
        // never sees a pruned pool with the old state's nonces.
        let mut pool = lock(&self.mempool);
        let admitted = pool.admit(tx.clone(), &self.state());
        drop(pool);
        self.admitted(&tx, admitted)
    }

    /// Signs `body` with `key` at the signer's next nonce and admits it, under the pool lock:
    /// the node's own tasks (auditor, canaries) sending from one key at once cannot pick the
    /// same nonce.
    pub fn sign_and_submit(
        &self,
        key: &verity_types::Keypair,
        body: verity_types::TxBody,
    ) -> Result<TxId, AdmitError> {
        let mut pool = lock(&self.mempool);
        let state = self.state();
        let tx = verity_types::Tx {
            chain_id: state.chain_id.clone(),
            signer: key.address(),
            nonce: pool.next_nonce(&state, &key.address()),
            body,
        }
        .sign(key);
        let admitted = pool.admit(tx.clone(), &state);
        drop(pool);
        self.admitted(&tx, admitted)
    }

    /// After a transaction from this node's API or tasks reached the pool: counted, and if
    /// taken, gossiped to the other validators.
    fn admitted(
        &self,
        tx: &SignedTx,
        admitted: Result<TxId, AdmitError>,
    ) -> Result<TxId, AdmitError> {
        self.metrics
            .admission(admitted.as_ref().err().map(AdmitError::reason));
        let id = admitted?;
        if let Some(gossip) = self.gossip.get() {
            gossip(tx);
        }
        Ok(id)
    }

    pub fn mempool_len(&self) -> usize {
        lock(&self.mempool).len()
    }

    pub fn mempool_contains(&self, id: &TxId) -> bool {
        lock(&self.mempool).contains(id)
    }

    pub fn next_nonce(&self, who: &Address) -> u64 {
        let pool = lock(&self.mempool);
        pool.next_nonce(&self.state(), who)
    }

    /// Transactions for the next block, oldest first. They stay in the pool (and count as
    /// pending) until a block including them is committed.
    pub fn candidates(&self, max: usize) -> Vec<SignedTx> {
        let params = self.state().params.clone();
        lock(&self.mempool).peek(
            max,
            params.max_block_bytes as usize,
            params.max_block_assembly_ops,
        )
    }

    /// Records that `who` announced itself at `height`, unless it already had at a later one;
    /// `true` if this is its newest heartbeat.
    pub fn record_heartbeat(&self, who: Address, height: u64) -> bool {
        let mut heartbeats = lock(&self.heartbeats);
        let newer = heartbeats.get(&who).is_none_or(|seen| *seen < height);
        if newer {
            heartbeats.insert(who, height);
        }
        newer
    }

    /// The height a provider last announced itself at.
    pub fn last_seen(&self, who: &Address) -> Option<u64> {
        lock(&self.heartbeats).get(who).copied()
    }

    /// Providers seen within the last `window` blocks.
    pub fn providers_online(&self, window: u64) -> usize {
        let h = self.state().height;
        lock(&self.heartbeats)
            .values()
            .filter(|seen| h.saturating_sub(**seen) <= window)
            .count()
    }

    /// Applies an ordered block and makes it durable before anyone can see it. This is the seam
    /// between ordering (a block producer, later consensus) and execution (the ledger).
    /// CPU-heavy (it verifies proofs): call it from a blocking thread.
    pub fn commit(&self, block: &SealedBlock) -> Result<BlockOutcome, CommitError> {
        self.commit_inner(block, None)
    }

    /// `executed`: the block already executed on the tip's state by consensus, which verified
    /// it that way before voting; the ledger is deterministic, so it is used as is.
    fn commit_inner(
        &self,
        block: &SealedBlock,
        executed: Option<verity_consensus::Executed>,
    ) -> Result<BlockOutcome, CommitError> {
        let (header, txs) = (block.header.clone(), block.txs.clone());
        let (state, tip_id, root) = self.head();
        if block.parent_id != tip_id {
            return Err(CommitError::NotOnTip {
                height: header.height,
            });
        }
        let (next, outcome, staged) = match executed {
            Some(e)
                if e.state.height == header.height && e.outcome.tx_results.len() == txs.len() =>
            {
                (e.state, (*e.outcome).clone(), e.staged)
            }
            _ => {
                let invalid = |reason: String| CommitError::Invalid {
                    height: header.height,
                    reason,
                };
                if header.parent != root {
                    return Err(invalid(format!(
                        "it names state root {} as its parent's, which is {root}",
                        header.parent
                    )));
                }
                let mut next = (*state).clone();
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                let outcome =
                    verity_ledger::apply_block_parallel(&mut next, &header, &txs, threads)
                        .map_err(|e| invalid(e.to_string()))?;
                let staged = self.stage_on_tip(header.height, &outcome.changes)?;
                (Arc::new(next), outcome, staged)
            }
        };
        // The state store commits first: if the node dies before the block is in the database,
        // the next start rolls the store back to the database's height (`open_state_store`).
        let committed = self
            .store
            .commit(staged.id)
            .map_err(|e| CommitError::Storage(e.to_string()))?;

        let (outcomes, mut blobs) = tx_records(&header, &txs, &outcome);
        let id = block.id();
        let included: BTreeSet<TxId> = block.txs.iter().map(SignedTx::id).collect();
        let block = StoredBlock {
            parent_id: block.parent_id,
            header: header.clone(),
            txs,
            state_root: committed.root,
        };
        // Certificates consensus reported since the last commit are written with this block
        // (its transaction), never from consensus's own task.
        blobs.extend(
            std::mem::take(&mut *lock(&self.pending_certificates))
                .into_iter()
                .map(|(id, c)| (certificate_key(&id), c)),
        );
        self.storage
            .commit_block(
                &id,
                &block,
                &outcome.changes,
                committed.size,
                &outcomes,
                &blobs,
            )
            .map_err(|e| CommitError::Storage(e.0))?;
        let height = next.height;
        if height % STATE_PRUNE_INTERVAL == 0 {
            // Bounds the store's log; what is dropped is older than any commit a restart may
            // roll back to (see `StateStore::prune`).
            if let Err(e) = self.store.prune() {
                warn!(height, "cannot prune the state store: {e}");
            }
        }
        let mut pool = lock(&self.mempool);
        let orphaned = pool.prune(&next, &included);
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = (next, id, committed.root);
        drop(pool);
        self.record_orphans(&orphaned, height);
        self.metrics.block_committed(
            header.timestamp_ms,
            crate::clock::Clock::unix_ms(&crate::clock::SystemClock),
            &outcome,
        );
        for event in &outcome.events {
            info!(height = event.height, job = %event.job_id.short(), state = %event.state, "{}", event.note);
            let _ = self.events.send(event.clone());
        }
        Ok(outcome)
    }
}

/// What a committed block stores per transaction: its outcome (and the ledger's reason for a
/// rejection), and the blobs kept by hash: accepted proofs, for receipts, and sealed private
/// inputs by job, for its locker.
#[allow(clippy::type_complexity)] // two parallel lists the storage writes in one transaction
fn tx_records(
    header: &verity_ledger::BlockHeader,
    txs: &[SignedTx],
    outcome: &BlockOutcome,
) -> (Vec<(TxId, TxOutcome)>, Vec<(Digest, Vec<u8>)>) {
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut blobs = Vec::new();
    for (tx, result) in txs.iter().zip(&outcome.tx_results) {
        let error = result.as_ref().err().map(|e| e.to_string());
        if let Some(e) = &error {
            warn!(tx = %tx.id().short(), signer = %tx.tx.signer.short(), "transaction rejected: {e}");
        }
        if result.is_ok() {
            match &tx.tx.body {
                TxBody::Fulfil { proof: Some(p), .. } | TxBody::Challenge { proof: p, .. } => {
                    blobs.push((Digest::blake3(p), p.clone()));
                }
                TxBody::ProvideInputs { job_id, sealed } => {
                    blobs.push((private_inputs_key(job_id), sealed.clone()));
                }
                _ => {}
            }
        }
        outcomes.push((
            tx.id(),
            TxOutcome {
                height: header.height,
                error,
            },
        ));
    }
    (outcomes, blobs)
}

impl Node {
    /// Remembers why a transaction left the pool without being included, so its sender can
    /// ask (`GET /v1/txs/{id}`).
    fn record_dropped(&self, id: &TxId, height: u64, reason: &str) {
        let outcome = TxOutcome {
            height,
            error: Some(format!("dropped before inclusion: {reason}")),
        };
        if let Err(e) = self.storage.put_tx_outcome(id, &outcome) {
            warn!("cannot record a dropped transaction: {e:#}");
        }
    }

    fn record_orphans(&self, orphaned: &[SignedTx], height: u64) {
        for tx in orphaned {
            self.record_dropped(
                &tx.id(),
                height,
                "an earlier transaction from this account was dropped, leaving a nonce gap",
            );
        }
    }
}

/// The node as consensus sees it: the committed chain in its database, and its mempool.
impl verity_consensus::Chain for Node {
    fn genesis_id(&self) -> BlockId {
        self.genesis_id
    }

    fn tip(&self) -> verity_consensus::Tip {
        let (state, id, root) = self.head();
        verity_consensus::Tip {
            height: state.height,
            id,
            state,
            root,
        }
    }

    fn stage(
        &self,
        parent: Option<Staged>,
        height: u64,
        changes: &ChangeSet,
    ) -> Result<Staged, CommitError> {
        self.store
            .stage(parent, height, changes)
            .map_err(|e| CommitError::Storage(e.to_string()))
    }

    fn commit(
        &self,
        block: &SealedBlock,
        executed: Option<verity_consensus::Executed>,
    ) -> Result<(), CommitError> {
        self.commit_inner(block, executed).map(|_| ())
    }

    fn block_by_id(&self, id: &BlockId) -> Option<Block> {
        let height = logged(self.storage.height_of(id))??;
        self.block_at(height)
    }

    fn block_at(&self, height: u64) -> Option<Block> {
        Some(logged(self.storage.block(height))??.to_block())
    }

    fn candidates(&self, max: usize) -> Vec<SignedTx> {
        Node::candidates(self, max)
    }

    fn certified(&self, id: BlockId, certificate: &[u8]) {
        Node::certified(self, id, certificate);
    }

    fn admit(&self, tx: SignedTx) {
        // Gossip is best effort: a copy we already hold, or one that arrives out of nonce
        // order, is simply not taken (the node that admitted it still proposes it).
        let mut pool = lock(&self.mempool);
        let admitted = pool.admit(tx, &self.state());
        drop(pool);
        self.metrics
            .gossip_admission(admitted.err().as_ref().map(AdmitError::reason));
    }

    fn heard(&self, note: &[u8]) {
        self.heartbeat_shared(note);
    }

    fn discard(&self, tx: &SignedTx, reason: &str) {
        let id = tx.id();
        let mut pool = lock(&self.mempool);
        let state = self.state();
        let orphaned = pool.prune(&state, &BTreeSet::from([id]));
        drop(pool);
        self.record_dropped(&id, state.height + 1, reason);
        self.record_orphans(&orphaned, state.height + 1);
    }
}

/// Opens the state store in `dir` at the database's `height`: writes genesis into a new one;
/// rolls back one a block ahead (a crash between the store's commit and the database's).
fn open_state_store(
    storage: &Storage,
    dir: &std::path::Path,
    height: u64,
    genesis: &ChangeSet,
) -> Result<StateStore, NodeError> {
    let store = StateStore::open(dir)?;
    let committed = store.committed()?;
    let mismatch = || NodeError::StoreMismatch {
        dir: dir.to_path_buf(),
        store: committed
            .height
            .map_or_else(|| "none (empty)".into(), |h| h.to_string()),
        blocks: height,
    };
    match committed.height {
        None if height == 0 => {
            let written = store.write(0, genesis)?;
            storage.put_state_size(0, written.size)?;
        }
        Some(h) if h == height => {
            if storage.state_size(h)?.is_none() {
                storage.put_state_size(h, committed.size)?;
            }
        }
        Some(h) if h == height + 1 => {
            let size = storage.state_size(height)?.ok_or_else(mismatch)?;
            drop(store);
            warn!(
                height,
                "the state store was a block ahead of the database: rolling it back"
            );
            let store = StateStore::open_at(dir, Some(size))?;
            if store.committed()?.height != Some(height) {
                return Err(mismatch());
            }
            return Ok(store);
        }
        _ => return Err(mismatch()),
    }
    Ok(store)
}

/// Where a node keeps a job's sealed private inputs (from the ledger's `ProvideInputs`).
pub fn private_inputs_key(job: &JobId) -> Digest {
    Digest::blake3(format!("private/{job}").as_bytes())
}

/// A storage read for a peer: a failure is logged, and the peer gets nothing (it asks another).
fn logged<T>(read: Result<T, StorageError>) -> Option<T> {
    read.map_err(|e| warn!("cannot serve a block to a peer: {e}"))
        .ok()
}

/// Where a block's certificate is kept among the blobs.
fn certificate_key(id: &BlockId) -> Digest {
    Digest::blake3(format!("certificate/{id}").as_bytes())
}
