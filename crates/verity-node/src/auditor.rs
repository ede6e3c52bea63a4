//! The re-execution auditor a validator runs: it watches optimistic fulfilments, re-executes
//! a sample of them with Miden's fast processor, and when a provider's outputs are wrong it
//! proves the right ones and challenges through the ledger's existing challenge path (the
//! bond pays the auditor, the client is refunded, the provider's record shows the overturn).
//!
//! Which fulfilments are checked is decided by the hash of the block that recorded them, so
//! a provider cannot know in advance whether its result will be checked, and anyone can verify
//! which ones the auditor was supposed to check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};
use verity_api::AuditorView;
use verity_ledger::{Event, Job, JobState};
use verity_types::{BlockId, Digest, JobId, Keypair, Mode, TxBody, TxId};
use verity_vm::{Inputs, Program, ProveOptions};

use crate::entropy::Entropy;
use crate::handle::NodeHandle;

#[derive(Debug, Clone)]
pub struct AuditorConfig {
    /// Signs challenges (and receives the bonds they win): the validator's key.
    pub key: Keypair,
    /// Fulfilments checked, per 10,000.
    pub sample_per_10k: u32,
    /// How often each announced provider endpoint is probed for liveness.
    pub probe_interval: std::time::Duration,
    /// Canary slots committed per audit epoch (0: none); each is sent with probability 1/V
    /// (V validators), so the network sends about this many per epoch.
    pub canaries_per_epoch: u32,
    /// Pays for canaries (their client accounts are funded from it). `None`: the validator's
    /// own key, which links each canary's funding to a validator on the ledger; an operator
    /// should fund a separate key through the channels ordinary clients use.
    pub canary_funder: Option<Keypair>,
    /// Probe endpoints on loopback and private addresses too (devnets and tests). Off by
    /// default, so a provider cannot point validators at their own internal services.
    pub probe_private_hosts: bool,
    /// Draws canary seeds and probe nonces.
    pub entropy: Entropy,
    /// Scripted misbehaviour, for tests of what the ledger does to a lying auditor (`mocks`
    /// feature only).
    #[cfg(feature = "mocks")]
    pub fault: Option<AuditorFault>,
}

/// How a scripted auditor misbehaves (`mocks` feature only: a production auditor cannot be
/// told to lie).
#[cfg(feature = "mocks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditorFault {
    /// Reveals canaries with answers that differ from the right ones.
    FalseCanaryClaims,
}

impl AuditorConfig {
    pub fn new(key: Keypair) -> AuditorConfig {
        AuditorConfig {
            key,
            sample_per_10k: 2_500,
            probe_interval: std::time::Duration::from_secs(2),
            canaries_per_epoch: 1,
            canary_funder: None,
            probe_private_hosts: false,
            entropy: Entropy::os(),
            #[cfg(feature = "mocks")]
            fault: None,
        }
    }

    /// Whether this auditor was told to reveal false canary claims (never, without `mocks`).
    pub(crate) fn claims_falsely(&self) -> bool {
        #[cfg(feature = "mocks")]
        return self.fault == Some(AuditorFault::FalseCanaryClaims);
        #[cfg(not(feature = "mocks"))]
        false
    }
}

/// What an auditor has done since it started.
#[derive(Debug, Default)]
pub struct AuditorCounters {
    pub sampled: AtomicU64,
    pub matched: AtomicU64,
    pub challenged: AtomicU64,
    /// Sampled, but the job's private inputs are sealed to its locker, so it cannot re-execute.
    pub unverifiable: AtomicU64,
    pub probes: AtomicU64,
    pub probes_answered: AtomicU64,
    pub audits_filed: AtomicU64,
    pub canary_commits: AtomicU64,
    pub canaries_sent: AtomicU64,
    pub canaries_challenged: AtomicU64,
    pub canary_reveals: AtomicU64,
}

impl AuditorCounters {
    pub fn view(&self, sample_per_10k: u32) -> AuditorView {
        AuditorView {
            sample_per_10k,
            sampled: self.sampled.load(Ordering::Relaxed),
            matched: self.matched.load(Ordering::Relaxed),
            challenged: self.challenged.load(Ordering::Relaxed),
            unverifiable: self.unverifiable.load(Ordering::Relaxed),
            probes: self.probes.load(Ordering::Relaxed),
            probes_answered: self.probes_answered.load(Ordering::Relaxed),
            audits_filed: self.audits_filed.load(Ordering::Relaxed),
            canary_commits: self.canary_commits.load(Ordering::Relaxed),
            canaries_sent: self.canaries_sent.load(Ordering::Relaxed),
            canaries_challenged: self.canaries_challenged.load(Ordering::Relaxed),
            canary_reveals: self.canary_reveals.load(Ordering::Relaxed),
        }
    }
}

/// Is the fulfilment of `job` recorded in block `block_id` in the sample? A pure function of
/// public data: anyone can recompute which fulfilments an auditor had to check.
pub fn sampled(block_id: &BlockId, job: &JobId, sample_per_10k: u32) -> bool {
    let mut bytes = block_id.0.0.to_vec();
    bytes.extend_from_slice(&job.0.0);
    let h = Digest::blake3(&bytes);
    let draw = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes")) % 10_000;
    draw < u64::from(sample_per_10k)
}

/// Runs until `shutdown` fires: [`check_event`] on every job event.
pub async fn run_auditor<H: NodeHandle>(
    node: Arc<H>,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut events = node.subscribe();
    info!(
        auditor = %config.key.address().short(),
        rate = config.sample_per_10k,
        "re-execution auditor started (per 10,000 optimistic fulfilments)"
    );
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = shutdown.changed() => return,
        };
        let event = match event {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                warn!("auditor fell behind and skipped {n} events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        check_event(&node, &config, &counters, &event);
    }
}

/// Starts the re-execution of the job `event` fulfilled, if the sample picks it; returns the
/// running check (a test awaits it). Each check runs on its own: a slow proof must not delay
/// the next one.
pub fn check_event<H: NodeHandle>(
    node: &Arc<H>,
    config: &AuditorConfig,
    counters: &Arc<AuditorCounters>,
    event: &Event,
) -> Option<tokio::task::JoinHandle<()>> {
    if event.state != JobState::Fulfilled {
        return None;
    }
    let block_id = node.block_id(event.height).ok()??;
    if !sampled(&block_id, &event.job_id, config.sample_per_10k) {
        return None;
    }
    let job = node.state().jobs.get(&event.job_id).cloned()?;
    if job.request.mode != Mode::Optimistic || job.state() != JobState::Fulfilled {
        return None;
    }
    counters.sampled.fetch_add(1, Ordering::Relaxed);
    let (node, config, counters) = (node.clone(), config.clone(), counters.clone());
    Some(tokio::spawn(async move {
        audit(node, config, counters, job).await
    }))
}

async fn audit<H: NodeHandle>(
    node: Arc<H>,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    job: Job,
) {
    let id = job.id;
    // Private inputs are sealed to the locker: only it and the client know them, so an
    // auditor cannot re-execute the job (the client can still challenge a wrong result).
    if job.request.private_inputs.is_some() {
        counters.unverifiable.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Some(source) = node
        .state()
        .program_source(&job.request.program)
        .map(str::to_string)
    else {
        return;
    };
    let Ok(job_program) =
        tokio::task::spawn_blocking(move || verity_vm::assemble_job(&source, None, u64::MAX))
            .await
            .unwrap_or_else(|e| Err(verity_vm::VmError::Assembly(e.to_string())))
    else {
        return;
    };
    let program = job_program.program;
    let Ok(inputs) = verity_vm::job_inputs(&job.request.stack_inputs, None) else {
        return;
    };
    let max = job.request.max_cycles;
    let claimed = job.outputs().copied();
    let bond = job.bond();
    let min_bond = min_bond_to_prove(max, &node.state().params);
    // Re-execute (fast processor, no proof), and prove only if the result differs.
    let checked = tokio::task::spawn_blocking(move || {
        let outputs = verity_vm::execute_outputs(&program, &inputs, max)?;
        if Some(outputs) == claimed {
            return Ok(None);
        }
        // A proof costs up to the cycle cap in time and memory. Prove only when the bond
        // pays for it, and one proof at a time: wrong results fed in bulk (say, from an
        // attacker's own client to its own provider) cannot exhaust the auditor.
        if bond < min_bond {
            return Err(verity_vm::VmError::Proving(format!(
                "bond {bond} does not cover a proof of up to {max} cycles; not challenging"
            )));
        }
        let Ok(_permit) = CHALLENGE_PROOFS.try_lock() else {
            return Err(verity_vm::VmError::Proving(
                "another challenge proof is in progress; not challenging this one".into(),
            ));
        };
        prove_within(&program, &inputs, max).map(Some)
    })
    .await;
    let receipt = match checked {
        Ok(Ok(None)) => {
            counters.matched.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(Ok(Some(receipt))) => receipt,
        Ok(Err(e)) => {
            warn!(job = %id.short(), "re-execution failed: {e}");
            return;
        }
        Err(_) => return,
    };
    warn!(job = %id.short(), fulfiller = ?job.fulfiller().map(|f| f.short()), "wrong outputs: challenging with a proof");
    match submit_challenge(&*node, &config.key, id, receipt) {
        Ok(_) => {
            counters.challenged.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => warn!(job = %id.short(), "cannot submit the challenge: {e}"),
    }
}

/// One challenge proof at a time per process (a proof uses every core and up to ~10 GB).
static CHALLENGE_PROOFS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The smallest bond worth a challenge proof of a job capped at `max_cycles`: the half the
/// challenger wins must pay the challenge's fee (a proof of up to 256 KiB) and one unit per
/// 1,024 cycles of the cap for the proving itself.
pub fn min_bond_to_prove(max_cycles: u32, params: &verity_ledger::Params) -> u64 {
    let fee = params.fee_base + params.fee_per_kib * 256 + params.fee_per_proof;
    2 * (fee + u64::from(max_cycles).div_ceil(1024))
}

/// Proves `program` on `inputs` within the job's cycle cap: the proof a challenge carries.
/// CPU-heavy: call it from a blocking thread.
pub(crate) fn prove_within(
    program: &Program,
    inputs: &Inputs,
    max_cycles: u32,
) -> Result<verity_types::Receipt, verity_vm::VmError> {
    let options = ProveOptions {
        max_cycles,
        ..Default::default()
    };
    verity_vm::prove(program, inputs, options)
}

/// Challenges `job_id`'s outputs with `receipt` (a proof of different ones), signed by `key`.
pub(crate) fn submit_challenge(
    node: &impl NodeHandle,
    key: &Keypair,
    job_id: JobId,
    receipt: verity_types::Receipt,
) -> Result<TxId, crate::mempool::AdmitError> {
    let body = TxBody::Challenge {
        job_id,
        outputs: receipt.stack_outputs,
        proof: receipt.proof,
        cycles: receipt.cycles,
    };
    node.sign_and_submit(key, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_proven_only_when_half_the_bond_pays_for_it() {
        let params = verity_ledger::Params::default();
        let min = min_bond_to_prove(1 << 20, &params);
        // The largest challenge the ledger takes (proof at its 512 KiB cap is refused; 256 KiB
        // is the planning size) costs less than what the challenger wins.
        let fee = params.fee_base + params.fee_per_kib * 256 + params.fee_per_proof;
        assert!(min / 2 >= fee + 1024, "min bond {min}, fee {fee}");
        // A zero bond (an attacker feeding wrong results to itself for free) never qualifies.
        assert!(min_bond_to_prove(verity_vm::MIN_MAX_CYCLES, &params) > 0);
    }

    #[test]
    fn the_sample_is_a_function_of_public_data_at_the_configured_rate() {
        let block = BlockId(Digest::blake3(b"block"));
        let jobs: Vec<JobId> = (0u32..10_000)
            .map(|i| JobId(Digest::blake3(&i.to_le_bytes())))
            .collect();
        let count = |rate| jobs.iter().filter(|j| sampled(&block, j, rate)).count();
        assert_eq!(count(0), 0);
        assert_eq!(count(10_000), 10_000);
        let quarter = count(2_500);
        assert!(
            (2_300..2_700).contains(&quarter),
            "{quarter} of 10,000 at 25%"
        );
        // Same inputs, same answer; another block draws another sample.
        let again = jobs.iter().filter(|j| sampled(&block, j, 2_500)).count();
        assert_eq!(again, quarter);
        let other = BlockId(Digest::blake3(b"other block"));
        let differs = jobs
            .iter()
            .filter(|j| sampled(&block, j, 2_500) != sampled(&other, j, 2_500))
            .count();
        assert!(differs > 1_000);
    }
}
