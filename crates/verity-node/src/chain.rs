//! The node as consensus sees it (`verity_consensus::Chain`): the committed chain in its
//! database, its state store and its mempool.

use std::collections::BTreeSet;

use tracing::warn;
use verity_consensus::CommitError;
use verity_ledger::{Block, ChangeSet, SealedBlock};
use verity_store::{Parent, Staged};
use verity_types::{BlockId, SignedTx};

use crate::error::StorageError;
use crate::mempool::AdmitError;
use crate::node::{Node, lock};

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
        parent: Parent,
        height: u64,
        changes: &ChangeSet,
    ) -> Result<Staged, CommitError> {
        self.store.stage(parent, height, changes).map_err(|e| {
            // QMDB failing to merkleize means the database itself is in trouble: stop the
            // store, so that the node exits (`Node::state_store_stopped`) instead of retrying
            // every block against it.
            if matches!(e, verity_store::StoreError::Database(_)) {
                warn!("the state store failed while staging block {height}: {e}; stopping it");
                self.store.close();
            }
            CommitError::from(e)
        })
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

/// A storage read for a peer: a failure is logged, and the peer gets nothing (it asks another).
fn logged<T>(read: Result<T, StorageError>) -> Option<T> {
    read.map_err(|e| warn!("cannot serve a block to a peer: {e}"))
        .ok()
}
