//! Canary jobs: known-answer jobs a validator sends providers, indistinguishable from client
//! jobs until it reveals them.
//!
//! Before audit epoch `e` starts, the validator draws a random seed, stores it, and commits to
//! it on the ledger (`CanaryCommit`). The seed determines each canary's client key (a fresh
//! address), its program size, its mode and when in the epoch it is sent; the canary's client
//! account is funded in advance from the configured funder, so the job itself is an ordinary
//! `SubmitJob` from an ordinary account, with the SDK's default offer. While a canary runs,
//! the validator watches it: an optimistic canary answered wrong is challenged with a proof
//! (the ledger's existing path). Once every canary of the epoch has ended, the validator
//! reveals the seed with the answers it claims are right (`CanaryReveal`); the ledger checks
//! the opening and judges each canary from what it holds (proofs, challenges, deadlines), and
//! slashes the validator if a proof contradicts a claim.
//!
//! Everything but the seed is recomputed from the seed and the ledger, so a restart loses
//! nothing: the seed is written to storage before the commitment is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{info, warn};
use verity_ledger::trust::{AUDIT_EPOCH_BLOCKS, CANARY_REVEAL_EPOCHS};
use verity_ledger::{JobState, State};
use verity_types::canary::commitment;
use verity_types::{
    CanaryClaim, CanaryReveal, Digest, JobId, Keypair, MODULUS, StackOutputs, TxBody,
};

use crate::auditor::{AuditorConfig, AuditorCounters};
use crate::error::StorageError;
use crate::handle::NodeHandle;
use crate::mempool::AdmitError;

mod challenge;
mod derive;

use challenge::challenge;
pub use derive::{Canary, derive};

/// Why a step of the canary auditor failed (it logs it and tries again on a later block).
#[derive(Debug, thiserror::Error)]
enum CanaryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the seed of epoch {0} is not in storage")]
    SeedMissing(u64),
    #[error("stored canary seed {0} is not 32 bytes")]
    SeedCorrupt(String),
    #[error("cannot derive canary {index} of epoch {epoch}: {reason}")]
    Derive {
        epoch: u64,
        index: u32,
        reason: String,
    },
    #[error("cannot send a transaction: {0}")]
    Send(AdmitError),
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Blocks to wait for a transaction this auditor sent before sending it again.
const RESEND_AFTER: u64 = 30;

fn seed_name(auditor: &verity_types::Address, epoch: u64) -> String {
    format!("canary-seed/{auditor}/{epoch}")
}

/// The canary loop's memory: all of it can be rebuilt from the stored seeds and the ledger.
#[derive(Default)]
struct Canaries {
    seeds: BTreeMap<u64, Digest>,
    derived: BTreeMap<(u64, u32), Canary>,
    /// Height at which a transaction was last sent, by (epoch, what for, canary index).
    sent: BTreeMap<(u64, &'static str, u32), u64>,
    /// Canary jobs being proved for a challenge right now (a proof can take longer than the
    /// resend interval; proving the same job twice would only slow both).
    proving: Arc<std::sync::Mutex<BTreeSet<JobId>>>,
}

impl Canaries {
    /// Sends at most once per [`RESEND_AFTER`] blocks for the same purpose.
    fn due(&mut self, what: (u64, &'static str, u32), height: u64) -> bool {
        match self.sent.get(&what) {
            Some(at) if height < at + RESEND_AFTER => false,
            _ => {
                self.sent.insert(what, height);
                true
            }
        }
    }

    fn proving(&self) -> std::sync::MutexGuard<'_, BTreeSet<JobId>> {
        self.proving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets epochs that can no longer be revealed.
    fn prune(&mut self, epoch: u64) {
        let keep = |e: u64| e + CANARY_REVEAL_EPOCHS + 1 >= epoch;
        self.seeds.retain(|e, _| keep(*e));
        self.derived.retain(|(e, _), _| keep(*e));
        self.sent.retain(|(e, _, _), _| keep(*e));
    }
}

/// The canary auditor of one validator: what it remembers between rounds, and the node it
/// works through.
pub struct CanaryAuditor<H> {
    node: Arc<H>,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    memory: Canaries,
    last_error: Option<(String, u64)>,
}

impl<H: NodeHandle> CanaryAuditor<H> {
    pub fn new(node: Arc<H>, config: AuditorConfig, counters: Arc<AuditorCounters>) -> Self {
        CanaryAuditor {
            node,
            config,
            counters,
            memory: Canaries::default(),
            last_error: None,
        }
    }

    /// One round against the committed state: commit to and fund the next epoch's canaries,
    /// send this epoch's when they are due, challenge wrong answers, reveal ended epochs.
    pub async fn step(&mut self) {
        let state = self.node.state();
        // The phases fail independently: a canary that cannot be funded must not hold up
        // another epoch's reveal. The same error is logged once per RESEND_AFTER blocks.
        let results = [
            self.commit_and_fund(&state).await,
            self.send_due(&state).await,
            self.watch_and_reveal(&state).await,
        ];
        for e in results.into_iter().filter_map(Result::err) {
            let message = e.to_string();
            let repeat = self
                .last_error
                .as_ref()
                .is_some_and(|(m, at)| *m == message && state.height < at + RESEND_AFTER);
            if !repeat {
                warn!("canary auditor: {message}");
                self.last_error = Some((message, state.height));
            }
        }
    }

    /// Commits to the next epoch's seed and funds its canaries.
    async fn commit_and_fund(&mut self, state: &State) -> Result<(), CanaryError> {
        let (node, config, counters, memory) =
            (&self.node, &self.config, &self.counters, &mut self.memory);
        let me = config.key.address();
        let funder = config.canary_funder.clone().unwrap_or(config.key.clone());
        let (h, epoch) = (state.height, state.height / AUDIT_EPOCH_BLOCKS);

        // The seed is stored before the commitment is sent: a crash cannot orphan a commitment.
        let next = epoch + 1;
        if !state.canary_commits.contains_key(&(next, me)) && memory.due((next, "commit", 0), h) {
            let seed = load_or_create_seed(&**node, &config.entropy, &me, next)?;
            memory.seeds.insert(next, seed);
            let commit = TxBody::CanaryCommit {
                epoch: next,
                commitment: commitment(&me, next, &seed),
                count: config.canaries_per_epoch,
            };
            // A failed send is retried after RESEND_AFTER blocks; it must not hold up the rest.
            match send(&**node, &config.key, commit) {
                Ok(()) => {
                    counters.canary_commits.fetch_add(1, Ordering::Relaxed);
                    info!(epoch = next, "committed to canaries");
                }
                Err(e) => warn!(epoch = next, "canary commitment: {e}"),
            }
        }
        // Fund each committed canary's client account an epoch before its job appears.
        if let Some(commit) = state.canary_commits.get(&(next, me)) {
            for i in 0..commit.count {
                let c = canary(node, state, memory, &me, next, i).await?;
                let have = state
                    .accounts
                    .get(&c.key.address())
                    .map_or(0, |a| a.balance);
                // The escrow, the submission's fee, and the fee of sweeping what is left back.
                let need = c.request.offer.max_price
                    + verity_ledger::fee_of(state, &c.submit)
                    + sweep_fee(state);
                if c.send && have < need && memory.due((next, "fund", i), h) {
                    let body = TxBody::Transfer {
                        to: c.key.address(),
                        amount: need - have,
                    };
                    if let Err(e) = send(&**node, &funder, body) {
                        warn!(epoch = next, index = i, "funding a canary: {e}");
                    }
                }
            }
        }

        Ok(())
    }

    /// Sends this epoch's canaries when their time comes.
    async fn send_due(&mut self, state: &State) -> Result<(), CanaryError> {
        let (node, config, counters, memory) =
            (&self.node, &self.config, &self.counters, &mut self.memory);
        let me = config.key.address();
        let (h, epoch) = (state.height, state.height / AUDIT_EPOCH_BLOCKS);
        if let Some(commit) = state.canary_commits.get(&(epoch, me)) {
            for i in 0..commit.count {
                let c = canary(node, state, memory, &me, epoch, i).await?;
                let account = state.accounts.get(&c.key.address());
                let funded = account.is_some_and(|a| {
                    a.balance >= c.request.offer.max_price + verity_ledger::fee_of(state, &c.submit)
                });
                let fresh = account.is_none_or(|a| a.nonce == 0);
                if c.send
                    && h >= epoch * AUDIT_EPOCH_BLOCKS + c.offset
                    && funded
                    && fresh
                    && !node.mempool_contains(&c.submit.id())
                    && memory.due((epoch, "submit", i), h)
                {
                    match node.submit(c.submit.clone()) {
                        Ok(_) => {
                            counters.canaries_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => warn!(epoch, index = i, "cannot send a canary: {e}"),
                    }
                }
            }
        }

        Ok(())
    }

    /// Watches live canaries (challenging wrong answers), reveals ended epochs, and sweeps what
    /// revealed canaries' accounts have left back to the funder.
    async fn watch_and_reveal(&mut self, state: &State) -> Result<(), CanaryError> {
        let (node, config, counters, memory) =
            (&self.node, &self.config, &self.counters, &mut self.memory);
        let me = config.key.address();
        let funder = config.canary_funder.clone().unwrap_or(config.key.clone());
        let (h, epoch) = (state.height, state.height / AUDIT_EPOCH_BLOCKS);
        let live: Vec<(u64, u32)> = state
            .canary_commits
            .range((epoch.saturating_sub(CANARY_REVEAL_EPOCHS), me)..)
            .filter(|((_, who), _)| *who == me)
            .flat_map(|((e, _), c)| (0..c.count).map(move |i| (e, i)))
            .collect();
        // Every unrevealed epoch gets a reveal, even one whose canaries never went out (it then
        // reveals none), so no commitment is left hanging.
        let mut reveals: BTreeMap<u64, Vec<CanaryClaim>> = live
            .iter()
            .filter(|(e, _)| !state.canary_commits[&(*e, me)].revealed)
            .map(|(e, _)| (*e, Vec::new()))
            .collect();
        let mut open: BTreeSet<u64> = BTreeSet::new();
        for (e, i) in live {
            let revealed = state.canary_commits[&(e, me)].revealed;
            // One epoch that cannot be derived (its seed lost with a wiped data directory) must
            // not stop the others.
            let c = match canary(node, state, memory, &me, e, i).await {
                Ok(c) => c,
                Err(err) => {
                    if memory.due((e, "underivable", i), h) {
                        warn!(epoch = e, index = i, "{err}");
                    }
                    reveals.remove(&e);
                    continue;
                }
            };
            if revealed {
                sweep(&**node, state, memory, &funder, &c, (e, i));
                continue;
            }
            let Some(job) = state.jobs.get(&c.job_id) else {
                continue;
            };
            challenge_if_wrong(node, config, counters, memory, &c, job, (e, i), h);
            let in_epoch = (e * AUDIT_EPOCH_BLOCKS..(e + 1) * AUDIT_EPOCH_BLOCKS)
                .contains(&job.submitted_height);
            if !in_epoch {
                continue;
            }
            if !job.state().is_terminal() {
                open.insert(e);
            }
            reveals.entry(e).or_default().push(claim(config, &c, i));
        }
        for (e, canaries) in reveals {
            if e < epoch && !open.contains(&e) && memory.due((e, "reveal", 0), h) {
                reveal(&**node, config, counters, memory, e, canaries);
            }
        }
        memory.prune(epoch);
        Ok(())
    }

    /// Challenge proofs of wrong canary answers running now (a test waits for them).
    pub fn proving(&self) -> usize {
        self.memory.proving().len()
    }
}

/// Runs until `shutdown` fires: a [`CanaryAuditor::step`] every 200 ms. Commits to
/// `config.canaries_per_epoch` canary slots each epoch, and sends each with probability 1/V
/// (V validators; see [`Canary::send`]).
pub async fn run_canaries<H: NodeHandle>(
    node: Arc<H>,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if config.canaries_per_epoch == 0 {
        return;
    }
    info!(auditor = %config.key.address().short(), per_epoch = config.canaries_per_epoch, "canary auditor started");
    let mut auditor = CanaryAuditor::new(node, config, counters);
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(200));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        auditor.step().await;
    }
}

/// Challenges live canary `c` (`job` on the ledger) if it was answered wrong: one proof at a
/// time per job, and at most once per [`RESEND_AFTER`] blocks.
#[allow(clippy::too_many_arguments)] // the loop's context, passed through unchanged
fn challenge_if_wrong<H: NodeHandle>(
    node: &Arc<H>,
    config: &AuditorConfig,
    counters: &Arc<AuditorCounters>,
    memory: &mut Canaries,
    c: &Canary,
    job: &verity_ledger::Job,
    (e, i): (u64, u32),
    h: u64,
) {
    if job.state() == JobState::Fulfilled
        && job.outputs() != Some(&c.expected)
        && !memory.proving().contains(&job.id)
        && memory.due((e, "challenge", i), h)
    {
        memory.proving().insert(job.id);
        warn!(job = %job.id.short(), fulfiller = ?job.fulfiller().map(|f| f.short()), "a canary was answered wrong: challenging with a proof");
        tokio::spawn(challenge(
            node.clone(),
            config.clone(),
            counters.clone(),
            memory.proving.clone(),
            c.clone(),
        ));
    }
}

/// What this auditor claims canary `c` (slot `i`) had to output: the right answer, unless it
/// was scripted to lie (`mocks`).
fn claim(config: &AuditorConfig, c: &Canary, i: u32) -> CanaryClaim {
    let mut expected = c.expected;
    if config.claims_falsely() {
        let mut wrong = expected.to_vec();
        wrong[0] = (wrong[0] + 1) % MODULUS;
        expected = StackOutputs::new(&wrong).expect("16 field elements");
    }
    CanaryClaim {
        index: i,
        job_id: c.job_id,
        expected,
    }
}

/// Sends what a revealed canary's account has left (refunds, or funds never spent) back to
/// the funder.
fn sweep(
    node: &impl NodeHandle,
    state: &State,
    memory: &mut Canaries,
    funder: &Keypair,
    c: &Canary,
    (e, i): (u64, u32),
) {
    let left = state
        .accounts
        .get(&c.key.address())
        .map_or(0, |a| a.balance);
    if left > sweep_fee(state) && memory.due((e, "sweep", i), state.height) {
        let body = TxBody::Transfer {
            to: funder.address(),
            amount: left - sweep_fee(state),
        };
        if let Err(err) = send(node, &c.key, body) {
            warn!(epoch = e, index = i, "sweeping a canary account: {err}");
        }
    }
}

/// Reveals epoch `e`'s seed and what its canaries had to output.
fn reveal(
    node: &impl NodeHandle,
    config: &AuditorConfig,
    counters: &AuditorCounters,
    memory: &Canaries,
    e: u64,
    canaries: Vec<CanaryClaim>,
) {
    let Some(seed) = memory.seeds.get(&e).copied() else {
        return;
    };
    let n = canaries.len();
    let reveal = TxBody::CanaryReveal(CanaryReveal {
        epoch: e,
        seed,
        canaries,
    });
    match send(node, &config.key, reveal) {
        Ok(()) => {
            counters.canary_reveals.fetch_add(1, Ordering::Relaxed);
            info!(epoch = e, canaries = n, "revealed canaries");
        }
        Err(err) => warn!(epoch = e, "revealing canaries: {err}"),
    }
}

/// Canary `i` of epoch `e`, derived once (the seed comes from memory or storage).
async fn canary<H: NodeHandle>(
    node: &Arc<H>,
    state: &State,
    memory: &mut Canaries,
    me: &verity_types::Address,
    e: u64,
    i: u32,
) -> Result<Canary, CanaryError> {
    if let Some(c) = memory.derived.get(&(e, i)) {
        return Ok(c.clone());
    }
    let seed = match memory.seeds.get(&e) {
        Some(s) => *s,
        None => {
            let seed = stored_seed(&**node, me, e)?.ok_or(CanaryError::SeedMissing(e))?;
            memory.seeds.insert(e, seed);
            seed
        }
    };
    let (chain, me2) = (state.chain_id.clone(), *me);
    let validators = state.stakes.values().filter(|s| s.validator > 0).count() as u64;
    let block_ms = node.block_interval_ms();
    let c = tokio::task::spawn_blocking(move || {
        derive(&chain, &me2, e, &seed, i, validators, block_ms)
    })
    .await?
    .map_err(|reason| CanaryError::Derive {
        epoch: e,
        index: i,
        reason,
    })?;
    memory.derived.insert((e, i), c.clone());
    Ok(c)
}

fn stored_seed(
    node: &impl NodeHandle,
    me: &verity_types::Address,
    epoch: u64,
) -> Result<Option<Digest>, CanaryError> {
    let name = seed_name(me, epoch);
    let Some(bytes) = node.secret(&name)? else {
        return Ok(None);
    };
    let seed = <[u8; 32]>::try_from(bytes).map_err(|_| CanaryError::SeedCorrupt(name))?;
    Ok(Some(Digest(seed)))
}

fn load_or_create_seed(
    node: &impl NodeHandle,
    entropy: &crate::entropy::Entropy,
    me: &verity_types::Address,
    epoch: u64,
) -> Result<Digest, CanaryError> {
    if let Some(seed) = stored_seed(node, me, epoch)? {
        return Ok(seed);
    }
    let seed = Digest(entropy.bytes());
    node.put_secret(&seed_name(me, epoch), &seed.0)?;
    Ok(seed)
}

fn send(node: &impl NodeHandle, key: &Keypair, body: TxBody) -> Result<(), CanaryError> {
    node.sign_and_submit(key, body)
        .map(|_| ())
        .map_err(CanaryError::Send)
}

/// The fee of the transfer that sweeps a canary account (a transfer is well under 1 KiB).
fn sweep_fee(state: &State) -> u64 {
    state.params.fee_base + state.params.fee_per_kib
}
