//! The state transition: `apply_block(state, header, txs)`.
//!
//! Order within a block: (1) deadlines due at this height (expiry, slashing, optimistic
//! finalization, unbonding releases), in `(height, job id)` order; (2) the transactions, in
//! block order. Each handler checks everything before it changes anything, so a rejected
//! transaction leaves the state exactly as it was.

use std::collections::BTreeMap;
use std::sync::Mutex;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use verity_types::{
    Address, AuditReport, CanaryReveal, Digest, JobRequest, Mode, ProgramSource, Role, SignedTx,
    StackOutputs, TxBody,
};

use crate::admission::{Admissible, precheck_with};
use crate::error::{BlockError, TxError};
use crate::state::{Job, JobState, Provenance, PublishedProgram, State, TimelineEntry, Unbonding};

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
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Event {
    pub height: u64,
    pub job_id: Digest,
    pub state: JobState,
    pub tx: Option<Digest>,
    pub note: String,
}

/// The result of applying a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// One entry per transaction, in block order.
    pub tx_results: Vec<Result<(), TxError>>,
    pub events: Vec<Event>,
    pub state_root: Digest,
}

/// Results of proof verifications done ahead of the sequential apply (e.g. in parallel). Keyed
/// by a digest of everything the verification depends on, so a cached result can only be used
/// for exactly the same check.
#[derive(Debug, Default)]
pub struct ProofCache(Mutex<BTreeMap<Digest, Result<(), String>>>);

fn proof_key(
    program_hash: &Digest,
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
        program_hash: &Digest,
        inputs: &[u64],
        outputs: &StackOutputs,
        proof: &[u8],
    ) -> Result<(), String> {
        let key = proof_key(program_hash, inputs, outputs, proof);
        if let Some(hit) = self.0.lock().expect("proof cache lock").get(&key) {
            return hit.clone();
        }
        let result = verity_vm::verify_proof(program_hash, inputs, outputs, proof)
            .map(|_| ())
            .map_err(|e| e.to_string());
        self.0
            .lock()
            .expect("proof cache lock")
            .insert(key, result.clone());
        result
    }
}

/// A program's first raw advice read (unverified hint), as "`instruction` on line N": what
/// keeps its jobs out of optimistic mode, named in the refusal.
fn first_advice_read(shape: &verity_vm::ProgramShape) -> Option<String> {
    shape
        .advice_reads
        .first()
        .map(|r| format!("`{}` on line {}", r.instruction, r.line))
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
        program_hash: Digest,
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
            } => (job_id, outputs, proof),
            TxBody::Challenge {
                job_id,
                outputs,
                proof,
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
    state.height = header.height;
    state.timestamp_ms = header.timestamp_ms;

    let mut ctx = Ctx {
        state,
        header,
        proofs,
        events: Vec::new(),
    };
    ctx.run_deadlines();
    let tx_results = txs
        .iter()
        .zip(ops)
        .map(|(tx, ops)| ctx.apply_tx(tx, ops))
        .collect();
    let events = ctx.events;
    Ok(BlockOutcome {
        tx_results,
        events,
        state_root: state.state_root(),
    })
}

/// Refuses a transaction on `job` unless the job is in `state` (`expected` names it).
fn require_state(job: &Job, state: JobState, expected: &'static str) -> Result<(), TxError> {
    if job.state != state {
        return Err(TxError::WrongState {
            job: job.id,
            state: job.state,
            expected,
        });
    }
    Ok(())
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

struct Ctx<'a> {
    state: &'a mut State,
    header: &'a BlockHeader,
    proofs: &'a ProofCache,
    events: Vec<Event>,
}

impl Ctx<'_> {
    fn h(&self) -> u64 {
        self.header.height
    }

    fn record(&mut self, job_id: Digest, state: JobState, tx: Option<Digest>, note: String) {
        let (height, timestamp_ms) = (self.header.height, self.header.timestamp_ms);
        if let Some(job) = self.state.jobs.get_mut(&job_id) {
            job.state = state;
            job.timeline.push(TimelineEntry {
                height,
                timestamp_ms,
                state,
                tx,
                note: note.clone(),
            });
        }
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

    // ---------------------------------------------------------------- deadlines

    fn run_deadlines(&mut self) {
        let h = self.h();
        // Unbonding releases.
        let mut releases: Vec<(Address, u64)> = Vec::new();
        for (addr, stake) in self.state.stakes.iter_mut() {
            let (due, keep): (Vec<Unbonding>, Vec<Unbonding>) = stake
                .unbonding
                .drain(..)
                .partition(|u| u.release_height <= h);
            stake.unbonding = keep;
            let amount: u64 = due.iter().map(|u| u.amount).sum();
            if amount > 0 {
                releases.push((*addr, amount));
            }
        }
        for (addr, amount) in releases {
            self.credit(addr, amount);
        }

        let due: Vec<(u64, Digest)> = self
            .state
            .schedule
            .range(..=(h, Digest([0xff; 32])))
            .copied()
            .collect();
        for entry in due {
            self.state.schedule.remove(&entry);
            let job_id = entry.1;
            let Some(job) = self.state.jobs.get(&job_id) else {
                continue;
            };
            let inputs_due = job
                .locked_height
                .map(|l| l + self.state.params.private_inputs_timeout);
            match job.state {
                JobState::Submitted if h >= job.lock_deadline() => self.expire(job_id),
                // A locker waiting for private inputs is released when they are due, and never
                // slashed meanwhile: its delivery clock has not started.
                JobState::Locked
                    if job.awaiting_inputs() && inputs_due.is_some_and(|due| h >= due) =>
                {
                    self.release_unprovided(job_id)
                }
                JobState::Locked if !job.awaiting_inputs() && h >= job.deadline() => {
                    self.slash_unfulfilled(job_id)
                }
                JobState::Fulfilled
                    if h >= job.fulfilled_height.unwrap_or(0)
                        + self.state.params.challenge_window =>
                {
                    self.finalize_optimistic(job_id)
                }
                _ => {}
            }
        }
    }

    fn expire(&mut self, job_id: Digest) {
        let job = self
            .state
            .jobs
            .get_mut(&job_id)
            .expect("scheduled job exists");
        let (client, refund) = (job.client, std::mem::take(&mut job.escrow));
        self.credit(client, refund);
        self.record(
            job_id,
            JobState::Expired,
            None,
            format!("nobody locked it; {refund} refunded to the client"),
        );
        self.finish(job_id);
    }

    fn slash_unfulfilled(&mut self, job_id: Digest) {
        let job = self
            .state
            .jobs
            .get_mut(&job_id)
            .expect("scheduled job exists");
        let locker = job.locker.expect("locked job has a locker");
        let collateral = job.request.offer.collateral;
        let (client, refund) = (job.client, std::mem::take(&mut job.escrow));
        let (burn, to_client) = self.slash_half(locker, collateral);
        self.credit(client, refund + to_client);
        self.record(
            job_id,
            JobState::Slashed,
            None,
            format!(
                "{} missed the deadline: collateral {collateral} slashed ({burn} burned, {to_client} to the client); escrow {refund} refunded",
                locker.short()
            ),
        );
        self.finish(job_id);
    }

    /// The client never provided its private inputs: the locker is released without penalty
    /// and paid the offer's `min_price` for the wasted lock; the rest is refunded.
    fn release_unprovided(&mut self, job_id: Digest) {
        let job = self
            .state
            .jobs
            .get_mut(&job_id)
            .expect("scheduled job exists");
        let locker = job.locker.expect("locked job has a locker");
        let collateral = job.request.offer.collateral;
        let pay = job.request.offer.min_price;
        let client = job.client;
        let refund = std::mem::take(&mut job.escrow) - pay;
        self.state.stakes.entry(locker).or_default().provider_locked -= collateral;
        self.credit(locker, pay);
        self.credit(client, refund);
        self.stats(locker).released += 1;
        self.record(
            job_id,
            JobState::Expired,
            None,
            format!(
                "the client never provided its private inputs: {}'s lock released, {pay} paid to it for the wasted lock, {refund} refunded",
                locker.short()
            ),
        );
        self.finish(job_id);
    }

    fn finalize_optimistic(&mut self, job_id: Digest) {
        let job = self
            .state
            .jobs
            .get_mut(&job_id)
            .expect("scheduled job exists");
        let fulfiller = job.fulfiller.expect("fulfilled job has a fulfiller");
        let (client, price, bond) = (job.client, job.lock_price, std::mem::take(&mut job.bond));
        let rest = std::mem::take(&mut job.escrow) - price;
        self.state
            .stakes
            .entry(fulfiller)
            .or_default()
            .provider_locked -= bond;
        self.credit(fulfiller, price);
        self.credit(client, rest);
        self.record(
            job_id,
            JobState::Finalized,
            None,
            format!(
                "challenge window closed; {} paid {price}, bond {bond} released, {rest} refunded",
                fulfiller.short()
            ),
        );
        self.finish(job_id);
    }

    /// Takes `amount` of locked provider stake away from `who` (it leaves the stake entirely;
    /// the caller says where it goes).
    fn forfeit(&mut self, who: Address, amount: u64) {
        let stake = self.state.stakes.entry(who).or_default();
        stake.provider_locked -= amount;
        stake.provider -= amount;
    }

    /// Slashes a locker's collateral: half is burned, the other half is returned for the
    /// caller to credit (to the rescuer, or else the client). Returns `(burned, remainder)`.
    fn slash_half(&mut self, locker: Address, collateral: u64) -> (u64, u64) {
        self.forfeit(locker, collateral);
        let burn = collateral / 2;
        self.state.burned += burn;
        self.stats(locker).slashed += 1;
        (burn, collateral - burn)
    }

    /// Writes the provenance record of a job that reached a terminal state.
    fn finish(&mut self, job_id: Digest) {
        let job = &self.state.jobs[&job_id];
        let paid = matches!(job.state, JobState::Finalized);
        let record = Provenance {
            job_id,
            state: job.state,
            mode: job.request.mode,
            client: job.client,
            program_hash: job.program_hash,
            input_hash: job.input_hash(),
            output_hash: job
                .outputs
                .as_ref()
                .map(|o| Digest::blake3(&borsh::to_vec(o).expect("encoding to a Vec cannot fail"))),
            proof_hash: job.proof_hash,
            prover: job.fulfiller,
            price: if paid { job.lock_price } else { 0 },
            submitted_height: job.submitted_height,
            fulfilled_height: job.fulfilled_height,
            finished_height: self.header.height,
        };
        self.state.provenance.insert(job_id, record);
    }

    // ---------------------------------------------------------------- transactions

    /// Applies one transaction whose program (if any) costs `assembly_ops` to assemble.
    fn apply_tx(&mut self, stx: &SignedTx, assembly_ops: u64) -> Result<(), TxError> {
        let expected = self
            .state
            .accounts
            .get(&stx.tx.signer)
            .map_or(0, |a| a.nonce);
        let Admissible { fee, .. } = precheck_with(self.state, stx, expected, |_| assembly_ops)?;
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
            } => self.fulfil(signer, id, *job_id, outputs, proof.as_deref()),
            TxBody::Challenge {
                job_id,
                outputs,
                proof,
            } => self.challenge(signer, id, *job_id, outputs, proof),
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

    fn balance(&self, who: &Address) -> u64 {
        self.state.accounts.get(who).map_or(0, |a| a.balance)
    }

    fn debit_check(&self, who: &Address, amount: u64) -> Result<(), TxError> {
        let available = self.balance(who);
        if available < amount {
            return Err(TxError::InsufficientFunds {
                needed: amount,
                available,
            });
        }
        Ok(())
    }

    fn transfer(&mut self, from: Address, to: Address, amount: u64) -> Result<(), TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        self.debit_check(&from, amount)?;
        self.state.accounts.entry(from).or_default().balance -= amount;
        self.credit(to, amount);
        Ok(())
    }

    fn stake(&mut self, who: Address, role: Role, amount: u64) -> Result<(), TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        // Validator stake weighs audits; outside the consensus set it would buy audit weight
        // without running consensus.
        if role == Role::Validator {
            self.require_validator(&who, "hold validator stake")?;
        }
        self.debit_check(&who, amount)?;
        self.state.accounts.entry(who).or_default().balance -= amount;
        let stake = self.state.stakes.entry(who).or_default();
        match role {
            Role::Provider => stake.provider += amount,
            Role::Validator => stake.validator += amount,
        }
        Ok(())
    }

    fn unstake(&mut self, who: Address, role: Role, amount: u64) -> Result<(), TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        let stake = self.state.stakes.get(&who).cloned().unwrap_or_default();
        let (free, name) = match role {
            Role::Provider => (stake.provider_free(), "provider"),
            Role::Validator => (stake.validator, "validator"),
        };
        if free < amount {
            return Err(TxError::InsufficientStake {
                role: name,
                needed: amount,
                available: free,
            });
        }
        let release_height = self.h() + self.state.params.unbonding_period;
        let stake = self.state.stakes.entry(who).or_default();
        match role {
            Role::Provider => stake.provider -= amount,
            Role::Validator => stake.validator -= amount,
        }
        stake.unbonding.push(Unbonding {
            role,
            amount,
            release_height,
        });
        Ok(())
    }

    fn submit(&mut self, client: Address, id: Digest, req: &JobRequest) -> Result<(), TxError> {
        let p = &self.state.params;
        req.offer.validate().map_err(TxError::BadOffer)?;
        if req.offer.timeout > p.max_job_timeout {
            return Err(TxError::BadOffer(format!(
                "timeout {} exceeds the chain's limit of {} blocks",
                req.offer.timeout, p.max_job_timeout
            )));
        }
        if let Some(bad) = req
            .stack_inputs
            .iter()
            .find(|v| **v >= verity_types::MODULUS)
        {
            return Err(TxError::BadInputs(format!("{bad} is not a field element")));
        }
        if req.max_cycles < verity_vm::MIN_MAX_CYCLES || req.max_cycles > p.max_job_cycles {
            return Err(TxError::BadInputs(format!(
                "max_cycles {} is outside {}..={}",
                req.max_cycles,
                verity_vm::MIN_MAX_CYCLES,
                p.max_job_cycles
            )));
        }
        if req.min_trust.is_some_and(|t| t > 1000) {
            return Err(TxError::BadOffer("min_trust is a score out of 1000".into()));
        }
        if let Some(private) = &req.private_inputs {
            if private
                .commitment
                .iter()
                .any(|v| *v >= verity_types::MODULUS)
            {
                return Err(TxError::BadInputs(
                    "the private-input commitment is not 4 field elements".into(),
                ));
            }
            // Only the prover and the client know the data: no auditor or watcher could
            // check an optimistic result, so a lie would always be paid.
            if req.mode == Mode::Optimistic {
                return Err(TxError::BadInputs(
                    "jobs with private inputs run in proof mode: nobody but the client could challenge an optimistic result".into(),
                ));
            }
        }
        self.debit_check(&client, req.offer.max_price)?;
        let (program_hash, advice_read) = self.job_program(req)?;
        // An optimistic result is sound only if the statement (program, public inputs,
        // committed data) determines the outputs; raw advice reads are unverified hints, and
        // a challenger could prove other outputs with other hints.
        if req.mode == Mode::Optimistic
            && let Some(read) = &advice_read
        {
            return Err(TxError::BadProgram(format!(
                "{read} reads unverified advice, so the program's outputs are not determined by its inputs: use proof mode (or private inputs, which are committed)"
            )));
        }
        let unverified_hints = advice_read.is_some();

        self.state.accounts.entry(client).or_default().balance -= req.offer.max_price;
        let job = Job {
            id,
            client,
            program_hash,
            unverified_hints,
            request: req.clone(),
            submitted_height: self.h(),
            state: JobState::Submitted,
            escrow: req.offer.max_price,
            locker: None,
            lock_price: 0,
            locked_height: None,
            fulfiller: None,
            fulfilled_height: None,
            outputs: None,
            proof_hash: None,
            bond: 0,
            inputs_provided_height: None,
            sealed_inputs_hash: None,
            inputs_delay: 0,
            timeline: Vec::new(),
        };
        let lock_deadline = job.lock_deadline();
        self.state.jobs.insert(id, job);
        self.state.schedule.insert((lock_deadline, id));
        self.record(
            id,
            JobState::Submitted,
            Some(id),
            format!(
                "{} escrowed {}; lock by block {lock_deadline}",
                client.short(),
                req.offer.max_price
            ),
        );
        Ok(())
    }

    /// What a job request proves: the hash of its program (behind the loader, for private
    /// inputs) and its first raw advice read, if any. An inline program is assembled here;
    /// a published one was assembled when it was published.
    fn job_program(&self, req: &JobRequest) -> Result<(Digest, Option<String>), TxError> {
        let published = match &req.program {
            ProgramSource::Inline(source) => {
                // Assembling is deterministic: the MAST root is a function of the source
                // (and, for private inputs, Verity's loader) alone. Its size was bounded at
                // admission.
                let job = verity_vm::assemble_job(
                    source,
                    req.private_inputs.as_ref(),
                    u64::from(self.state.params.max_program_nodes),
                )
                .map_err(|e| TxError::BadProgram(e.to_string()))?;
                return Ok((job.program.hash(), first_advice_read(&job.shape)));
            }
            ProgramSource::Published(hash) => self
                .state
                .programs
                .get(hash)
                .ok_or(TxError::UnknownProgram(*hash))?,
        };
        let program_hash = match &req.private_inputs {
            None => published.program_hash,
            Some(private) => {
                verity_vm::check_private_words(private).map_err(|e| match e {
                    verity_vm::VmError::Inputs(reason) => TxError::BadInputs(reason),
                    other => TxError::BadInputs(other.to_string()),
                })?;
                published.wrapped_hash.ok_or_else(|| {
                    TxError::BadProgram(
                        "the published program has no instruction to load private inputs before"
                            .into(),
                    )
                })?
            }
        };
        Ok((program_hash, published.advice_read.clone()))
    }

    /// Stores a program under its hash for jobs to name. Assembled here, twice (as written and
    /// behind the loader); its size was bounded at admission and its assembly paid by the fee.
    fn publish(&mut self, publisher: Address, source: &str) -> Result<(), TxError> {
        let publication = verity_vm::assemble_publication(
            source,
            u64::from(self.state.params.max_published_program_nodes),
        )
        .map_err(|e| TxError::BadProgram(e.to_string()))?;
        let hash = publication.program_hash;
        if self.state.programs.contains_key(&hash) {
            return Err(TxError::AlreadyPublished(hash));
        }
        let published = PublishedProgram {
            program_hash: hash,
            wrapped_hash: publication.wrapped_hash,
            advice_read: first_advice_read(&publication.shape),
            expanded_ops: publication.shape.expanded_ops,
            publisher,
            published_height: self.h(),
            source: source.to_string(),
        };
        self.state.programs.insert(hash, published);
        Ok(())
    }

    fn job(&self, job_id: &Digest) -> Result<&Job, TxError> {
        self.state
            .jobs
            .get(job_id)
            .ok_or(TxError::UnknownJob(*job_id))
    }

    /// Whether `provider` may be given `job` (by a lock or a rescue): a staked provider whose
    /// trust score meets the offer's `min_trust`.
    fn check_eligible(&self, provider: &Address, job: &Job) -> Result<(), TxError> {
        if self
            .state
            .stakes
            .get(provider)
            .is_none_or(|s| s.provider == 0)
        {
            return Err(TxError::NotEligible("not staked as a provider".into()));
        }
        if let Some(min) = job.request.min_trust {
            let score = crate::trust::TrustProfile::of(self.state, provider).score;
            if score < min {
                return Err(TxError::NotEligible(format!(
                    "trust score {score} is below the required {min}"
                )));
            }
        }
        Ok(())
    }

    fn check_free_stake(&self, provider: &Address, needed: u64) -> Result<(), TxError> {
        let available = self
            .state
            .stakes
            .get(provider)
            .map_or(0, |s| s.provider_free());
        if available < needed {
            return Err(TxError::InsufficientStake {
                role: "provider",
                needed,
                available,
            });
        }
        Ok(())
    }

    fn require_validator(&self, who: &Address, what: &'static str) -> Result<(), TxError> {
        if !self.state.validators.contains(who) {
            return Err(TxError::NotValidator(what));
        }
        Ok(())
    }

    fn lock(&mut self, provider: Address, tx: Digest, job_id: Digest) -> Result<(), TxError> {
        let h = self.h();
        let job = self.job(&job_id)?;
        require_state(job, JobState::Submitted, "submitted")?;
        require_before(h, job.lock_deadline(), "the lock deadline")?;
        let collateral = job.request.offer.collateral;
        self.check_eligible(&provider, job)?;
        self.check_free_stake(&provider, collateral)?;
        let price = job.request.offer.price_at(h - job.submitted_height);
        let deadline = job.deadline();

        self.state
            .stakes
            .entry(provider)
            .or_default()
            .provider_locked += collateral;
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        job.locker = Some(provider);
        job.lock_price = price;
        job.locked_height = Some(h);
        let private = job.request.private_inputs.is_some();
        self.stats(provider).locked += 1;
        self.state.schedule.insert((deadline, job_id));
        if private {
            let due = h + self.state.params.private_inputs_timeout;
            self.state.schedule.insert((due, job_id));
        }
        self.record(
            job_id,
            JobState::Locked,
            Some(tx),
            format!("{} locked at price {price} with collateral {collateral}; deliver by block {deadline}", provider.short()),
        );
        Ok(())
    }

    fn fulfil(
        &mut self,
        who: Address,
        tx: Digest,
        job_id: Digest,
        outputs: &StackOutputs,
        proof: Option<&[u8]>,
    ) -> Result<(), TxError> {
        let h = self.h();
        let job = self.job(&job_id)?;
        require_state(job, JobState::Locked, "locked")?;
        require_before(h, job.deadline(), "the job's deadline")?;
        let locker = job.locker.expect("locked job has a locker");
        let rescue = who != locker;
        if rescue && h < job.lock_deadline() {
            return Err(TxError::NotLocker {
                locker,
                lock_deadline: job.lock_deadline(),
            });
        }
        // A locker still waiting for the private inputs has nothing to prove on yet.
        if job.awaiting_inputs() {
            return Err(TxError::WrongState {
                job: job_id,
                state: job.state,
                expected: "locked with its private inputs provided",
            });
        }
        // A rescue gives the rescuer the job: the offer's terms apply to it as to a lock. A
        // job's private inputs are sealed to its locker, so nobody else can prove it.
        if rescue {
            if job.request.private_inputs.is_some() {
                return Err(TxError::NotEligible(
                    "a job with private inputs is sealed to its locker: it cannot be rescued"
                        .into(),
                ));
            }
            self.check_eligible(&who, job)?;
        }
        let collateral = job.request.offer.collateral;
        let mode = job.request.mode;
        let proof_hash = match (mode, proof) {
            (Mode::Proof, None) => return Err(TxError::ProofRequired),
            (Mode::Optimistic, Some(_)) => return Err(TxError::ProofNotAllowed),
            (Mode::Optimistic, None) => None,
            (Mode::Proof, Some(proof)) => {
                self.proofs
                    .verify(&job.program_hash, &job.proof_inputs(), outputs, proof)
                    .map_err(TxError::BadProof)?;
                Some(Digest::blake3(proof))
            }
        };
        // An optimistic rescuer posts its own bond; the locker's collateral becomes its bond.
        if mode == Mode::Optimistic && rescue {
            self.check_free_stake(&who, collateral)?;
        }

        // --- all checks passed; mutate.
        let latency = h - job.locked_height.expect("locked job has a lock height");
        if rescue {
            // The locker sat on the job: half its collateral burned, half to the rescuer.
            let (_, to_rescuer) = self.slash_half(locker, collateral);
            self.credit(who, to_rescuer);
            self.stats(who).rescued += 1;
        } else if job.client == who {
            // Fulfilling one's own job proves nothing about serving others.
            self.stats(who).self_dealt += 1;
        } else {
            let stats = self.stats(who);
            stats.fulfilled += 1;
            stats.total_latency_blocks += latency;
            stats.recent_latencies.push(latency);
            if stats.recent_latencies.len() > crate::trust::LATENCY_WINDOW {
                stats.recent_latencies.remove(0);
            }
        }
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        job.fulfiller = Some(who);
        job.fulfilled_height = Some(h);
        job.outputs = Some(*outputs);
        job.proof_hash = proof_hash;
        let (client, price) = (job.client, job.lock_price);
        let how = if rescue { "rescued" } else { "fulfilled" };
        match mode {
            Mode::Proof => {
                let rest = std::mem::take(&mut job.escrow) - price;
                if !rescue {
                    self.state.stakes.entry(who).or_default().provider_locked -= collateral;
                }
                self.credit(who, price);
                self.credit(client, rest);
                self.record(
                    job_id,
                    JobState::Finalized,
                    Some(tx),
                    format!(
                        "{how} by {} with a verified proof; paid {price}, {rest} refunded",
                        who.short()
                    ),
                );
                self.finish(job_id);
            }
            Mode::Optimistic => {
                job.bond = collateral;
                if rescue {
                    self.state.stakes.entry(who).or_default().provider_locked += collateral;
                }
                let until = h + self.state.params.challenge_window;
                self.state.schedule.insert((until, job_id));
                self.record(
                    job_id,
                    JobState::Fulfilled,
                    Some(tx),
                    format!(
                        "{how} by {} with bond {collateral}; challengeable until block {until}",
                        who.short()
                    ),
                );
            }
        }
        Ok(())
    }

    /// The client hands its locker the private inputs, sealed to the locker's key; the
    /// locker's deadlines move by the time it waited.
    fn provide_inputs(
        &mut self,
        client: Address,
        tx: Digest,
        job_id: Digest,
        sealed: &[u8],
    ) -> Result<(), TxError> {
        let h = self.h();
        let job = self.job(&job_id)?;
        if job.client != client {
            return Err(TxError::NotEligible(
                "only the job's client provides its private inputs".into(),
            ));
        }
        if job.request.private_inputs.is_none() {
            return Err(TxError::BadInputs("this job has no private inputs".into()));
        }
        if !job.awaiting_inputs() {
            return Err(TxError::WrongState {
                job: job_id,
                state: job.state,
                expected: "locked and waiting for its private inputs",
            });
        }
        if sealed.is_empty() {
            return Err(TxError::BadInputs("sealed inputs are empty".into()));
        }
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        let locker = job.locker.expect("locked job has a locker");
        job.inputs_provided_height = Some(h);
        job.sealed_inputs_hash = Some(Digest::blake3(sealed));
        job.inputs_delay = h - job.locked_height.expect("locked job has a lock height");
        let (lock_deadline, deadline) = (job.lock_deadline(), job.deadline());
        self.state.schedule.insert((deadline, job_id));
        self.record(
            job_id,
            JobState::Locked,
            Some(tx),
            format!(
                "private inputs provided, sealed to {}; deliver by block {lock_deadline} (rescue after it is not possible), slashed at {deadline}",
                locker.short()
            ),
        );
        Ok(())
    }

    /// The locker gives up a job whose private inputs it received but cannot use.
    fn release_lock(&mut self, who: Address, tx: Digest, job_id: Digest) -> Result<(), TxError> {
        let h = self.h();
        let job = self.job(&job_id)?;
        if job.locker != Some(who) || job.state != JobState::Locked {
            return Err(TxError::NotEligible(
                "only the provider holding the lock releases it".into(),
            ));
        }
        if job.request.private_inputs.is_none() || job.inputs_provided_height.is_none() {
            return Err(TxError::WrongState {
                job: job_id,
                state: job.state,
                expected: "locked with private inputs provided",
            });
        }
        require_before(h, job.deadline(), "the job's deadline")?;
        let collateral = job.request.offer.collateral;
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        let client = job.client;
        // Nobody can tell from the ledger whether the data was bad or the locker lies, so both
        // lose a little, to nobody's profit: the client the offer's floor price, the locker a
        // tenth of its collateral. Walking away is never free for either.
        let escrow = std::mem::take(&mut job.escrow);
        let client_burn = job.request.offer.min_price.min(escrow);
        let locker_burn = collateral / 10;
        let stake = self.state.stakes.entry(who).or_default();
        stake.provider_locked -= collateral;
        stake.provider -= locker_burn;
        self.state.burned += client_burn + locker_burn;
        self.credit(client, escrow - client_burn);
        self.stats(who).released += 1;
        self.record(
            job_id,
            JobState::Expired,
            Some(tx),
            format!(
                "{} released the lock, saying the private inputs were unusable: {client_burn} of the escrow and {locker_burn} of its collateral burned, {} refunded",
                who.short(),
                escrow - client_burn
            ),
        );
        self.finish(job_id);
        Ok(())
    }

    fn challenge(
        &mut self,
        challenger: Address,
        tx: Digest,
        job_id: Digest,
        outputs: &StackOutputs,
        proof: &[u8],
    ) -> Result<(), TxError> {
        let h = self.h();
        let job = self.job(&job_id)?;
        require_state(job, JobState::Fulfilled, "fulfilled (optimistic)")?;
        let window_end =
            job.fulfilled_height.expect("fulfilled") + self.state.params.challenge_window;
        if h >= window_end {
            return Err(TxError::DeadlinePassed(format!(
                "the challenge window closed at block {window_end}"
            )));
        }
        // Outputs are canonical (16 field elements, see `StackOutputs`), so "different" here
        // means a different result, never a different spelling of the same one.
        if job.outputs == Some(*outputs) {
            return Err(TxError::SameOutputs);
        }
        // A fulfiller that challenges itself (its wrong result was sampled for audit, say)
        // would otherwise take back its own bond.
        if job.fulfiller == Some(challenger) {
            return Err(TxError::SelfChallenge);
        }
        // The same statement as the job's (program, public inputs, committed private data),
        // with other outputs.
        self.proofs
            .verify(&job.program_hash, &job.proof_inputs(), outputs, proof)
            .map_err(TxError::BadProof)?;

        // --- the fulfilment was wrong: half the bond pays the challenger, half is burned (so a
        // liar challenging itself through a second key still loses), the client is refunded.
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        let fulfiller = job.fulfiller.expect("fulfilled");
        let bond = std::mem::take(&mut job.bond);
        let refund = std::mem::take(&mut job.escrow);
        let client = job.client;
        job.outputs = Some(*outputs);
        job.proof_hash = Some(Digest::blake3(proof));
        self.forfeit(fulfiller, bond);
        let burn = bond / 2;
        self.state.burned += burn;
        self.credit(challenger, bond - burn);
        self.credit(client, refund);
        self.stats(fulfiller).overturned += 1;
        self.record(
            job_id,
            JobState::Overturned,
            Some(tx),
            format!(
                "{} proved different outputs: {}'s bond {bond} forfeited ({} to the challenger, {burn} burned), {refund} refunded",
                challenger.short(),
                fulfiller.short(),
                bond - burn
            ),
        );
        self.finish(job_id);
        Ok(())
    }

    fn announce(&mut self, provider: Address, endpoint: &str) -> Result<(), TxError> {
        if self
            .state
            .stakes
            .get(&provider)
            .is_none_or(|s| s.provider == 0)
        {
            return Err(TxError::BadEndpoint(
                "only a staked provider announces an endpoint".into(),
            ));
        }
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !scheme_ok
            || endpoint
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(TxError::BadEndpoint(format!(
                "`{endpoint}` is not an http(s) URL"
            )));
        }
        self.state.endpoints.insert(provider, endpoint.to_string());
        Ok(())
    }

    fn audit(&mut self, auditor: Address, report: &AuditReport) -> Result<(), TxError> {
        use crate::trust::{AUDIT_EPOCH_BLOCKS, MAX_PROBES_PER_EPOCH};
        self.require_validator(&auditor, "file audits")?;
        let stake = self.state.stakes.get(&auditor).map_or(0, |s| s.validator);
        if stake == 0 {
            return Err(TxError::BadAudit("only a staked validator audits".into()));
        }
        let current = self.h() / AUDIT_EPOCH_BLOCKS;
        if report.epoch >= current {
            return Err(TxError::BadAudit(format!(
                "epoch {} has not ended (this is epoch {current})",
                report.epoch
            )));
        }
        if report.epoch + 2 < current {
            return Err(TxError::BadAudit(format!(
                "epoch {} is too old to report (this is epoch {current})",
                report.epoch
            )));
        }
        if self.state.audits.contains_key(&(report.epoch, auditor)) {
            return Err(TxError::BadAudit(format!(
                "{} already audited epoch {}",
                auditor.short(),
                report.epoch
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in &report.liveness {
            if !seen.insert(l.provider) {
                return Err(TxError::BadAudit(format!(
                    "provider {} appears twice",
                    l.provider.short()
                )));
            }
            if l.answered > l.probes || l.probes > MAX_PROBES_PER_EPOCH {
                return Err(TxError::BadAudit(format!(
                    "provider {}: {} of {} probes answered (at most {MAX_PROBES_PER_EPOCH} probes)",
                    l.provider.short(),
                    l.answered,
                    l.probes
                )));
            }
            if !self.state.endpoints.contains_key(&l.provider) {
                return Err(TxError::BadAudit(format!(
                    "provider {} announced no endpoint",
                    l.provider.short()
                )));
            }
        }
        // --- valid: weight every probe by the auditor's stake.
        for l in &report.liveness {
            let record = self.state.liveness.entry(l.provider).or_default();
            record.weighted_probes += u128::from(stake) * u128::from(l.probes);
            record.weighted_answered += u128::from(stake) * u128::from(l.answered);
            record.reports += 1;
            if l.answered > 0 {
                record.last_median_latency_ms = l.median_latency_ms;
            }
        }
        self.state
            .audits
            .insert((report.epoch, auditor), report.clone());
        self.state
            .auditors
            .entry(auditor)
            .or_default()
            .liveness_audits += 1;
        Ok(())
    }

    fn canary_commit(
        &mut self,
        auditor: Address,
        epoch: u64,
        commitment: Digest,
        count: u32,
    ) -> Result<(), TxError> {
        use crate::trust::{AUDIT_EPOCH_BLOCKS, MAX_CANARIES_PER_EPOCH};
        self.require_validator(&auditor, "commit to canaries")?;
        if self
            .state
            .stakes
            .get(&auditor)
            .is_none_or(|s| s.validator == 0)
        {
            return Err(TxError::BadAudit(
                "only a staked validator commits to canaries".into(),
            ));
        }
        let current = self.h() / AUDIT_EPOCH_BLOCKS;
        // Before the epoch starts (so no job in it can be picked after the fact), and not so
        // far ahead that commitments pile up.
        if epoch <= current || epoch > current + 2 {
            return Err(TxError::BadAudit(format!(
                "canaries for epoch {epoch} must be committed in one of the two epochs before it (this is epoch {current})"
            )));
        }
        if count == 0 || count > MAX_CANARIES_PER_EPOCH {
            return Err(TxError::BadAudit(format!(
                "{count} canaries: between 1 and {MAX_CANARIES_PER_EPOCH} per epoch"
            )));
        }
        if self.state.canary_commits.contains_key(&(epoch, auditor)) {
            return Err(TxError::BadAudit(format!(
                "{} already committed to canaries for epoch {epoch}",
                auditor.short()
            )));
        }
        self.state.canary_commits.insert(
            (epoch, auditor),
            crate::state::CanaryCommitment {
                commitment,
                count,
                committed_height: self.h(),
                revealed: false,
            },
        );
        self.state
            .auditors
            .entry(auditor)
            .or_default()
            .canary_commitments += 1;
        Ok(())
    }

    /// Opens a canary commitment and judges each canary by what the ledger holds: a proof or
    /// a challenge backs every verdict, and a claim a proof contradicts costs the auditor stake.
    fn canary_reveal(&mut self, auditor: Address, reveal: &CanaryReveal) -> Result<(), TxError> {
        use crate::trust::{AUDIT_EPOCH_BLOCKS, CANARY_REVEAL_EPOCHS, FALSE_AUDIT_SLASH_BP};
        let epoch = reveal.epoch;
        let commit = self
            .state
            .canary_commits
            .get(&(epoch, auditor))
            .ok_or_else(|| {
                TxError::BadAudit(format!(
                    "{} made no canary commitment for epoch {epoch}",
                    auditor.short()
                ))
            })?;
        if commit.revealed {
            return Err(TxError::BadAudit(format!(
                "canaries of epoch {epoch} are already revealed"
            )));
        }
        let current = self.h() / AUDIT_EPOCH_BLOCKS;
        if epoch >= current {
            return Err(TxError::BadAudit(format!(
                "epoch {epoch} has not ended (this is epoch {current})"
            )));
        }
        if current > epoch + CANARY_REVEAL_EPOCHS {
            return Err(TxError::BadAudit(format!(
                "canaries of epoch {epoch} had to be revealed by epoch {}",
                epoch + CANARY_REVEAL_EPOCHS
            )));
        }
        if verity_types::canary::commitment(&auditor, epoch, &reveal.seed) != commit.commitment {
            return Err(TxError::BadAudit(
                "the seed does not open the commitment".into(),
            ));
        }
        if reveal.canaries.len() > commit.count as usize {
            return Err(TxError::BadAudit(format!(
                "{} canaries revealed, {} committed",
                reveal.canaries.len(),
                commit.count
            )));
        }
        let (start, end) = (epoch * AUDIT_EPOCH_BLOCKS, (epoch + 1) * AUDIT_EPOCH_BLOCKS);
        let mut indices = std::collections::BTreeSet::new();
        for c in &reveal.canaries {
            if c.index >= commit.count || !indices.insert(c.index) {
                return Err(TxError::BadAudit(format!(
                    "canary index {} is repeated or not below the committed {}",
                    c.index, commit.count
                )));
            }
            let job = self.job(&c.job_id)?;
            let client =
                verity_types::canary::client_address(&auditor, epoch, &reveal.seed, c.index);
            if job.client != client {
                return Err(TxError::BadAudit(format!(
                    "job {} was not submitted by canary key {}",
                    c.job_id.short(),
                    c.index
                )));
            }
            if !(start..end).contains(&job.submitted_height) {
                return Err(TxError::BadAudit(format!(
                    "job {} was submitted at block {}, outside epoch {epoch} (blocks {start}..{end})",
                    c.job_id.short(),
                    job.submitted_height
                )));
            }
            if !job.state.is_terminal() {
                return Err(TxError::BadAudit(format!(
                    "canary job {} is still {}: reveal once every canary has ended",
                    c.job_id.short(),
                    job.state
                )));
            }
        }

        // --- valid: judge each canary.
        let mut passed: Vec<Address> = Vec::new();
        let mut failed: Vec<Address> = Vec::new();
        let (mut unpicked, mut disputed, mut contradicted) = (0u64, 0u64, 0u64);
        for c in &reveal.canaries {
            let job = &self.state.jobs[&c.job_id];
            let right = job.outputs == Some(c.expected);
            // A rescued job: the locker let it lapse, whatever the rescuer then did.
            if let (Some(locker), Some(fulfiller)) = (job.locker, job.fulfiller)
                && locker != fulfiller
            {
                failed.push(locker);
            }
            match job.state {
                JobState::Expired => unpicked += 1,
                JobState::Slashed => failed.extend(job.locker),
                // Proof mode: the outputs are proven, so a claim that differs is false.
                JobState::Finalized if job.proof_hash.is_some() && !right => contradicted += 1,
                // Optimistic and unchallenged: a different claim is unproven either way.
                JobState::Finalized if !right => disputed += 1,
                JobState::Finalized => passed.extend(job.fulfiller),
                // The challenge proved the outputs the auditor had to claim.
                JobState::Overturned if right => failed.extend(job.fulfiller),
                JobState::Overturned => contradicted += 1,
                _ => unreachable!("checked terminal above"),
            }
        }
        self.state
            .canary_commits
            .get_mut(&(epoch, auditor))
            .expect("checked above")
            .revealed = true;
        let record = self.state.auditors.entry(auditor).or_default();
        record.canary_reveals += 1;
        if contradicted > 0 {
            // An auditor a proof contradicts has shown its canary claims cannot be trusted:
            // none of this reveal's verdicts count, and a share of its stake is burned (not
            // paid to anyone, so no one profits from provoking it).
            record.contradicted += contradicted;
            let stake = self.state.stakes.entry(auditor).or_default();
            let slash =
                (u128::from(stake.validator) * u128::from(FALSE_AUDIT_SLASH_BP) / 10_000) as u64;
            stake.validator -= slash;
            self.state.burned += slash;
            self.state.auditors.entry(auditor).or_default().slashed += slash;
            return Ok(());
        }
        record.canaries_judged += (passed.len() + failed.len()) as u64;
        record.canaries_unpicked += unpicked;
        record.canaries_disputed += disputed;
        for p in passed {
            self.state.canaries.entry(p).or_default().passed += 1;
        }
        for p in failed {
            self.state.canaries.entry(p).or_default().failed += 1;
        }
        Ok(())
    }
}
