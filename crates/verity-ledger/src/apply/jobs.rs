//! A job's transactions: submit, lock, fulfil (or rescue), provide private inputs, release a
//! lock, challenge an optimistic result.

use verity_types::{Address, Digest, JobId, JobRequest, Mode, ProgramSource, StackOutputs, TxId};

use super::{Ctx, require_before, require_state, wrong_state};
use crate::error::TxError;
use crate::state::{Correction, Delivery, Job, JobPhase, JobState, Lock, Params, ProvidedInputs};

/// The checks of a job request that need only the chain's parameters.
fn check_request(p: &Params, req: &JobRequest) -> Result<(), TxError> {
    req.offer.validate().map_err(|e| TxError::BadOffer(e.0))?;
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
    Ok(())
}

impl Ctx<'_> {
    pub(super) fn submit(
        &mut self,
        client: Address,
        tx: TxId,
        req: &JobRequest,
    ) -> Result<(), TxError> {
        let id = JobId::submitted_by(tx);
        check_request(&self.state.params, req)?;
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
        let mut request = req.clone();
        if let ProgramSource::Inline(source) = &req.program {
            request.program = ProgramSource::Stored(self.hold_source(source));
        }
        let job = Job::submitted(
            id,
            client,
            program_hash,
            unverified_hints,
            request,
            self.h(),
        );
        let lock_deadline = job.lock_deadline();
        self.state.jobs.insert(id, job);
        self.state.schedule.insert((lock_deadline, id), ());
        self.record(
            id,
            Some(tx),
            format!(
                "{} escrowed {}; lock by block {lock_deadline}",
                client.short(),
                req.offer.max_price
            ),
        );
        Ok(())
    }

    pub(super) fn job(&self, job_id: &JobId) -> Result<&Job, TxError> {
        self.state
            .jobs
            .get(job_id)
            .ok_or(TxError::UnknownJob(*job_id))
    }

    /// Whether `provider` may be given `job` (by a lock or a rescue): a staked provider whose
    /// trust score meets the offer's `min_trust`.
    pub(super) fn check_eligible(&self, provider: &Address, job: &Job) -> Result<(), TxError> {
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

    pub(super) fn check_free_stake(&self, provider: &Address, needed: u64) -> Result<(), TxError> {
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

    pub(super) fn lock(
        &mut self,
        provider: Address,
        tx: TxId,
        job_id: JobId,
    ) -> Result<(), TxError> {
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
        job.phase = JobPhase::Locked {
            lock: Lock {
                provider,
                price,
                height: h,
                inputs: None,
            },
        };
        let private = job.request.private_inputs.is_some();
        self.stats(provider).locked += 1;
        self.state.schedule.insert((deadline, job_id), ());
        if private {
            let due = h + self.state.params.private_inputs_timeout;
            self.state.schedule.insert((due, job_id), ());
        }
        self.record(
            job_id,
            Some(tx),
            format!("{} locked at price {price} with collateral {collateral}; deliver by block {deadline}", provider.short()),
        );
        Ok(())
    }

    /// The locker (or, once the lock deadline has passed, a rescuer) delivers the outputs: with
    /// a proof that is verified here, or with a bond in optimistic mode.
    pub(super) fn fulfil(
        &mut self,
        who: Address,
        tx: TxId,
        job_id: JobId,
        outputs: &StackOutputs,
        proof: Option<&[u8]>,
        cycles: u64,
    ) -> Result<(), TxError> {
        let f = self.check_fulfilment(who, job_id, outputs, proof, cycles)?;
        self.count_fulfilment(who, job_id, &f);
        let delivery = Delivery {
            prover: who,
            height: self.h(),
            outputs: *outputs,
            proof_hash: f.proof_hash,
            cycles,
            trace_len: f.trace_len,
        };
        match f.mode {
            Mode::Proof => self.pay_proven(tx, job_id, f, delivery),
            Mode::Optimistic => self.bond_optimistic(tx, job_id, f, delivery),
        }
        Ok(())
    }

    /// Every check of a fulfilment, the proof's verification included; changes nothing.
    fn check_fulfilment(
        &self,
        who: Address,
        job_id: JobId,
        outputs: &StackOutputs,
        proof: Option<&[u8]>,
        cycles: u64,
    ) -> Result<CheckedFulfilment, TxError> {
        let h = self.h();
        let job = self.job(&job_id)?;
        let JobPhase::Locked { lock } = &job.phase else {
            return Err(wrong_state(job, "locked"));
        };
        require_before(h, job.deadline(), "the job's deadline")?;
        let locker = lock.provider;
        let rescue = who != locker;
        if rescue && h < job.lock_deadline() {
            return Err(TxError::NotLocker {
                locker,
                lock_deadline: job.lock_deadline(),
            });
        }
        // A locker still waiting for the private inputs has nothing to prove on yet.
        if job.awaiting_inputs() {
            return Err(wrong_state(job, "locked with its private inputs provided"));
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
        let (proof_hash, trace_len) = match (mode, proof) {
            (Mode::Proof, None) => return Err(TxError::ProofRequired),
            (Mode::Optimistic, Some(_)) => return Err(TxError::ProofNotAllowed),
            (Mode::Optimistic, None) => {
                check_cycles(
                    cycles,
                    u64::from(job.request.max_cycles),
                    "the job's cycle cap",
                )?;
                (None, 0)
            }
            (Mode::Proof, Some(proof)) => (
                Some(Digest::blake3(proof)),
                self.verify_statement(job, outputs, proof, cycles)?,
            ),
        };
        // An optimistic rescuer posts its own bond; the locker's collateral becomes its bond.
        if mode == Mode::Optimistic && rescue {
            self.check_free_stake(&who, collateral)?;
        }
        Ok(CheckedFulfilment {
            rescue,
            lock: lock.clone(),
            collateral,
            mode,
            proof_hash,
            trace_len,
            latency: h - lock.height,
        })
    }

    /// Verifies `proof` of the job's statement with `outputs`, and bounds the prover's cycle
    /// count by the proof's trace length, which it returns.
    fn verify_statement(
        &self,
        job: &Job,
        outputs: &StackOutputs,
        proof: &[u8],
        cycles: u64,
    ) -> Result<u64, TxError> {
        let trace_len = self
            .proofs
            .verify(&job.program_hash, &job.proof_inputs(), outputs, proof)
            .map_err(TxError::BadProof)?;
        check_cycles(cycles, trace_len, "the proof's trace length")?;
        Ok(trace_len)
    }

    /// What a fulfilment says about its fulfiller (and, for a rescue, about the locker who
    /// let the job lapse).
    fn count_fulfilment(&mut self, who: Address, job_id: JobId, f: &CheckedFulfilment) {
        if f.rescue {
            // The locker sat on the job: half its collateral burned, half to the rescuer.
            let (_, to_rescuer) = self.slash_half(f.lock.provider, f.collateral);
            self.credit(who, to_rescuer);
            self.stats(who).rescued += 1;
        } else if self.state.jobs[&job_id].client == who {
            // Fulfilling one's own job proves nothing about serving others.
            self.stats(who).self_dealt += 1;
        } else {
            let stats = self.stats(who);
            stats.fulfilled += 1;
            stats.total_latency_blocks += f.latency;
            stats.recent_latencies.push(f.latency);
            if stats.recent_latencies.len() > crate::trust::LATENCY_WINDOW {
                stats.recent_latencies.remove(0);
            }
        }
    }

    /// Proof mode: the proof was verified, so the job is final and paid at once.
    fn pay_proven(&mut self, tx: TxId, job_id: JobId, f: CheckedFulfilment, delivery: Delivery) {
        let (who, price, how) = (delivery.prover, f.lock.price, f.how());
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        let client = job.client;
        let rest = std::mem::take(&mut job.escrow) - price;
        job.phase = JobPhase::Finalized {
            lock: f.lock,
            delivery,
        };
        if !f.rescue {
            self.state.stakes.entry(who).or_default().provider_locked -= f.collateral;
        }
        self.credit(who, price);
        self.credit(client, rest);
        self.record(
            job_id,
            Some(tx),
            format!(
                "{how} by {} with a verified proof; paid {price}, {rest} refunded",
                who.short()
            ),
        );
        self.finish(job_id);
    }

    /// Optimistic mode: the collateral stays locked as a bond until the challenge window closes.
    fn bond_optimistic(
        &mut self,
        tx: TxId,
        job_id: JobId,
        f: CheckedFulfilment,
        delivery: Delivery,
    ) {
        let (who, how) = (delivery.prover, f.how());
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        job.phase = JobPhase::Fulfilled {
            lock: f.lock,
            delivery,
            bond: f.collateral,
        };
        if f.rescue {
            self.state.stakes.entry(who).or_default().provider_locked += f.collateral;
        }
        let until = self.h() + self.state.params.challenge_window;
        self.state.schedule.insert((until, job_id), ());
        self.record(
            job_id,
            Some(tx),
            format!(
                "{how} by {} with bond {}; challengeable until block {until}",
                who.short(),
                f.collateral
            ),
        );
    }

    /// The client hands its locker the private inputs, sealed to the locker's key; the
    /// locker's deadlines move by the time it waited.
    pub(super) fn provide_inputs(
        &mut self,
        client: Address,
        tx: TxId,
        job_id: JobId,
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
        let mut lock = match &job.phase {
            JobPhase::Locked { lock } if lock.inputs.is_none() => lock.clone(),
            _ => {
                return Err(wrong_state(
                    job,
                    "locked and waiting for its private inputs",
                ));
            }
        };
        if sealed.is_empty() {
            return Err(TxError::BadInputs("sealed inputs are empty".into()));
        }
        let locker = lock.provider;
        lock.inputs = Some(ProvidedInputs {
            height: h,
            sealed_hash: Digest::blake3(sealed),
        });
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        job.inputs_delay = h - lock.height;
        job.phase = JobPhase::Locked { lock };
        let (lock_deadline, deadline) = (job.lock_deadline(), job.deadline());
        self.state.schedule.insert((deadline, job_id), ());
        self.record(
            job_id,
            Some(tx),
            format!(
                "private inputs provided, sealed to {}; deliver by block {lock_deadline} (rescue after it is not possible), slashed at {deadline}",
                locker.short()
            ),
        );
        Ok(())
    }

    /// The locker gives up a job whose private inputs it received but cannot use.
    pub(super) fn release_lock(
        &mut self,
        who: Address,
        tx: TxId,
        job_id: JobId,
    ) -> Result<(), TxError> {
        let h = self.h();
        let job = self.job(&job_id)?;
        let lock = match &job.phase {
            JobPhase::Locked { lock } if lock.provider == who => lock.clone(),
            _ => {
                return Err(TxError::NotEligible(
                    "only the provider holding the lock releases it".into(),
                ));
            }
        };
        if job.request.private_inputs.is_none() || lock.inputs.is_none() {
            return Err(wrong_state(job, "locked with private inputs provided"));
        }
        require_before(h, job.deadline(), "the job's deadline")?;
        let collateral = job.request.offer.collateral;
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        job.phase = JobPhase::Expired { lock: Some(lock) };
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

    pub(super) fn challenge(
        &mut self,
        challenger: Address,
        tx: TxId,
        job_id: JobId,
        outputs: &StackOutputs,
        proof: &[u8],
        cycles: u64,
    ) -> Result<(), TxError> {
        let h = self.h();
        let job = self.job(&job_id)?;
        let JobPhase::Fulfilled {
            lock,
            delivery,
            bond,
        } = &job.phase
        else {
            return Err(wrong_state(job, "fulfilled (optimistic)"));
        };
        let window_end = delivery.height + self.state.params.challenge_window;
        if h >= window_end {
            return Err(TxError::DeadlinePassed(format!(
                "the challenge window closed at block {window_end}"
            )));
        }
        // Outputs are canonical (16 field elements, see `StackOutputs`), so "different" here
        // means a different result, never a different spelling of the same one.
        if delivery.outputs == *outputs {
            return Err(TxError::SameOutputs);
        }
        // A fulfiller that challenges itself (its wrong result was sampled for audit, say)
        // would otherwise take back its own bond.
        if delivery.prover == challenger {
            return Err(TxError::SelfChallenge);
        }
        // The same statement as the job's (program, public inputs, committed private data),
        // with other outputs.
        let trace_len = self.verify_statement(job, outputs, proof, cycles)?;

        // --- the fulfilment was wrong: half the bond pays the challenger, half is burned (so a
        // liar challenging itself through a second key still loses), the client is refunded.
        let (lock, delivery, bond) = (lock.clone(), delivery.clone(), *bond);
        let fulfiller = delivery.prover;
        let job = self.state.jobs.get_mut(&job_id).expect("checked above");
        let refund = std::mem::take(&mut job.escrow);
        let client = job.client;
        job.phase = JobPhase::Overturned {
            lock,
            delivery,
            correction: Box::new(Correction {
                challenger,
                height: h,
                outputs: *outputs,
                proof_hash: Digest::blake3(proof),
                cycles,
                trace_len,
            }),
        };
        self.forfeit(fulfiller, bond);
        let burn = bond / 2;
        self.state.burned += burn;
        self.credit(challenger, bond - burn);
        self.credit(client, refund);
        self.stats(fulfiller).overturned += 1;
        self.record(
            job_id,
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
}

/// A fulfilment that passed every check, with what settling it needs.
struct CheckedFulfilment {
    rescue: bool,
    /// The lock it settles (the locker's, also for a rescue).
    lock: Lock,
    collateral: u64,
    mode: Mode,
    proof_hash: Option<Digest>,
    /// The verified proof's trace length; 0 without a proof.
    trace_len: u64,
    /// Blocks from the lock to this fulfilment.
    latency: u64,
}

/// Receipts rebuilt from the ledger never claim more work than was proven (or allowed).
fn check_cycles(cycles: u64, bound: u64, what: &str) -> Result<(), TxError> {
    if cycles > bound {
        return Err(TxError::BadCycles(format!(
            "claims {cycles} cycles, more than {what} ({bound})"
        )));
    }
    Ok(())
}

impl CheckedFulfilment {
    fn how(&self) -> &'static str {
        if self.rescue { "rescued" } else { "fulfilled" }
    }
}
