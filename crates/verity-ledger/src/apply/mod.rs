//! The state transition: `apply_block(state, header, txs)`.
//!
//! Order within a block: (1) deadlines due at this height (expiry, slashing, optimistic
//! finalization, unbonding releases), in `(height, job id)` order; (2) the transactions, in
//! block order. Each handler checks everything before it changes anything, so a rejected
//! transaction leaves the state exactly as it was.

mod accounts;
mod audits;
mod canaries;
mod deadlines;
mod jobs;
mod programs;

use std::collections::BTreeMap;
use std::sync::Mutex;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use verity_types::{Address, Digest, JobId, ProgramHash, SignedTx, StackOutputs, TxBody, TxId};

use crate::admission::{Admissible, precheck_with};
use crate::error::{BlockError, TxError};
use crate::state::{ChangeSet, Job, JobState, State, TimelineEntry};

/// What the block producer decided: everything else is derived from it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BlockHeader {
    pub chain_id: String,
    pub height: u64,
    pub timestamp_ms: u64,
    pub parent: Digest,
    pub proposer: Address,
}

/// Something that happened to a job in this block (for event streams and logs).
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Event {
    pub height: u64,
    pub job_id: JobId,
    pub state: JobState,
    pub tx: Option<TxId>,
    pub note: String,
}

/// The result of applying a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// One entry per transaction, in block order.
    pub tx_results: Vec<Result<(), TxError>>,
    pub events: Vec<Event>,
    /// What the block changed (with whatever was pending before it, e.g. genesis): the
    /// entries a store writes for this block.
    pub changes: ChangeSet,
    /// Jobs that left the state at this block, their retention over (`Params::job_retention`):
    /// a node archives their records from the parent state.
    pub retired: Vec<JobId>,
}

/// Results of proof verifications done ahead of the sequential apply (e.g. in parallel). Keyed
/// by a digest of everything the verification depends on, so a cached result can only be used
/// for exactly the same check.
#[derive(Debug, Default)]
pub struct ProofCache(Mutex<BTreeMap<Digest, Result<u64, String>>>);

fn proof_key(
    program_hash: &ProgramHash,
    inputs: &[u64],
    outputs: &StackOutputs,
    proof: &[u8],
) -> Digest {
    let bytes = borsh::to_vec(&(program_hash, inputs, outputs, Digest::blake3(proof)))
        .expect("encoding to a Vec cannot fail");
    Digest::blake3(&bytes)
}

impl ProofCache {
    fn verify(
        &self,
        program_hash: &ProgramHash,
        inputs: &[u64],
        outputs: &StackOutputs,
        proof: &[u8],
    ) -> Result<u64, String> {
        let key = proof_key(program_hash, inputs, outputs, proof);
        if let Some(hit) = self.0.lock().expect("proof cache lock").get(&key) {
            return hit.clone();
        }
        let result = verity_vm::verify_proof(program_hash, inputs, outputs, proof)
            .map(|verified| verified.trace_len)
            .map_err(|e| e.to_string());
        self.0
            .lock()
            .expect("proof cache lock")
            .insert(key, result.clone());
        result
    }
}

/// Applies a block, verifying proofs one after another on this thread.
pub fn apply_block(
    state: &mut State,
    header: &BlockHeader,
    txs: &[SignedTx],
) -> Result<BlockOutcome, BlockError> {
    apply_block_with(state, header, txs, &ProofCache::default())
}

/// Applies a block after verifying every proof it carries on `threads` worker threads. The
/// result is identical to [`apply_block`]: verification is a pure function, and the apply
/// itself stays sequential.
pub fn apply_block_parallel(
    state: &mut State,
    header: &BlockHeader,
    txs: &[SignedTx],
    threads: usize,
) -> Result<BlockOutcome, BlockError> {
    let cache = ProofCache::default();
    // Collect the checks we can predict from the pre-block state.
    struct Check<'t> {
        program_hash: ProgramHash,
        inputs: Vec<u64>,
        outputs: &'t StackOutputs,
        proof: &'t [u8],
    }
    let mut checks: Vec<Check> = Vec::new();
    for tx in txs {
        let (job_id, outputs, proof) = match &tx.tx.body {
            TxBody::Fulfil {
                job_id,
                outputs,
                proof: Some(proof),
                ..
            } => (job_id, outputs, proof),
            TxBody::Challenge {
                job_id,
                outputs,
                proof,
                ..
            } => (job_id, outputs, proof),
            _ => continue,
        };
        // Verify ahead only what could be included: a proof in a transaction with a forged
        // signature would otherwise cost every validator a verification for free.
        if !tx.signature_is_valid() {
            continue;
        }
        if let Some(job) = state.jobs.get(job_id) {
            checks.push(Check {
                program_hash: job.program_hash,
                inputs: job.proof_inputs(),
                outputs,
                proof,
            });
        }
    }
    let threads = threads.max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(checks.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(c) = checks.get(i) else {
                        break;
                    };
                    let _ = cache.verify(&c.program_hash, &c.inputs, c.outputs, c.proof);
                }
            });
        }
    });
    apply_block_with(state, header, txs, &cache)
}

fn apply_block_with(
    state: &mut State,
    header: &BlockHeader,
    txs: &[SignedTx],
    proofs: &ProofCache,
) -> Result<BlockOutcome, BlockError> {
    if header.chain_id != state.chain_id {
        return Err(BlockError::WrongChain {
            expected: state.chain_id.clone(),
            got: header.chain_id.clone(),
        });
    }
    if header.height != state.height + 1 {
        return Err(BlockError::WrongHeight {
            current: state.height,
            got: header.height,
        });
    }
    if header.timestamp_ms < state.timestamp_ms {
        return Err(BlockError::TimeWentBackwards {
            previous: state.timestamp_ms,
            got: header.timestamp_ms,
        });
    }
    if txs.len() > state.params.max_block_txs as usize {
        return Err(BlockError::TooManyTxs {
            got: txs.len(),
            limit: state.params.max_block_txs as usize,
        });
    }
    let bytes: usize = txs.iter().map(|tx| tx.encoded_len()).sum();
    if bytes > state.params.max_block_bytes as usize {
        return Err(BlockError::TooManyBytes {
            got: bytes,
            limit: state.params.max_block_bytes as usize,
        });
    }
    let ops: Vec<u64> = txs
        .iter()
        .map(|tx| crate::admission::assembly_ops(&tx.tx.body))
        .collect();
    let assembly = ops.iter().copied().fold(0, u64::saturating_add);
    if assembly > state.params.max_block_assembly_ops {
        return Err(BlockError::TooMuchAssembly {
            got: assembly,
            limit: state.params.max_block_assembly_ops,
        });
    }
    // Every signature at once, as one batch equation (about half the cost of checking
    // each): the same answer as checking each, so when the batch holds no transaction checks
    // its own; when it does not, each is checked alone to find which.
    let reads = state.watch_reads();
    let signatures = if SignedTx::signatures_are_valid(txs) {
        Signatures::AllValid
    } else {
        Signatures::CheckEach
    };
    state.height = header.height;
    state.timestamp_ms = header.timestamp_ms;

    let mut ctx = Ctx {
        state,
        header,
        proofs,
        signatures,
        events: Vec::new(),
        retired: Vec::new(),
    };
    ctx.run_deadlines();
    let tx_results = txs
        .iter()
        .zip(ops)
        .map(|(tx, ops)| ctx.apply_tx(tx, ops))
        .collect();
    let (events, retired) = (ctx.events, ctx.retired);
    reads.check(state).map_err(BlockError::StateUnreadable)?;
    Ok(BlockOutcome {
        tx_results,
        events,
        changes: state.drain_changes(),
        retired,
    })
}

/// Refuses a transaction on `job` unless the job is in `state` (`expected` names it).
fn require_state(job: &Job, state: JobState, expected: &'static str) -> Result<(), TxError> {
    if job.state() != state {
        return Err(wrong_state(job, expected));
    }
    Ok(())
}

/// A transaction came for `job` in a phase that does not take it.
fn wrong_state(job: &Job, expected: &'static str) -> TxError {
    TxError::WrongState {
        job: job.id,
        state: job.state(),
        expected,
    }
}

/// Refuses a transaction at height `h` once `deadline` (`what`) has come.
fn require_before(h: u64, deadline: u64, what: &str) -> Result<(), TxError> {
    if h >= deadline {
        return Err(TxError::DeadlinePassed(format!(
            "{what} was block {deadline}"
        )));
    }
    Ok(())
}

/// What is known of a block's signatures before its transactions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signatures {
    /// All of them hold (checked as one batch).
    AllValid,
    /// Some do not: each transaction's is checked as it runs.
    CheckEach,
}

struct Ctx<'a> {
    state: &'a mut State,
    header: &'a BlockHeader,
    proofs: &'a ProofCache,
    signatures: Signatures,
    events: Vec<Event>,
    retired: Vec<JobId>,
}

impl Ctx<'_> {
    fn h(&self) -> u64 {
        self.header.height
    }

    /// Writes the step a job just took (into its phase) on its timeline and as an event.
    fn record(&mut self, job_id: JobId, tx: Option<TxId>, note: String) {
        let (height, timestamp_ms) = (self.header.height, self.header.timestamp_ms);
        let Some(job) = self.state.jobs.get_mut(&job_id) else {
            debug_assert!(false, "a job is recorded after it is stored");
            return;
        };
        let state = job.state();
        job.timeline.push(TimelineEntry {
            height,
            timestamp_ms,
            state,
            tx,
            note: note.clone(),
        });
        self.events.push(Event {
            height,
            job_id,
            state,
            tx,
            note,
        });
    }

    fn credit(&mut self, who: Address, amount: u64) {
        // Cannot overflow: every amount comes out of the conserved supply, itself a u64.
        self.state.accounts.entry(who).or_default().balance += amount;
    }

    fn stats(&mut self, who: Address) -> &mut crate::state::ProviderStats {
        self.state.providers.entry(who).or_default()
    }

    /// Applies one transaction whose program (if any) costs `assembly_ops` to assemble.
    fn apply_tx(&mut self, stx: &SignedTx, assembly_ops: u64) -> Result<(), TxError> {
        let expected = self
            .state
            .accounts
            .get(&stx.tx.signer)
            .map_or(0, |a| a.nonce);
        let Admissible { fee, .. } =
            precheck_with(self.state, stx, expected, self.signatures, |_| assembly_ops)?;
        // Includable: from here on the fee is paid and the nonce consumed whatever the body
        // does, so a rejected transaction can never execute later (a replay once the account
        // is funded, say), and every transaction costs its sender.
        let tx = &stx.tx;
        let account = self.state.accounts.entry(tx.signer).or_default();
        account.balance -= fee;
        account.nonce += 1;
        self.state.burned += fee;
        self.state.fees_burned += fee;
        let id = stx.id();
        let signer = tx.signer;
        match &tx.body {
            TxBody::Transfer { to, amount } => self.transfer(signer, *to, *amount),
            TxBody::Stake { role, amount } => self.stake(signer, *role, *amount),
            TxBody::Unstake { role, amount } => self.unstake(signer, *role, *amount),
            TxBody::PublishProgram { source } => self.publish(signer, source),
            TxBody::SubmitJob(req) => self.submit(signer, id, req),
            TxBody::LockJob { job_id } => self.lock(signer, id, *job_id),
            TxBody::Fulfil {
                job_id,
                outputs,
                proof,
                cycles,
            } => self.fulfil(signer, id, *job_id, outputs, proof.as_deref(), *cycles),
            TxBody::Challenge {
                job_id,
                outputs,
                proof,
                cycles,
            } => self.challenge(signer, id, *job_id, outputs, proof, *cycles),
            TxBody::ProvideInputs { job_id, sealed } => {
                self.provide_inputs(signer, id, *job_id, sealed)
            }
            TxBody::ReleaseLock { job_id } => self.release_lock(signer, id, *job_id),
            TxBody::Announce { endpoint } => self.announce(signer, endpoint),
            TxBody::Audit(report) => self.audit(signer, report),
            TxBody::CanaryCommit {
                epoch,
                commitment,
                count,
            } => self.canary_commit(signer, *epoch, *commitment, *count),
            TxBody::CanaryReveal(reveal) => self.canary_reveal(signer, reveal),
        }
    }
}
