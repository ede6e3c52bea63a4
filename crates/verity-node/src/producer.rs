//! Block production behind a narrow interface: a producer decides *what* goes into the next
//! block and in which order; [`Node::commit`] executes and stores it. Nothing else crosses.
//! The single-validator producer here seals a block every interval; the BFT issue puts a
//! consensus engine behind the same seam.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, warn};
use verity_consensus::{CommitError, certificate};
use verity_ledger::{Block, BlockHeader, BlockOutcome, State};
use verity_types::{BlockId, Digest, Keypair, SignedTx};

use crate::clock::{Clock, SystemClock};
use crate::node::Node;

/// Orders transactions into blocks.
pub trait BlockProducer: Send + 'static {
    /// The next block on top of `head` (whose state root is `root`), made from `candidates`
    /// (oldest first).
    fn propose(
        &mut self,
        head: &State,
        root: Digest,
        candidates: Vec<SignedTx>,
    ) -> (BlockHeader, Vec<SignedTx>);

    /// A finalization certificate for `block`, committed at `height` on top of `state`'s
    /// chain (`verity_consensus::certificate`), if this producer can make one alone.
    fn certify(&self, _state: &State, _height: u64, _block: BlockId) -> Option<Vec<u8>> {
        None
    }
}

/// One validator that seals whatever the mempool holds, every interval.
pub struct SoloProducer {
    key: Keypair,
    clock: Arc<dyn Clock>,
}

impl SoloProducer {
    pub fn new(key: Keypair) -> SoloProducer {
        SoloProducer::with_clock(key, Arc::new(SystemClock))
    }

    /// Stamps blocks with `clock` (tests: a clock they move by hand).
    pub fn with_clock(key: Keypair, clock: Arc<dyn Clock>) -> SoloProducer {
        SoloProducer { key, clock }
    }
}

impl BlockProducer for SoloProducer {
    fn propose(
        &mut self,
        head: &State,
        root: Digest,
        candidates: Vec<SignedTx>,
    ) -> (BlockHeader, Vec<SignedTx>) {
        let now = self.clock.unix_ms();
        let header = BlockHeader {
            chain_id: head.chain_id.clone(),
            height: head.height + 1,
            // Block time never goes backwards, whatever the wall clock does.
            timestamp_ms: now.max(head.timestamp_ms),
            parent: root,
            proposer: self.key.address(),
        };
        (header, candidates)
    }

    /// The validator set of one signs: the same certificate a BFT network's quorum makes, so
    /// clients check a devnet's blocks as they check any network's.
    fn certify(&self, state: &State, height: u64, block: BlockId) -> Option<Vec<u8>> {
        let validators: Vec<_> = state.validators.iter().copied().collect();
        certificate::certify_alone(&state.chain_id, &validators, &self.key, height, block)
            .map_err(|e| {
                // Once: a genesis with other validators makes every block uncertifiable.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| warn!("this producer cannot certify its blocks: {e}"));
            })
            .ok()
    }
}

/// Runs `producer` until `shutdown` fires: every interval, take the mempool, propose, commit.
pub async fn run_producer(
    node: Arc<Node>,
    mut producer: impl BlockProducer,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(node.config.block_interval_ms.max(10));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let n = node.clone();
        let block = next_block(&n, &mut producer);
        // Applying verifies proofs: keep it off the async executor.
        let result = tokio::task::spawn_blocking(move || n.commit(&block).map(|_| block)).await;
        match result {
            Ok(Ok(block)) => certify(&node, &producer, block.header.height, block.id()),
            Ok(Err(e)) => error!("block production failed: {e:#}"),
            Err(e) => error!("block production task failed: {e}"),
        }
    }
}

/// The block `producer` makes next from what `node`'s mempool holds.
fn next_block(node: &Node, producer: &mut impl BlockProducer) -> verity_ledger::SealedBlock {
    let (state, tip_id, root) = node.head();
    let candidates = node.candidates(state.params.max_block_txs as usize);
    let (header, txs) = producer.propose(&state, root, candidates);
    Block {
        parent_id: tip_id,
        header,
        txs,
    }
    .seal()
}

/// Makes and commits one block now: what a test that drives a node block by block calls.
/// CPU-heavy (it verifies proofs): call it from a blocking thread or a test's own thread.
pub fn produce_block(
    node: &Node,
    producer: &mut impl BlockProducer,
) -> Result<BlockOutcome, CommitError> {
    let block = next_block(node, producer);
    let outcome = node.commit(&block)?;
    certify(node, producer, block.header.height, block.id());
    Ok(outcome)
}

/// Keeps the producer's certificate of a block just committed.
fn certify(node: &Node, producer: &impl BlockProducer, height: u64, id: BlockId) {
    if let Some(certificate) = producer.certify(&node.state(), height, id) {
        node.certified(id, &certificate);
    }
}
