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
use verity_types::{Digest, Keypair, Mode, Tx, TxBody};
use verity_vm::{AdviceData, Inputs, Program, ProveOptions};

use crate::node::Node;

#[derive(Debug, Clone)]
pub struct AuditorConfig {
    /// Signs challenges (and receives the bonds they win): the validator's key.
    pub key: Keypair,
    /// Fulfilments checked, per 10,000.
    pub sample_per_10k: u32,
}

/// What an auditor has done since it started.
#[derive(Debug, Default)]
pub struct AuditorCounters {
    pub sampled: AtomicU64,
    pub matched: AtomicU64,
    pub challenged: AtomicU64,
    /// Sampled, but the job's private advice is not on this node, so it cannot re-execute.
    pub unverifiable: AtomicU64,
}

impl AuditorCounters {
    pub fn view(&self, sample_per_10k: u32) -> AuditorView {
        AuditorView {
            sample_per_10k,
            sampled: self.sampled.load(Ordering::Relaxed),
            matched: self.matched.load(Ordering::Relaxed),
            challenged: self.challenged.load(Ordering::Relaxed),
            unverifiable: self.unverifiable.load(Ordering::Relaxed),
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
        let options = ProveOptions {
            max_cycles: max,
            ..Default::default()
        };
        verity_vm::prove(&program, &inputs, options).map(Some)
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
    let tx = Tx {
        chain_id: node.state().chain_id.clone(),
        signer: config.key.address(),
        nonce: node.next_nonce(&config.key.address()),
        body: TxBody::Challenge {
            job_id: id,
            outputs: receipt.stack_outputs.clone(),
            proof: receipt.proof.clone(),
        },
    }
    .sign(&config.key);
    match node.submit(tx) {
        Ok(_) => {
            counters.challenged.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => warn!(job = %id.short(), "cannot submit the challenge: {e}"),
    }
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
