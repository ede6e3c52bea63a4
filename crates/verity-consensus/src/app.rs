//! The application side of simplex: builds blocks when this validator leads, re-executes
//! blocks proposed by others before voting, relays blocks, fetches missing ones, and commits
//! finalized blocks to the [`Chain`] in height order.
//!
//! Simplex orders 32-byte digests; here a digest is a [`Block`] id. Blocks travel on their own
//! channel (the proposer sends them to everyone) and can be fetched by id from any peer; both
//! are self-authenticating, since the id is the hash of the block and every block names its
//! parent's id.

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
use verity_ledger::{Block, BlockHeader, BlockOutcome, State, TxError, apply_block_parallel};
use verity_types::{Address, Digest, Keypair, SignedTx};

use crate::chain::{Chain, Tip};
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

/// Messages on the sync channel.
#[derive(BorshSerialize, BorshDeserialize)]
enum SyncMessage {
    /// "Send me block `id` (and some of its ancestors)."
    Request(Digest),
    /// Encoded blocks, child first.
    Response(Vec<Vec<u8>>),
}

#[derive(Default)]
struct Inner {
    /// Blocks above the tip we know the contents of.
    blocks: BTreeMap<Digest, Arc<Block>>,
    /// The state after each block we executed successfully.
    states: BTreeMap<Digest, Arc<State>>,
    /// The outcome of each block we verified by executing it exactly as committed (not our
    /// own proposals, whose dry run also saw the transactions later left out): handed to
    /// `Chain::commit` so a finalized block is not executed again.
    outcomes: BTreeMap<Digest, Arc<BlockOutcome>>,
    /// Blocks that failed execution (never voted for).
    invalid: BTreeSet<Digest>,
    /// Blocks we asked peers for, and when.
    requested: BTreeMap<Digest, SystemTime>,
    /// The newest finalized block id and its view.
    finalized: Option<(u64, Digest)>,
    /// Vote signers by the newest view we saw them vote in.
    seen: BTreeMap<u32, u64>,
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

fn to_consensus(id: Digest) -> Sha256Digest {
    Sha256Digest(id.0)
}

fn from_consensus(d: &Sha256Digest) -> Digest {
    Digest(d.0)
}

/// The ledger address of a consensus key (both are the same ed25519 key).
pub fn address_of(key: &PublicKey) -> Address {
    let bytes: &[u8] = key.as_ref();
    let mut a = [0u8; 32];
    a.copy_from_slice(bytes);
    Address(a)
}

/// Executes `block` on `parent`: the state after it and the outcome, or why it is invalid.
pub fn execute(
    parent: &State,
    block: &Block,
    threads: usize,
) -> Result<(State, BlockOutcome), String> {
    if block.header.parent != parent.state_root() {
        return Err("block does not name its parent's state root".into());
    }
    let mut next = parent.clone();
    let outcome = apply_block_parallel(&mut next, &block.header, &block.txs, threads)
        .map_err(|e| e.to_string())?;
    for (tx, result) in block.txs.iter().zip(&outcome.tx_results) {
        // A transaction that could never have been included is the proposer's fault; other
        // failures (a lock that lost a race) are the transaction's recorded outcome.
        if let Err(e) = result
            && e.invalidates_block()
        {
            return Err(format!("transaction {} is invalid: {e}", tx.id().short()));
        }
    }
    Ok((next, outcome))
}

fn now_ms(context: &impl Clock) -> u64 {
    context
        .current()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

enum Path {
    /// Blocks to execute, oldest first, on top of a known state.
    Ready(Arc<State>, Vec<Arc<Block>>),
    Missing(Digest),
    Invalid,
    /// The chain from this block does not reach the tip (it is at or below it).
    Stale,
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

    fn state_of(&self, tip: &Tip, id: &Digest) -> Option<Arc<State>> {
        if *id == tip.id {
            return Some(tip.state.clone());
        }
        self.lock().states.get(id).cloned()
    }

    fn path_to(&self, tip: &Tip, id: Digest) -> Path {
        let inner = self.lock();
        let mut path = Vec::new();
        let mut cur = id;
        loop {
            if cur == tip.id {
                path.reverse();
                return Path::Ready(tip.state.clone(), path);
            }
            if let Some(state) = inner.states.get(&cur) {
                path.reverse();
                return Path::Ready(state.clone(), path);
            }
            if inner.invalid.contains(&cur) {
                return Path::Invalid;
            }
            match inner.blocks.get(&cur) {
                Some(b) if b.header.height <= tip.height => return Path::Stale,
                Some(b) => {
                    path.push(b.clone());
                    cur = b.parent_id;
                }
                None => return Path::Missing(cur),
            }
        }
    }

    /// The state after block `id`, executing it (and any unexecuted ancestors) if needed and
    /// fetching blocks we lack. `None` if the block is invalid, does not extend our chain, or
    /// `cancelled` says nobody is waiting any more.
    async fn state_after(&self, id: Digest, cancelled: impl Fn() -> bool) -> Option<Arc<State>> {
        loop {
            if cancelled() {
                return None;
            }
            let tip = self.chain.tip();
            if let Some(s) = self.state_of(&tip, &id) {
                return Some(s);
            }
            match self.path_to(&tip, id) {
                Path::Ready(mut state, path) => {
                    for block in path {
                        let bid = block.id();
                        let threads = self.config.verify_threads;
                        let parent = state.clone();
                        // Verifying proofs is CPU-heavy: keep it off the async executor.
                        let result = self
                            .context
                            .child("execute")
                            .shared(true)
                            .spawn(move |_| async move { execute(&parent, &block, threads) })
                            .await;
                        match result {
                            Ok(Ok((next, outcome))) => {
                                let next = Arc::new(next);
                                let mut inner = self.lock();
                                inner.states.insert(bid, next.clone());
                                inner.outcomes.insert(bid, Arc::new(outcome));
                                drop(inner);
                                self.status.update(|s| s.blocks_verified += 1);
                                state = next;
                            }
                            Ok(Err(reason)) => {
                                warn!(block = %bid.short(), "rejecting block: {reason}");
                                self.lock().invalid.insert(bid);
                                self.status.update(|s| s.blocks_rejected += 1);
                                return None;
                            }
                            Err(_) => return None,
                        }
                    }
                }
                Path::Missing(missing) => {
                    self.request(missing);
                    self.context.sleep(POLL).await;
                }
                Path::Invalid | Path::Stale => return None,
            }
        }
    }

    /// Asks every peer for a block, at most once per [`REFETCH_AFTER`].
    fn request(&self, id: Digest) {
        let now = self.context.current();
        {
            let mut inner = self.lock();
            if let Some(at) = inner.requested.get(&id)
                && now.duration_since(*at).unwrap_or_default() < REFETCH_AFTER
            {
                return;
            }
            inner.requested.insert(id, now);
        }
        debug!(block = %id.short(), "fetching block from peers");
        let msg = borsh::to_vec(&SyncMessage::Request(id)).expect("encoding cannot fail");
        let _ = self.sync_out.clone().send(Recipients::All, msg, false);
    }

    /// Remembers a block we were sent, if it could still matter. Solicited blocks (`sender`
    /// is `None`) answer a request (or are the parent of one): they are taken only if we
    /// asked, however far behind we are (catching up after a long outage walks back from a
    /// finalized block). Unsolicited ones are proposals from `sender`: taken only from their
    /// proposer, near the tip, and only so many per proposer.
    fn insert_block(&self, block: Block, sender: Option<Address>) -> bool {
        let solicited = sender.is_none();
        let tip_height = self.chain.tip().height;
        let h = block.header.height;
        if h <= tip_height || (!solicited && h > tip_height + MAX_PROPOSAL_LEAD) {
            return false;
        }
        let id = block.id();
        let mut inner = self.lock();
        if inner.blocks.contains_key(&id) {
            return false;
        }
        if solicited {
            let wanted = inner.requested.remove(&id).is_some()
                || inner.blocks.values().any(|b| b.parent_id == id);
            if !wanted {
                return false;
            }
        } else {
            // A proposal comes from its proposer, and each proposer gets a small share.
            let proposer = block.header.proposer;
            if sender != Some(proposer) || inner.blocks.len() >= MAX_PENDING_BLOCKS {
                return false;
            }
            let held = inner
                .blocks
                .values()
                .filter(|b| b.header.proposer == proposer)
                .count();
            if held >= MAX_PENDING_PER_PROPOSER {
                debug!(proposer = %proposer.short(), "dropping a proposal: too many pending from this proposer");
                return false;
            }
        }
        inner.blocks.insert(id, Arc::new(block));
        true
    }

    async fn propose_block(
        &self,
        ctx: Context<Sha256Digest, PublicKey>,
        cancelled: impl Fn() -> bool,
    ) -> Option<Digest> {
        let parent_id = from_consensus(&ctx.parent.1);
        let parent_state = self.state_after(parent_id, cancelled).await?;

        // Pace the chain: no child sooner than `block_interval` after its parent.
        let earliest = parent_state.timestamp_ms + self.config.block_interval.as_millis() as u64;
        let now = now_ms(self.context.as_ref());
        if now < earliest {
            // Never wait more than the interval plus the drift validators accept: a parent
            // further ahead than that (finalized by a faulty majority, or a clock jump here)
            // must not stall this leader.
            let wait = Duration::from_millis(earliest - now)
                .min(self.config.block_interval + MAX_FUTURE_DRIFT);
            self.context.sleep(wait).await;
        }
        let mut timestamp_ms = now_ms(self.context.as_ref()).max(parent_state.timestamp_ms);
        #[cfg(feature = "mocks")]
        if self.config.faulty(Fault::FutureTimestamps) {
            timestamp_ms += 10 * 365 * 24 * 3600 * 1000;
        }

        // Transactions already in the unfinalized blocks between the tip and the parent.
        let tip = self.chain.tip();
        let mut included = BTreeSet::new();
        {
            let inner = self.lock();
            let mut cur = parent_id;
            while cur != tip.id {
                let Some(b) = inner.blocks.get(&cur) else {
                    break;
                };
                included.extend(b.txs.iter().map(SignedTx::id));
                cur = b.parent_id;
            }
        }
        let max_txs = parent_state.params.max_block_txs as usize;
        let mut size = 0usize;
        let mut txs: Vec<SignedTx> = Vec::new();
        let mut candidates = self.chain.candidates(max_txs.saturating_mul(2));
        // Gossip can deliver one account's transactions out of order: nonce order per signer,
        // arrival order across signers.
        let mut first_seen: BTreeMap<Address, usize> = BTreeMap::new();
        for (i, tx) in candidates.iter().enumerate() {
            first_seen.entry(tx.tx.signer).or_insert(i);
        }
        candidates.sort_by_key(|tx| (first_seen[&tx.tx.signer], tx.tx.nonce));
        for tx in candidates {
            if txs.len() >= max_txs || included.contains(&tx.id()) {
                continue;
            }
            let n = tx.to_bytes().len();
            if size + n > MAX_BLOCK_BYTES - 64 * 1024 {
                break;
            }
            size += n;
            txs.push(tx);
        }
        let header = BlockHeader {
            chain_id: parent_state.chain_id.clone(),
            height: parent_state.height + 1,
            timestamp_ms,
            parent: parent_state.state_root(),
            proposer: self.config.key.address(),
        };

        // Dry run: keep every transaction that can be included, accepted or rejected (a
        // rejected one pays its fee and spends its nonce, so it can never execute later), and
        // drop those that cannot (they changed nothing, so the state after the kept ones is
        // the same state).
        let threads = self.config.verify_threads;
        let (parent_for_run, header_for_run, txs_for_run) =
            (parent_state.clone(), header.clone(), txs.clone());
        let run = self
            .context
            .child("dry_run")
            .shared(true)
            .spawn(move |_| async move {
                let mut next = (*parent_for_run).clone();
                apply_block_parallel(&mut next, &header_for_run, &txs_for_run, threads)
                    .map(|outcome| (next, outcome))
            })
            .await
            .ok()?;
        let (next, outcome) = match run {
            Ok(r) => r,
            Err(e) => {
                warn!("cannot build on {}: {e}", parent_id.short());
                return None;
            }
        };
        let mut kept = Vec::with_capacity(txs.len());
        for (tx, result) in txs.into_iter().zip(outcome.tx_results) {
            match result {
                Ok(()) => kept.push(tx),
                // Its predecessor has not reached us yet: keep it for a later block.
                Err(TxError::BadNonce { expected, got }) if got > expected => {}
                Err(e) if e.invalidates_block() => {
                    debug!(tx = %tx.id().short(), "dropping transaction: {e}");
                    self.chain.discard(&tx, &e.to_string());
                }
                Err(_) => kept.push(tx),
            }
        }
        #[cfg(feature = "mocks")]
        if self.config.faulty(Fault::ForgedTransactions) {
            kept.push(forged_transaction(&header, &self.config.key));
        }
        let block = Block {
            parent_id,
            header,
            txs: kept,
        };
        let id = block.id();
        {
            let mut inner = self.lock();
            inner.blocks.insert(id, Arc::new(block));
            inner.states.insert(id, Arc::new(next));
        }
        self.status.update(|s| s.blocks_proposed += 1);
        Some(id)
    }

    /// Builds a block as the leader would, returning it with its parent's state (for the
    /// byzantine test validator, which signs it itself).
    pub(crate) async fn propose_for_test(
        &self,
        ctx: Context<Sha256Digest, PublicKey>,
    ) -> Option<(Block, Arc<State>)> {
        let parent = from_consensus(&ctx.parent.1);
        let id = self.propose_block(ctx, || false).await?;
        let tip = self.chain.tip();
        let parent_state = self.state_of(&tip, &parent)?;
        let block = (**self.lock().blocks.get(&id)?).clone();
        Some((block, parent_state))
    }

    /// Records a block and the state after it as built here.
    pub(crate) fn remember(&self, block: Block, after: State) {
        let id = block.id();
        let mut inner = self.lock();
        inner.blocks.insert(id, Arc::new(block));
        inner.states.insert(id, Arc::new(after));
    }

    async fn verify_block(
        &self,
        ctx: Context<Sha256Digest, PublicKey>,
        payload: Sha256Digest,
        response: &oneshot::Sender<bool>,
    ) -> Option<bool> {
        let id = from_consensus(&payload);
        let waiting_since = self.context.current();
        let block = loop {
            if response.is_closed() {
                return None;
            }
            if let Some(b) = self.lock().blocks.get(&id).cloned() {
                break b;
            }
            if self.lock().invalid.contains(&id) {
                return Some(false);
            }
            // The proposer sends its block to everyone; fetch it if it does not arrive soon.
            if self
                .context
                .current()
                .duration_since(waiting_since)
                .unwrap_or_default()
                > REFETCH_AFTER
            {
                self.request(id);
            }
            self.context.sleep(POLL).await;
        };
        let reject = |why: &str| {
            warn!(block = %id.short(), "rejecting block: {why}");
            self.lock().invalid.insert(id);
            self.status.update(|s| s.blocks_rejected += 1);
            Some(false)
        };
        if block.parent_id != from_consensus(&ctx.parent.1) {
            return reject("it does not extend the parent consensus named");
        }
        if block.header.proposer != address_of(&ctx.leader) {
            return reject("its proposer is not this view's leader");
        }
        let now = now_ms(self.context.as_ref());
        if block.header.timestamp_ms > now.saturating_add(MAX_FUTURE_DRIFT.as_millis() as u64) {
            return reject(&format!(
                "its timestamp {} is more than {MAX_FUTURE_DRIFT:?} ahead of this validator's clock ({now})",
                block.header.timestamp_ms
            ));
        }
        let accepted = self
            .state_after(id, || response.is_closed())
            .await
            .is_some();
        if response.is_closed() {
            return None;
        }
        Some(accepted)
    }

    /// Commits finalized blocks up to the newest finalization, fetching any we lack.
    async fn commit_finalized(&self) {
        let Some((_, target)) = self.lock().finalized else {
            return;
        };
        let tip = self.chain.tip();
        if target == tip.id {
            return;
        }
        let mut path = Vec::new();
        {
            let mut cur = target;
            while cur != tip.id {
                let block = self.lock().blocks.get(&cur).cloned();
                match block {
                    Some(b) if b.header.height <= tip.height => return,
                    Some(b) => {
                        cur = b.parent_id;
                        path.push(b);
                    }
                    None => {
                        self.request(cur);
                        return;
                    }
                }
            }
        }
        for block in path.into_iter().rev() {
            let chain = self.chain.clone();
            let b = block.clone();
            let executed = {
                let inner = self.lock();
                let id = block.id();
                match (inner.states.get(&id), inner.outcomes.get(&id)) {
                    (Some(state), Some(outcome)) => Some(crate::chain::Executed {
                        state: state.clone(),
                        outcome: outcome.clone(),
                    }),
                    _ => None,
                }
            };
            let result = self
                .context
                .child("commit")
                .shared(true)
                .spawn(move |_| async move { chain.commit(&b, executed) })
                .await;
            match result {
                Ok(Ok(())) => {
                    let height = block.header.height;
                    info!(height, block = %block.id().short(), txs = block.txs.len(), "finalized");
                    let at = now_ms(self.context.as_ref());
                    self.status.update(|s| {
                        s.finalized_height = height;
                        s.last_finalized_ms = at;
                        s.last_block_time_ms = block.header.timestamp_ms;
                    });
                }
                Ok(Err(e)) => {
                    // Only possible if a third or more of the validators finalized an invalid
                    // block; stop rather than diverge.
                    tracing::error!(
                        height = block.header.height,
                        "cannot commit finalized block: {e:#}"
                    );
                    return;
                }
                Err(_) => return,
            }
        }
        let tip = self.chain.tip();
        let mut inner = self.lock();
        inner.blocks.retain(|_, b| b.header.height > tip.height);
        let live: BTreeSet<Digest> = inner.blocks.keys().copied().collect();
        inner.states.retain(|id, _| live.contains(id));
        inner.outcomes.retain(|id, _| live.contains(id));
        inner.invalid.retain(|id| live.contains(id));
        if inner.requested.len() > MAX_PENDING_BLOCKS {
            inner.requested.clear();
        }
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

    /// Runs forever: commits finalized blocks as they (and their ancestors) become known.
    async fn run_committer(self) {
        loop {
            self.commit_finalized().await;
            self.context.sleep(POLL).await;
        }
    }

    /// Runs forever: takes blocks proposers send.
    async fn run_block_receiver(
        self,
        mut rx: impl commonware_p2p::Receiver<PublicKey = PublicKey>,
    ) {
        while let Ok((peer, msg)) = rx.recv().await {
            match Block::from_bytes(msg.as_ref()) {
                Ok(block) => {
                    self.insert_block(block, Some(address_of(&peer)));
                }
                Err(e) => debug!(?peer, "ignoring block: {e}"),
            }
        }
    }

    /// Runs forever: answers block requests and takes responses.
    async fn run_sync(self, mut rx: impl commonware_p2p::Receiver<PublicKey = PublicKey>) {
        while let Ok((peer, msg)) = rx.recv().await {
            let Ok(message) = borsh::from_slice::<SyncMessage>(msg.as_ref()) else {
                debug!(?peer, "ignoring malformed sync message");
                continue;
            };
            match message {
                SyncMessage::Request(id) => {
                    let blocks = self.ancestry(id);
                    if blocks.is_empty() {
                        continue;
                    }
                    let msg = borsh::to_vec(&SyncMessage::Response(blocks)).expect("encoding");
                    let _ = self
                        .sync_out
                        .clone()
                        .send(Recipients::One(peer), msg, false);
                }
                SyncMessage::Response(blocks) => {
                    for bytes in blocks.into_iter().take(SYNC_BATCH) {
                        if let Ok(block) = Block::from_bytes(&bytes) {
                            self.insert_block(block, None);
                        }
                    }
                }
            }
        }
    }

    /// Block `id` and up to [`SYNC_BATCH`] - 1 of its ancestors, encoded, child first.
    fn ancestry(&self, id: Digest) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut size = 0;
        let mut next = Some(id);
        while let Some(cur) = next {
            if out.len() >= SYNC_BATCH {
                break;
            }
            let block = self
                .lock()
                .blocks
                .get(&cur)
                .map(|b| (**b).clone())
                .or_else(|| self.chain.block_by_id(&cur));
            let Some(block) = block else { break };
            let bytes = block.to_bytes();
            size += bytes.len();
            if size > MAX_BLOCK_BYTES && !out.is_empty() {
                break;
            }
            out.push(bytes);
            next = (block.header.height > 1).then_some(block.parent_id);
        }
        out
    }
}

/// A transfer with a signature that does not verify (for [`Fault::ForgedTransactions`]).
#[cfg(feature = "mocks")]
fn forged_transaction(header: &BlockHeader, key: &Keypair) -> SignedTx {
    let mut tx = verity_types::Tx {
        chain_id: header.chain_id.clone(),
        signer: key.address(),
        nonce: u64::MAX,
        body: verity_types::TxBody::Transfer {
            to: key.address(),
            amount: 1,
        },
    }
    .sign(key);
    tx.signature.0[0] ^= 1;
    tx
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
                let mut inner = self.lock();
                if inner.finalized.is_none_or(|(v, _)| view > v) {
                    inner.finalized = Some((view, id));
                    drop(inner);
                    self.status.update(|s| s.finalized_view = view);
                }
            }
            Activity::Notarize(v) => self.saw(v.signer().get(), v.view().get()),
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
        let recent = {
            let mut inner = self.lock();
            let e = inner.seen.entry(signer).or_default();
            *e = (*e).max(view);
            let newest = inner.seen.values().copied().max().unwrap_or(0);
            inner
                .seen
                .values()
                .filter(|v| newest.saturating_sub(**v) <= 20)
                .count()
        };
        self.status.update(|s: &mut ConsensusStatus| {
            s.validators_seen = recent;
            s.current_view = s.current_view.max(view);
        });
    }
}
