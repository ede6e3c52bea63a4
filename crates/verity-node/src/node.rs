//! The node core: the current state, the mempool, storage and the event stream, and
//! `commit`, the one door through which blocks enter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::sync::broadcast;
use tracing::{info, warn};
use verity_consensus::{CommitError, ConsensusStatus, Gossip, Share, StatusHandle};
use verity_ledger::{
    BlockOutcome, ChangeSet, Event, Genesis, Job, SealedBlock, State, genesis_block_id,
};
use verity_store::{Parent, Staged, StateStore};
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
    /// How many entries of each state table to keep in memory between blocks
    /// ([`HOT_ENTRIES`] unless set).
    pub hot_entries: usize,
}

impl NodeConfig {
    pub fn new(data_dir: PathBuf, genesis: Genesis) -> NodeConfig {
        NodeConfig {
            data_dir,
            genesis,
            block_interval_ms: DEFAULT_BLOCK_INTERVAL_MS,
            mempool_limit: 10_000,
            max_tx_bytes: 1024 * 1024,
            hot_entries: HOT_ENTRIES,
        }
    }
}

pub struct Node {
    pub config: NodeConfig,
    pub(crate) storage: Storage,
    /// The authenticated state (QMDB): its root is the state root blocks name.
    pub(crate) store: StateStore,
    /// Set when a block reached the state store but not the database (a failed write): the
    /// node commits nothing more until a restart rolls the store back.
    store_ahead: std::sync::atomic::AtomicBool,
    /// The committed state, its block id and the state root after it (one lock: they change
    /// together).
    head: RwLock<(Arc<State>, BlockId, Digest)>,
    pub(crate) genesis_id: BlockId,
    /// Set when consensus runs: sends admitted transactions to the other validators.
    gossip: OnceLock<Gossip>,
    /// Set when consensus runs: shares accepted heartbeats with the other validators.
    pub(crate) share: OnceLock<Share>,
    consensus: OnceLock<StatusHandle>,
    /// What the auditor running against this node reports (registered when it starts).
    auditor: OnceLock<AuditorViewFn>,
    pub(crate) mempool: Mutex<Mempool>,
    events: broadcast::Sender<Event>,
    heartbeats: Mutex<BTreeMap<Address, u64>>,
    /// Finalization certificates not yet written (see [`Node::certified`]).
    pending_certificates: Mutex<BTreeMap<BlockId, Vec<u8>>>,
    pub(crate) metrics: Arc<Metrics>,
    /// State proofs served at once. They are read on the state store's one thread, where
    /// consensus stages and commits blocks: a caller asking for more gets `busy` rather than
    /// a queue in front of the chain.
    pub(crate) proof_slots: Arc<tokio::sync::Semaphore>,
    /// State snapshots served at once (`/v1/sync/snapshot`): one, since each copies the whole
    /// state; a flood of them must not take the proof slots too.
    pub(crate) snapshot_slot: Arc<tokio::sync::Semaphore>,
    /// Log batches served at once to syncing nodes, beside the proof slots: a sync in
    /// progress must not take every proof slot, nor proofs stall a sync.
    pub(crate) sync_slots: Arc<tokio::sync::Semaphore>,
}

/// Log batches served at once to syncing nodes (see [`Node::sync_slots`]).
pub const SYNC_SLOTS: usize = 2;

/// How many entries of a state table a node keeps in memory between blocks unless configured
/// (`NodeConfig::hot_entries`); a table holding more drops them all and reads them from the
/// database again. None by default: the memory a node holds between blocks is then what one
/// block touched, whatever the values' sizes (a count of entries bounds nothing when one entry
/// is a program source), and keeping them bought nothing measurable (docs/BENCHMARKS.md: a
/// block at a million accounts costs the same with the whole state in memory and with none).
pub const HOT_ENTRIES: usize = 0;

/// State proofs served at once (see [`Node::proof_slots`]).
pub const PROOF_SLOTS: usize = 4;

/// Blocks between two prunes of the state store.
const STATE_PRUNE_INTERVAL: u64 = 256;

/// Certificates held between commits: far more than arrive between two blocks.
const MAX_PENDING_CERTIFICATES: usize = 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data itself is still consistent because
    // every mutation here is a single assignment or a bounded queue operation.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Opens the node's database, resuming from the last committed block, or starting from
    /// genesis on first run.
    pub fn open(config: NodeConfig) -> Result<Arc<Node>, NodeError> {
        let storage = Storage::open(&config.data_dir)?;
        // The genesis state, built from the file: its id (a hash of the whole state) and its
        // entries, the state store's first commit (height 0), from which blocks change it.
        let build_genesis = || -> Result<(BlockId, State, ChangeSet), NodeError> {
            let mut state = State::from_genesis(&config.genesis)?;
            let id = genesis_block_id(&state);
            let changes = state.drain_changes();
            Ok((id, state, changes))
        };
        // A restart with the genesis file the directory was started with reuses the id it
        // computed then: building a genesis of a million accounts to hash it takes seconds.
        let genesis_digest = genesis_digest(&config.genesis, verity_ledger::GENESIS_RULES);
        let loaded = storage.load_state()?;
        let store_dir = config.data_dir.join("state");
        // A store no block refers to: the database writes genesis before the store does, so
        // only a state sync that was killed before its database write leaves one. Nothing
        // in it is this node's yet.
        if loaded.is_none() && store_dir.exists() {
            warn!(
                dir = %store_dir.display(),
                "removing a state store the database does not refer to (an interrupted state sync)"
            );
            std::fs::remove_dir_all(&store_dir)?;
        }
        let (genesis_id, built) = match loaded
            .as_ref()
            .map(|_| storage.genesis_id(&genesis_digest))
            .transpose()?
            .flatten()
        {
            Some(id) => (id, None),
            None => {
                let (id, state, changes) = build_genesis()?;
                storage.put_genesis_id(&genesis_digest, &id)?;
                (id, Some((state, changes)))
            }
        };
        let (genesis_state, genesis_changes) = built.unzip();
        let state = match loaded {
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
                let changes = genesis_changes
                    .as_ref()
                    .expect("built when nothing was loaded");
                storage.put_genesis_state(changes)?;
                genesis_state.expect("built when nothing was loaded")
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
        // Only a store with no block yet needs the genesis entries (to write or check them).
        let genesis_changes = match (state.height, genesis_changes) {
            (0, Some(changes)) => changes,
            (0, None) => build_genesis()?.2,
            _ => ChangeSet::new(),
        };
        let store =
            crate::storage::open_state_store(&storage, &store_dir, state.height, &genesis_changes)?;
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
            store_ahead: std::sync::atomic::AtomicBool::new(false),
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
            proof_slots: Arc::new(tokio::sync::Semaphore::new(PROOF_SLOTS)),
            snapshot_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            sync_slots: Arc::new(tokio::sync::Semaphore::new(SYNC_SLOTS)),
        }))
    }

    /// Takes every state-proof slot until the guard is dropped, so a test sees the node
    /// answer `busy` (only in builds with the `mocks` feature).
    #[cfg(feature = "mocks")]
    pub fn occupy_proof_slots(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.proof_slots
            .clone()
            .try_acquire_many_owned(PROOF_SLOTS as u32)
            .expect("no state proof is being served in this test")
    }

    /// Resolves once the state store has stopped for good (a failed write consumes it): the
    /// node can then commit nothing, and whoever runs it should stop it rather than serve a
    /// chain that no longer moves.
    pub async fn state_store_stopped(&self) {
        self.store.stopped().await
    }

    /// Closes the state store as a failed write would (only in builds with the `mocks`
    /// feature).
    #[cfg(feature = "mocks")]
    pub fn fail_state_store(&self) {
        self.store.close();
    }

    /// Job `id`: from the state, or from this node's archive once it retired (`true`).
    pub fn job_anywhere(&self, id: &JobId) -> Result<Option<(Job, bool)>, StorageError> {
        // As submitted, from one state: read against another, a job that retired between the
        // two reads could have taken its source along.
        let state = self.state();
        if let Some(job) = state.jobs.get(id) {
            return Ok(Some((state.as_submitted(job), false)));
        }
        Ok(self.storage.archived_job(id)?.map(|job| (job, true)))
    }

    /// A copy of the current state, for the caller alone (cheap: its tables share their
    /// nodes with the head's). Its own copy, so that what it reads from the database is kept
    /// in the caller's copy and dropped with it, not in the head's for every reader to grow.
    pub fn state(&self) -> Arc<State> {
        self.head().0
    }

    /// The id of the last committed block.
    pub fn tip_id(&self) -> BlockId {
        self.head.read().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The committed state (the caller's own copy, as [`Node::state`] gives), its block id
    /// and the state root after it, read together.
    pub fn head(&self) -> (Arc<State>, BlockId, Digest) {
        let (state, id, root) = self.head.read().unwrap_or_else(|e| e.into_inner()).clone();
        (Arc::new((*state).clone()), id, root)
    }

    /// Stages a block's changes on the committed state, whose root is `root` (a block this
    /// node executes itself).
    fn stage_on_tip(
        &self,
        root: Digest,
        height: u64,
        changes: &ChangeSet,
    ) -> Result<Staged, CommitError> {
        self.store
            .stage(Parent::committed(root), height, changes)
            .map_err(CommitError::from)
    }

    /// The state store: proofs of current entries against the head's root.
    pub fn state_store(&self) -> &StateStore {
        &self.store
    }

    /// The committed state and its state root, read together.
    pub fn state_with_root(&self) -> (Arc<State>, Digest) {
        let (state, _, root) = self.head();
        (state, root)
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
    pub(crate) fn commit_inner(
        &self,
        block: &SealedBlock,
        executed: Option<verity_consensus::Executed>,
    ) -> Result<BlockOutcome, CommitError> {
        self.refuse_if_store_ahead()?;
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
            _ => self.execute_on_tip(&header, &txs, &state, root)?,
        };
        // Jobs that retired from the state at this block move to the archive, in the same
        // transaction as the block: whoever could read them before still can. Whole, as
        // submitted: its source leaves the state with its last job. Read before anything is
        // committed, so that a job the database fails to give back stops the commit rather
        // than go missing.
        let reads = state.watch_reads();
        let retired: Vec<(Job, crate::storage::ArchiveRow)> = outcome
            .retired
            .iter()
            .filter_map(|id| state.jobs.get(id))
            .map(|job| (state.as_submitted(job), crate::api::views::archive_row(job)))
            .collect();
        let unreadable = |why: String| {
            CommitError::Storage(format!(
                "cannot read the jobs block {} retires: {why}",
                header.height
            ))
        };
        reads.check(&state).map_err(unreadable)?;
        if retired.len() != outcome.retired.len() {
            return Err(unreadable("a job is missing".into()));
        }
        // The state store commits first: if the node dies before the block is in the database,
        // the next start rolls the store back to the database's height (`open_state_store`).
        let committed = self.store.commit(staged.id).map_err(CommitError::from)?;

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
                &retired,
            )
            .map_err(|e| {
                self.store_ahead
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(
                    "block {} is in the state store but not the database: {e}",
                    header.height
                );
                CommitError::Storage(e.0)
            })?;
        let next = self.over_database(next);
        let height = next.height;
        self.prune_store_at(height);
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

impl Node {
    /// Executes a block on the committed `state` (whose root is `root`) and stages its changes
    /// on the committed store: a block the node did not see executed (its own, the devnet's).
    fn execute_on_tip(
        &self,
        header: &verity_ledger::BlockHeader,
        txs: &[SignedTx],
        state: &State,
        root: Digest,
    ) -> Result<(Arc<State>, BlockOutcome, Staged), CommitError> {
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
        let mut next = state.clone();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let outcome = verity_ledger::apply_block_parallel(&mut next, header, txs, threads)
            .map_err(|e| {
                if e.is_verdict() {
                    invalid(e.to_string())
                } else {
                    // This node could not read its state: its failure, not the block's.
                    CommitError::Storage(e.to_string())
                }
            })?;
        let staged = self.stage_on_tip(root, header.height, &outcome.changes)?;
        Ok((Arc::new(next), outcome, staged))
    }

    /// `state`, just written to the database, put over a snapshot of it: it keeps in memory
    /// what blocks touched lately (up to `hot_entries` per table) and reads everything else
    /// from the database, so the node's memory does not grow with the state.
    fn over_database(&self, state: Arc<State>) -> Arc<State> {
        let source = match self.storage.state_source() {
            Ok(Some(source)) => source,
            Ok(None) => return state,
            // The state still reads from its earlier snapshot, which stays valid: only its
            // memory grows until a later commit can take a snapshot.
            Err(e) => {
                warn!("cannot take a snapshot of the state's database: {e}");
                return state;
            }
        };
        let mut state = Arc::unwrap_or_clone(state);
        match state.rebase(source, self.config.hot_entries) {
            Ok(()) => {}
            Err(e) => warn!("cannot put the state over its database: {e}"),
        }
        Arc::new(state)
    }

    /// Refuses to commit once a block reached the state store but not the database.
    fn refuse_if_store_ahead(&self) -> Result<(), CommitError> {
        if self.store_ahead.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CommitError::Storage(
                "the state store holds a block the database does not (a write failed): restart \
                 the node, which rolls the store back"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Every [`STATE_PRUNE_INTERVAL`] blocks, bounds the store's log; what is dropped is older
    /// than any commit a restart may roll back to (see `StateStore::prune`).
    fn prune_store_at(&self, height: u64) {
        if height.is_multiple_of(STATE_PRUNE_INTERVAL)
            && let Err(e) = self.store.prune()
        {
            warn!(height, "cannot prune the state store: {e}");
        }
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
    pub(crate) fn record_dropped(&self, id: &TxId, height: u64, reason: &str) {
        let outcome = TxOutcome {
            height,
            error: Some(format!("dropped before inclusion: {reason}")),
        };
        if let Err(e) = self.storage.put_tx_outcome(id, &outcome) {
            warn!("cannot record a dropped transaction: {e:#}");
        }
    }

    pub(crate) fn record_orphans(&self, orphaned: &[SignedTx], height: u64) {
        for tx in orphaned {
            self.record_dropped(
                &tx.id(),
                height,
                "an earlier transaction from this account was dropped, leaving a nonce gap",
            );
        }
    }
}

/// What identifies a genesis file's contents under the ledger's genesis rules (`rules`,
/// [`verity_ledger::GENESIS_RULES`]), to know a restart is given the one the directory was
/// started with, by a build with the same rules (then its genesis id need not be computed
/// again). A compact encoding of every field: a million accounts take milliseconds, not the
/// seconds of JSON.
fn genesis_digest(genesis: &Genesis, rules: u32) -> Digest {
    let mut bytes = Vec::with_capacity(64 + 40 * (genesis.accounts.len() + genesis.stakes.len()));
    bytes.extend_from_slice(&rules.to_le_bytes());
    let params = serde_json::to_vec(&genesis.params).expect("parameters serialize");
    for part in [genesis.chain_id.as_bytes(), params.as_slice()] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    bytes.extend_from_slice(&genesis.genesis_time_ms.to_le_bytes());
    bytes.extend_from_slice(&(genesis.accounts.len() as u64).to_le_bytes());
    for a in &genesis.accounts {
        bytes.extend_from_slice(&a.address.0);
        bytes.extend_from_slice(&a.balance.to_le_bytes());
    }
    bytes.extend_from_slice(&(genesis.stakes.len() as u64).to_le_bytes());
    for s in &genesis.stakes {
        bytes.extend_from_slice(&s.address.0);
        bytes.extend_from_slice(&borsh::to_vec(&s.role).expect("a role encodes"));
        bytes.extend_from_slice(&s.amount.to_le_bytes());
    }
    Digest::blake3(&bytes)
}

/// Where a node keeps a job's sealed private inputs (from the ledger's `ProvideInputs`).
pub fn private_inputs_key(job: &JobId) -> Digest {
    Digest::blake3(format!("private/{job}").as_bytes())
}

/// Where a block's certificate is kept among the blobs.
fn certificate_key(id: &BlockId) -> Digest {
    Digest::blake3(format!("certificate/{id}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The genesis id a directory keeps is keyed by the ledger's genesis rules as well as the
    /// file: a build whose `State::from_genesis` checks more (a bumped `GENESIS_RULES`) does
    /// not find the older build's id, so it builds and checks the genesis again.
    #[test]
    fn the_cached_genesis_id_is_keyed_by_the_genesis_rules() {
        let genesis = crate::devnet::genesis();
        let rules = verity_ledger::GENESIS_RULES;
        assert_eq!(
            genesis_digest(&genesis, rules),
            genesis_digest(&genesis, rules)
        );
        assert_ne!(
            genesis_digest(&genesis, rules),
            genesis_digest(&genesis, rules + 1)
        );
    }
}
