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
use verity_client::AuditorView;
use verity_ledger::{Job, JobState};
use verity_types::{Digest, Keypair, Mode, TxBody};
use verity_vm::{AdviceData, Inputs, Program, ProveOptions};

use crate::node::Node;

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
    /// Scripted misbehaviour, for tests of what the ledger does to a lying auditor.
    pub fault: Option<AuditorFault>,
}

/// How a scripted auditor misbehaves.
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
            fault: None,
        }
    }
}

/// What an auditor has done since it started.
#[derive(Debug, Default)]
pub struct AuditorCounters {
    pub sampled: AtomicU64,
    pub matched: AtomicU64,
    pub challenged: AtomicU64,
    /// Sampled, but the job's private advice is not on this node, so it cannot re-execute.
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
pub fn sampled(block_id: &Digest, job: &Digest, sample_per_10k: u32) -> bool {
    let mut bytes = block_id.0.to_vec();
    bytes.extend_from_slice(&job.0);
    let h = Digest::blake3(&bytes);
    let draw = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes")) % 10_000;
    draw < u64::from(sample_per_10k)
}

/// Runs until `shutdown` fires.
pub async fn run_auditor(
    node: Arc<Node>,
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
        if event.state != JobState::Fulfilled {
            continue;
        }
        let Ok(Some(block)) = node.storage().block(event.height) else {
            continue;
        };
        if !sampled(&block.to_block().id(), &event.job_id, config.sample_per_10k) {
            continue;
        }
        let Some(job) = node.state().jobs.get(&event.job_id).cloned() else {
            continue;
        };
        if job.request.mode != Mode::Optimistic || job.state != JobState::Fulfilled {
            continue;
        }
        counters.sampled.fetch_add(1, Ordering::Relaxed);
        let node = node.clone();
        let config = config.clone();
        let counters = counters.clone();
        // Each check runs on its own: a slow proof must not delay the next check.
        tokio::spawn(async move { audit(node, config, counters, job).await });
    }
}

async fn audit(node: Arc<Node>, config: AuditorConfig, counters: Arc<AuditorCounters>, job: Job) {
    let id = job.id;
    let advice = match job.request.advice_hash {
        None => AdviceData::default(),
        Some(hash) => match node.storage().blob(&hash).ok().flatten() {
            Some(bytes) => match serde_json::from_slice::<AdviceData>(&bytes) {
                Ok(a) if a.commitment() == hash => a,
                _ => {
                    counters.unverifiable.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            None => {
                counters.unverifiable.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
    };
    let Ok(program) = Program::assemble(&job.request.program, "job.masm") else {
        return;
    };
    let inputs = Inputs {
        stack: job.request.stack_inputs.clone(),
        advice,
    };
    let max = job.request.max_cycles;
    let claimed = job.outputs.clone().unwrap_or_default();
    // Re-execute (fast processor, no proof), and prove only if the result differs.
    let checked = tokio::task::spawn_blocking(move || {
        let outputs = verity_vm::execute_outputs(&program, &inputs, max)?;
        if outputs == claimed {
            return Ok(None);
        }
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
    warn!(job = %id.short(), fulfiller = ?job.fulfiller.map(|f| f.short()), "wrong outputs: challenging with a proof");
    match submit_challenge(&node, &config.key, id, receipt) {
        Ok(_) => {
            counters.challenged.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => warn!(job = %id.short(), "cannot submit the challenge: {e}"),
    }
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
    node: &Node,
    key: &Keypair,
    job_id: Digest,
    receipt: verity_types::Receipt,
) -> Result<Digest, crate::mempool::AdmitError> {
    let body = TxBody::Challenge {
        job_id,
        outputs: receipt.stack_outputs,
        proof: receipt.proof,
    };
    node.sign_and_submit(key, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_a_function_of_public_data_at_the_configured_rate() {
        let block = Digest::blake3(b"block");
        let jobs: Vec<Digest> = (0u32..10_000)
            .map(|i| Digest::blake3(&i.to_le_bytes()))
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
        let other = Digest::blake3(b"other block");
        let differs = jobs
            .iter()
            .filter(|j| sampled(&block, j, 2_500) != sampled(&other, j, 2_500))
            .count();
        assert!(differs > 1_000);
    }
}

/// Probes of one provider in one epoch.
#[derive(Default)]
struct Tally {
    probes: u32,
    answered: u32,
    latencies_ms: Vec<u32>,
}

/// Runs until `shutdown` fires: probes every announced provider endpoint each
/// `probe_interval`, and after each audit epoch ends files one signed `Audit` with what it saw.
pub async fn run_prober(
    node: Arc<Node>,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use std::collections::BTreeMap;
    use verity_ledger::trust::{AUDIT_EPOCH_BLOCKS, MAX_AUDIT_ENTRIES, MAX_PROBES_PER_EPOCH};
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("a plain HTTP client");
    let tallies: Arc<std::sync::Mutex<BTreeMap<(u64, verity_types::Address), Tally>>> =
        Arc::default();
    let mut filed: std::collections::BTreeSet<u64> = Default::default();
    let mut ticker = tokio::time::interval(config.probe_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let state = node.state();
        let epoch = state.height / AUDIT_EPOCH_BLOCKS;

        // File audits for epochs that have ended (and can still be reported).
        let ready: Vec<u64> = {
            let t = tallies.lock().unwrap_or_else(|e| e.into_inner());
            t.keys()
                .map(|(e, _)| *e)
                .filter(|e| *e < epoch && !filed.contains(e))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        for e in ready {
            filed.insert(e);
            let liveness: Vec<verity_types::Liveness> = {
                let mut t = tallies.lock().unwrap_or_else(|e| e.into_inner());
                let keys: Vec<_> = t.keys().filter(|(te, _)| *te == e).copied().collect();
                keys.into_iter()
                    .filter_map(|k| t.remove(&k).map(|tally| (k.1, tally)))
                    .take(MAX_AUDIT_ENTRIES)
                    .map(|(provider, mut tally)| {
                        tally.latencies_ms.sort_unstable();
                        verity_types::Liveness {
                            provider,
                            probes: tally.probes.min(MAX_PROBES_PER_EPOCH),
                            answered: tally.answered.min(tally.probes.min(MAX_PROBES_PER_EPOCH)),
                            median_latency_ms: tally
                                .latencies_ms
                                .get(tally.latencies_ms.len() / 2)
                                .copied()
                                .unwrap_or(0),
                        }
                    })
                    .collect()
            };
            if liveness.is_empty() || e + 2 < epoch {
                continue;
            }
            let body = TxBody::Audit(verity_types::AuditReport { epoch: e, liveness });
            match node.sign_and_submit(&config.key, body) {
                Ok(_) => {
                    counters.audits_filed.fetch_add(1, Ordering::Relaxed);
                    info!(epoch = e, "filed a liveness audit");
                }
                Err(err) => warn!(epoch = e, "cannot file the liveness audit: {err}"),
            }
        }
        filed.retain(|e| e + 3 >= epoch);

        // Probe every announced endpoint, concurrently.
        for (provider, endpoint) in state.endpoints.clone() {
            let (http, tallies, counters) = (http.clone(), tallies.clone(), counters.clone());
            tokio::spawn(async move {
                let nonce = hex::encode(rand::random::<[u8; 16]>());
                let url = format!("{}/v1/ping?nonce={nonce}", endpoint.trim_end_matches('/'));
                let started = std::time::Instant::now();
                let answered = match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        match r.json::<verity_client::PingAnswer>().await {
                            Ok(a) => {
                                let mut sig = [0u8; 64];
                                a.provider == provider
                                    && hex::decode_to_slice(&a.signature, &mut sig).is_ok()
                                    && provider.verify(
                                        &verity_client::ping_message(&provider, &nonce),
                                        &verity_types::Signature(sig),
                                    )
                            }
                            Err(_) => false,
                        }
                    }
                    _ => false,
                };
                let ms = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
                counters.probes.fetch_add(1, Ordering::Relaxed);
                if answered {
                    counters.probes_answered.fetch_add(1, Ordering::Relaxed);
                }
                let mut t = tallies.lock().unwrap_or_else(|e| e.into_inner());
                let tally = t.entry((epoch, provider)).or_default();
                tally.probes += 1;
                if answered {
                    tally.answered += 1;
                    tally.latencies_ms.push(ms);
                }
            });
        }
    }
}
