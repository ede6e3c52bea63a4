//! The application side of simplex: builds blocks when this validator leads, re-executes
//! blocks proposed by others before voting, relays blocks, fetches missing ones, and commits
//! finalized blocks to the [`Chain`] in height order.
//!
//! Simplex orders 32-byte digests; here a digest is a [`Block`] id. Blocks travel on their own
//! channel (the proposer sends them to everyone) and can be fetched by id from any peer; both
//! are self-authenticating, since the id is the hash of the block and every block names its
//! parent's id.
mod commit;
mod follow;
mod propose;
mod sync;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use borsh::{BorshDeserialize, BorshSerialize};
use commonware_actor::Feedback;
use commonware_consensus::simplex::Plan;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::{Activity, Attributable, Context};
use commonware_consensus::{Automaton, CertifiableAutomaton, Relay, Reporter, Viewable};
use commonware_cryptography::ed25519::PublicKey;
use commonware_cryptography::sha256::Digest as Sha256Digest;
use commonware_p2p::{Recipients, Sender};
use commonware_runtime::{Clock, Spawner};
use commonware_utils::channel::oneshot;
use tracing::{debug, info, warn};
use verity_ledger::{
    Block, BlockHeader, BlockOutcome, SealedBlock, State, TxError, apply_block_parallel,
};
use verity_store::{Parent, StagedId};
use verity_types::{Address, BlockId, Digest, Keypair, SignedTx};

use crate::chain::{Chain, Tip};
use crate::error::{CommitError, InvalidBlock};
use crate::status::{ConsensusStatus, StatusHandle};

/// Upper bound on an encoded block (also the p2p message limit, with headroom).
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;
/// Proposed blocks held in memory above the committed tip.
const MAX_PENDING_BLOCKS: usize = 1024;
/// Unsolicited blocks held from one proposer: an honest leader has one proposal per view it
/// leads, so a peer sending more is only filling our memory (up to 4 MiB a block).
const MAX_PENDING_PER_PROPOSER: usize = 16;
/// How far above the tip an unsolicited (proposed) block may be: further ahead, a node is
/// catching up and fetches what it needs by id instead.
const MAX_PROPOSAL_LEAD: u64 = 64;
/// Ancestors sent back with a fetched block, so a lagging node catches up in few round trips.
const SYNC_BATCH: usize = 32;
/// How long to wait before asking peers again for a block we still miss.
const REFETCH_AFTER: Duration = Duration::from_millis(400);
const POLL: Duration = Duration::from_millis(20);
/// How far ahead of a validator's clock a proposed block's timestamp may be. A block from the
/// far future would make every honest leader wait for it (each child must come
/// `block_interval` after its parent), halting the chain.
pub const MAX_FUTURE_DRIFT: Duration = Duration::from_secs(5);

/// Misbehaviour a validator can be told to exhibit, so tests can run byzantine peers through
/// the real engine (`mocks` feature only).
#[cfg(feature = "mocks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// When leading, propose blocks carrying a transaction with a forged signature.
    ForgedTransactions,
    /// When leading, propose blocks timestamped ten years ahead.
    FutureTimestamps,
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// This validator's key: signs votes and is the `proposer` in its block headers.
    pub key: Keypair,
    /// Minimum time between a block and its child: without it, an idle network would
    /// finalize empty blocks as fast as its links allow.
    pub block_interval: Duration,
    /// Threads for verifying the proofs in a block.
    pub verify_threads: usize,
    #[cfg(feature = "mocks")]
    pub fault: Option<Fault>,
}

impl AppConfig {
    /// An honest validator verifying proofs on every core.
    pub fn new(key: Keypair, block_interval: Duration) -> AppConfig {
        AppConfig {
            key,
            block_interval,
            verify_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            #[cfg(feature = "mocks")]
            fault: None,
        }
    }

    /// Whether this validator was told to exhibit `fault` (never, without `mocks`).
    #[cfg(feature = "mocks")]
    fn faulty(&self, fault: Fault) -> bool {
        self.fault == Some(fault)
    }
}

#[derive(Default)]
struct Inner {
    /// Blocks above the tip we know the contents of.
    blocks: BTreeMap<BlockId, Arc<SealedBlock>>,
    /// The state after each block we executed successfully, and its staged change set.
    states: BTreeMap<BlockId, Known>,
    /// The outcome of each block we verified by executing it exactly as committed (not our
    /// own proposals, whose dry run also saw the transactions later left out): handed to
    /// `Chain::commit` so a finalized block is not executed again.
    outcomes: BTreeMap<BlockId, Arc<BlockOutcome>>,
    /// Blocks that failed execution (never voted for).
    invalid: BTreeSet<BlockId>,
    /// Blocks we asked peers for, and when.
    requested: BTreeMap<BlockId, SystemTime>,
    /// The newest finalized block id and its view.
    finalized: Option<(u64, BlockId)>,
}

/// Implements simplex's `Automaton`, `Relay` and `Reporter` for one validator. Cheap to clone:
/// every clone shares the same state.
pub struct App<E, C, S> {
    context: Arc<E>,
    chain: Arc<C>,
    config: AppConfig,
    inner: Arc<Mutex<Inner>>,
    status: StatusHandle,
    blocks_out: S,
    sync_out: S,
}

impl<E, C, S: Clone> Clone for App<E, C, S> {
    fn clone(&self) -> Self {
        App {
            context: self.context.clone(),
            chain: self.chain.clone(),
            config: self.config.clone(),
            inner: self.inner.clone(),
            status: self.status.clone(),
            blocks_out: self.blocks_out.clone(),
            sync_out: self.sync_out.clone(),
        }
    }
}

fn to_consensus(id: BlockId) -> Sha256Digest {
    Sha256Digest(id.0.0)
}

fn from_consensus(d: &Sha256Digest) -> BlockId {
    BlockId(verity_types::Digest(d.0))
}

/// The ledger address of a consensus key (both are the same ed25519 key).
pub fn address_of(key: &PublicKey) -> Address {
    let bytes: &[u8] = key.as_ref();
    let mut a = [0u8; 32];
    a.copy_from_slice(bytes);
    Address(a)
}

/// The state after a block: the tip, or a block this validator executed above it, whose
/// change set is staged in the chain's state store.
#[derive(Clone)]
pub(crate) struct Known {
    pub(crate) state: Arc<State>,
    /// The state root after the block.
    pub(crate) root: Digest,
    /// Where its changes are staged; `None` for the tip (committed).
    pub(crate) staged: Option<StagedId>,
}

impl Known {
    /// What to stage a child on: this block's staged batch, or the committed tip (with the
    /// root this validator saw: the store refuses it if the tip has moved since).
    fn parent(&self) -> Parent {
        Parent {
            root: self.root,
            staged: self.staged,
        }
    }

    fn tip(tip: &Tip) -> Known {
        Known {
            state: tip.state.clone(),
            root: tip.root,
            staged: None,
        }
    }
}

/// Why a block was not executed here.
#[derive(Debug)]
pub(crate) enum NotExecuted {
    /// The block is invalid: nobody should vote for it.
    Invalid(InvalidBlock),
    /// This validator's state store could not stage its changes (its own failure, or its tip
    /// moved on meanwhile): no verdict on the block, which it may execute again later.
    Store(CommitError),
}

/// Executes `block` on `parent` and stages its changes in `chain`'s store on the parent's:
/// the state after it, with its root, and the outcome. CPU-heavy and blocking (proofs, the
/// store): call it from a blocking thread.
pub(crate) fn execute_and_stage<C: Chain>(
    chain: &C,
    parent: &Known,
    block: &Block,
    threads: usize,
) -> Result<(Known, BlockOutcome), NotExecuted> {
    let (next, outcome) = execute(&parent.state, &parent.root, block, threads)?;
    let staged = chain
        .stage(parent.parent(), block.header.height, &outcome.changes)
        .map_err(|e| match e {
            CommitError::Oversized(reason) => NotExecuted::Invalid(InvalidBlock(format!(
                "its changes cannot be stored: {reason}"
            ))),
            e => NotExecuted::Store(e),
        })?;
    let known = Known {
        state: Arc::new(next),
        root: staged.root,
        staged: Some(staged.id),
    };
    Ok((known, outcome))
}

/// Executes `block` on `parent` (whose state root is `parent_root`): the state after it and
/// the outcome, or why it is invalid.
pub(crate) fn execute(
    parent: &State,
    parent_root: &Digest,
    block: &Block,
    threads: usize,
) -> Result<(State, BlockOutcome), NotExecuted> {
    let invalid = |reason: String| NotExecuted::Invalid(InvalidBlock(reason));
    if block.header.parent != *parent_root {
        return Err(invalid(
            "block does not name its parent's state root".into(),
        ));
    }
    let mut next = parent.clone();
    let outcome =
        apply_block_parallel(&mut next, &block.header, &block.txs, threads).map_err(|e| {
            if e.is_verdict() {
                invalid(e.to_string())
            } else {
                // This node could not read its state: no verdict on the block.
                NotExecuted::Store(CommitError::Storage(e.to_string()))
            }
        })?;
    for (tx, result) in block.txs.iter().zip(&outcome.tx_results) {
        // A transaction that could never have been included is the proposer's fault; other
        // failures (a lock that lost a race) are the transaction's recorded outcome.
        if let Err(e) = result
            && e.invalidates_block()
        {
            return Err(invalid(format!(
                "transaction {} is invalid: {e}",
                tx.id().short()
            )));
        }
    }
    Ok((next, outcome))
}

pub(crate) fn now_ms(context: &impl Clock) -> u64 {
    context
        .current()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<E, C, S> App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    pub(crate) fn new(
        context: E,
        chain: Arc<C>,
        config: AppConfig,
        status: StatusHandle,
        blocks_out: S,
        sync_out: S,
    ) -> Self {
        App {
            context: Arc::new(context),
            chain,
            config,
            inner: Arc::new(Mutex::new(Inner::default())),
            status,
            blocks_out,
            sync_out,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state_of(&self, tip: &Tip, id: &BlockId) -> Option<Known> {
        if *id == tip.id {
            return Some(Known::tip(tip));
        }
        self.lock().states.get(id).cloned()
    }

    /// Starts the tasks that follow the chain under `parent`: the committer, the block
    /// receiver, and the sync server/client.
    pub(crate) fn spawn_followers(
        &self,
        parent: &E,
        blocks: impl commonware_p2p::Receiver<PublicKey = PublicKey>,
        sync: impl commonware_p2p::Receiver<PublicKey = PublicKey>,
    ) {
        let app = self.clone();
        parent
            .child("committer")
            .spawn(move |_| app.run_committer());
        let app = self.clone();
        parent
            .child("blocks")
            .spawn(move |_| app.run_block_receiver(blocks));
        let app = self.clone();
        parent.child("sync").spawn(move |_| app.run_sync(sync));
    }
}

impl<E, C, S> Automaton for App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    type Context = Context<Sha256Digest, PublicKey>;
    type Digest = Sha256Digest;

    async fn propose(&mut self, context: Self::Context) -> oneshot::Receiver<Self::Digest> {
        let (tx, rx) = oneshot::channel();
        let app = self.clone();
        self.context.child("propose").spawn(move |_| async move {
            if let Some(id) = app.propose_block(context, || tx.is_closed()).await {
                let _ = tx.send(to_consensus(id));
            }
        });
        rx
    }

    async fn verify(
        &mut self,
        context: Self::Context,
        payload: Self::Digest,
    ) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let app = self.clone();
        self.context.child("verify").spawn(move |_| async move {
            if let Some(valid) = app.verify_block(context, payload, &tx).await {
                let _ = tx.send(valid);
            }
        });
        rx
    }
}

impl<E, C, S> CertifiableAutomaton for App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
}

impl<E, C, S> Relay for App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    type Digest = Sha256Digest;
    type PublicKey = PublicKey;
    type Plan = Plan<PublicKey>;

    fn broadcast(&mut self, payload: Self::Digest, plan: Self::Plan) -> Feedback {
        let id = from_consensus(&payload);
        let Some(block) = self.lock().blocks.get(&id).cloned() else {
            return Feedback::Ok;
        };
        let recipients = match plan {
            Plan::Forward { recipients, .. } => recipients,
            _ => Recipients::All,
        };
        let _ = self.blocks_out.send(recipients, block.to_bytes(), true);
        Feedback::Ok
    }
}

impl<E, C, S> Reporter for App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    type Activity = Activity<Scheme, Sha256Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match activity {
            Activity::Finalization(f) => {
                let view = f.view().get();
                let id = from_consensus(&f.proposal.payload);
                // Kept with the block, so anyone holding the validator set can check it final.
                self.chain.certified(id, &crate::certificate::encode(&f));
                let mut inner = self.lock();
                if inner.finalized.is_none_or(|(v, _)| view > v) {
                    inner.finalized = Some((view, id));
                    drop(inner);
                    self.status.update(|s| s.finalized_view = view);
                }
            }
            Activity::Notarize(v) => self.saw(v.signer().get(), v.view().get()),
            Activity::Nullify(v) => self.saw(v.signer().get(), v.view().get()),
            Activity::Finalize(v) => self.saw(v.signer().get(), v.view().get()),
            Activity::Nullification(n) => {
                let view = n.view().get();
                self.status.update(|s| {
                    s.nullified_views += 1;
                    s.current_view = s.current_view.max(view);
                });
            }
            Activity::ConflictingNotarize(_)
            | Activity::ConflictingFinalize(_)
            | Activity::NullifyFinalize(_) => {
                warn!("a validator equivocated (evidence reported by consensus)");
                self.status.update(|s| s.faults_seen += 1);
            }
            _ => {}
        }
        Feedback::Ok
    }
}

impl<E, C, S> App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    fn saw(&self, signer: u32, view: u64) {
        self.status
            .update(|s: &mut ConsensusStatus| s.saw_vote(signer, view));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block this validator cannot execute because its own database failed a read is no
    /// verdict on the block: it must not be marked invalid (a validator that did would refuse
    /// a valid, finalized block forever), only left to execute again.
    #[test]
    fn a_state_read_failure_is_no_verdict_on_the_block() {
        let who = verity_types::Keypair::dev("someone");
        let genesis = verity_testkit::genesis("reads")
            .account(who.address(), 100)
            .build();
        let state = State::from_genesis(&genesis).unwrap();
        let mut entries: std::collections::BTreeMap<_, _> = state.entries().into_iter().collect();
        // The meta entry reads, every account does not decode.
        for (key, value) in entries.iter_mut() {
            if key.first() == Some(&1) {
                *value = vec![0xff];
            }
        }
        let source = std::sync::Arc::new(verity_ledger::MemorySource::new(entries));
        let parent = State::over(source).unwrap();
        let header = BlockHeader {
            chain_id: "reads".into(),
            height: 1,
            timestamp_ms: 1,
            parent: Digest([0; 32]),
            proposer: verity_types::Address([1; 32]),
        };
        let tx = verity_testkit::signed(
            "reads",
            &who,
            0,
            verity_types::TxBody::Transfer {
                to: verity_types::Address([2; 32]),
                amount: 1,
            },
        );
        let block = Block {
            parent_id: verity_types::BlockId(Digest([0; 32])),
            header,
            txs: vec![tx],
        };
        match execute(&parent, &Digest([0; 32]), &block, 1) {
            Err(NotExecuted::Store(CommitError::Storage(why))) => {
                assert!(why.contains("could not be read"), "{why}")
            }
            other => panic!("expected no verdict, got {other:?}"),
        }
    }
}
