//! What consensus needs from the node: the committed tip, a way to commit a finalized block,
//! stored blocks (to serve peers that are catching up), and the mempool.
//!
//! The node implements [`Chain`] over its database; [`MemoryChain`] is the same contract in
//! memory, for deterministic simulations.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use verity_ledger::{
    Block, BlockOutcome, ChangeSet, Genesis, GenesisError, SealedBlock, State, apply_block,
    genesis_block_id,
};
use verity_store::{Parent, Staged, StateStore};
use verity_types::{BlockId, Digest, SignedTx};

use crate::error::CommitError;

/// The last committed (finalized and applied) block.
#[derive(Clone)]
pub struct Tip {
    pub height: u64,
    pub id: BlockId,
    pub state: Arc<State>,
    /// The state root after it: what its child's header names as `parent`.
    pub root: Digest,
}

/// A block consensus already executed on its parent while verifying it: the state after it
/// and the outcome. Handed to [`Chain::commit`] so the block need not be executed again.
#[derive(Clone)]
pub struct Executed {
    pub state: Arc<State>,
    pub outcome: Arc<BlockOutcome>,
    /// Its change set, staged in the chain's state store ([`Chain::stage`]).
    pub staged: Staged,
}

pub trait Chain: Send + Sync + 'static {
    /// The id block 1 names as its parent ([`verity_ledger::genesis_block_id`]).
    fn genesis_id(&self) -> BlockId;
    /// The last committed block and the state after it.
    fn tip(&self) -> Tip;
    /// Applies a finalized block that extends the tip and makes it durable before returning.
    /// Called with `block.parent_id == tip().id`, in height order, from a blocking thread.
    /// `executed`, when given, is this block executed on the tip's state (the ledger is
    /// deterministic, so it is what executing it again would give).
    fn commit(&self, block: &SealedBlock, executed: Option<Executed>) -> Result<(), CommitError>;
    /// Stages the change set of the block at `height` in the chain's state store, on `parent`
    /// (the staged block it extends, or the tip), and returns the state root after
    /// it (see [`StateStore::stage`]). Nothing is committed; [`Chain::commit`] commits what it was handed. Called from a
    /// blocking thread.
    fn stage(
        &self,
        parent: Parent,
        height: u64,
        changes: &ChangeSet,
    ) -> Result<Staged, CommitError>;
    /// A committed block by id.
    fn block_by_id(&self, id: &BlockId) -> Option<Block>;
    /// A committed block by height.
    fn block_at(&self, height: u64) -> Option<Block>;
    /// Pending transactions, oldest first (left in the pool: a proposal may not be finalized).
    fn candidates(&self, max: usize) -> Vec<SignedTx>;
    /// A transaction gossiped by a peer.
    fn admit(&self, tx: SignedTx);
    /// A note a peer shared (at most `MAX_NOTE_BYTES`; from an authenticated validator, but
    /// its contents are the chain's to check). Ignored unless the chain uses notes.
    fn heard(&self, _note: &[u8]) {}
    /// The finalization certificate of block `id` (`crate::certificate`), as consensus
    /// reported it: the same block may be reported again (after a restart, say). Kept by a
    /// chain that serves certificates; ignored by default.
    fn certified(&self, _id: BlockId, _certificate: &[u8]) {}
    /// A transaction the proposer found would fail; drop it from the pool, say why.
    fn discard(&self, tx: &SignedTx, reason: &str);
}

/// A [`Chain`] held in memory: blocks, state and pool survive a simulated crash of the
/// validator (the test keeps the `Arc`), exactly as the node's database would.
pub struct MemoryChain {
    inner: Mutex<MemoryInner>,
    /// A real state store, in a directory that lives as long as the chain.
    store: StateStore,
    _dir: tempfile::TempDir,
    /// Stagings still to fail, as a failing disk would (see [`MemoryChain::fail_stages`]).
    failing_stages: std::sync::atomic::AtomicU32,
}

struct MemoryInner {
    genesis_id: BlockId,
    tip: Tip,
    blocks: Vec<Block>,
    ids: BTreeMap<BlockId, u64>,
    pool: Vec<SignedTx>,
}

impl MemoryChain {
    pub fn new(genesis: &Genesis) -> Result<MemoryChain, GenesisError> {
        let mut state = State::from_genesis(genesis)?;
        let dir =
            tempfile::tempdir().map_err(|e| GenesisError(format!("no temporary dir: {e}")))?;
        let store = StateStore::open(dir.path()).map_err(|e| GenesisError(e.to_string()))?;
        let root = store
            .write(0, &state.drain_changes())
            .map_err(|e| GenesisError(e.to_string()))?
            .root;
        Ok(MemoryChain {
            inner: Mutex::new(MemoryInner {
                genesis_id: genesis_block_id(&state),
                tip: Tip {
                    height: state.height,
                    id: genesis_block_id(&state),
                    state: Arc::new(state),
                    root,
                },
                blocks: Vec::new(),
                ids: BTreeMap::new(),
                pool: Vec::new(),
            }),
            store,
            _dir: dir,
            failing_stages: Default::default(),
        })
    }

    /// Committed block ids, in height order.
    pub fn ids(&self) -> Vec<BlockId> {
        let inner = self.lock();
        inner.blocks.iter().map(Block::id).collect()
    }

    /// Makes the next `n` stagings fail with a storage error, as a failing disk would.
    pub fn fail_stages(&self, n: u32) {
        self.failing_stages
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn pool_len(&self) -> usize {
        self.lock().pool.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Chain for MemoryChain {
    fn genesis_id(&self) -> BlockId {
        self.lock().genesis_id
    }

    fn tip(&self) -> Tip {
        self.lock().tip.clone()
    }

    fn commit(&self, block: &SealedBlock, executed: Option<Executed>) -> Result<(), CommitError> {
        let mut inner = self.lock();
        let height = block.header.height;
        if block.parent_id != inner.tip.id {
            return Err(CommitError::NotOnTip { height });
        }
        // Executes anyway and checks what consensus handed over: in simulations this catches
        // a verified state that is not the one the block produces.
        let mut next = (*inner.tip.state).clone();
        let outcome = apply_block(&mut next, &block.header, &block.txs).map_err(|e| {
            CommitError::Invalid {
                height,
                reason: e.to_string(),
            }
        })?;
        let staged = self
            .store
            .stage(Parent::committed(inner.tip.root), height, &outcome.changes)
            .map_err(CommitError::from)?;
        if let Some(e) = &executed
            && (e.staged.root != staged.root || *e.outcome != outcome)
        {
            return Err(CommitError::Diverged { height });
        }
        let committed = self.store.commit(staged.id).map_err(CommitError::from)?;
        let id = block.id();
        let included: std::collections::BTreeSet<verity_types::TxId> =
            block.txs.iter().map(SignedTx::id).collect();
        inner.pool.retain(|tx| !included.contains(&tx.id()));
        inner.ids.insert(id, next.height);
        inner.blocks.push(block.block().clone());
        inner.tip = Tip {
            height: next.height,
            id,
            state: Arc::new(next),
            root: committed.root,
        };
        Ok(())
    }

    fn stage(
        &self,
        parent: Parent,
        height: u64,
        changes: &ChangeSet,
    ) -> Result<Staged, CommitError> {
        use std::sync::atomic::Ordering;
        let failing = self
            .failing_stages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(CommitError::Storage("injected: the disk failed".into()));
        }
        self.store
            .stage(parent, height, changes)
            .map_err(CommitError::from)
    }

    fn block_by_id(&self, id: &BlockId) -> Option<Block> {
        let inner = self.lock();
        let height = *inner.ids.get(id)?;
        inner.blocks.get(height.checked_sub(1)? as usize).cloned()
    }

    fn block_at(&self, height: u64) -> Option<Block> {
        let inner = self.lock();
        inner.blocks.get(height.checked_sub(1)? as usize).cloned()
    }

    fn candidates(&self, max: usize) -> Vec<SignedTx> {
        self.lock().pool.iter().take(max).cloned().collect()
    }

    fn admit(&self, tx: SignedTx) {
        let mut inner = self.lock();
        let id = tx.id();
        if inner.pool.iter().all(|t| t.id() != id) {
            inner.pool.push(tx);
        }
    }

    fn discard(&self, tx: &SignedTx, _reason: &str) {
        let id = tx.id();
        self.lock().pool.retain(|t| t.id() != id);
    }
}
