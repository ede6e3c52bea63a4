//! What happens at a height without a transaction: unbonding releases, expiry, slashing of
//! missed deadlines, release of locks whose private inputs never came, optimistic finalization;
//! and the provenance record every terminal state writes.

use verity_types::{Address, Digest, JobId, ProgramSource};

use super::Ctx;
use crate::state::{Delivery, Job, JobPhase, Lock, Provenance, Unbonding};

/// What a deadline that fired does to a job, with the data of the phase it ends.
enum Due {
    Expire,
    ReleaseUnprovided(Lock),
    Slash(Lock),
    /// Boxed: a delivery holds its 16 outputs.
    Finalize(Lock, Box<Delivery>, u64),
}

impl Ctx<'_> {
    pub(super) fn run_deadlines(&mut self) {
        let h = self.h();
        // Unbonding releases due by now, scheduled by (height, address) when they began.
        let releases: Vec<(u64, Address)> = self
            .state
            .releases
            .range(..=(h, Address([0xff; 32])))
            .map(|(key, _)| key)
            .collect();
        for key in releases {
            self.state.releases.remove(&key);
            self.release_unbonded(key.1);
        }

        let due: Vec<(u64, JobId)> = self
            .state
            .schedule
            .range(..=(h, JobId(Digest([0xff; 32]))))
            .map(|(key, _)| key)
            .collect();
        for entry in due {
            self.state.schedule.remove(&entry);
            let job_id = entry.1;
            let Some(job) = self.state.jobs.get(&job_id) else {
                continue;
            };
            if self.retirement_due(job_id, job) {
                if let ProgramSource::Stored(digest) = job.request.program {
                    self.release_source(digest);
                }
                self.state.jobs.remove(&job_id);
                self.retired.push(job_id);
                continue;
            }
            match self.due(job) {
                Some(Due::Expire) => self.expire(job_id),
                Some(Due::ReleaseUnprovided(lock)) => self.release_unprovided(job_id, lock),
                Some(Due::Slash(lock)) => self.slash_unfulfilled(job_id, lock),
                Some(Due::Finalize(lock, delivery, bond)) => {
                    self.finalize_optimistic(job_id, lock, *delivery, bond)
                }
                None => {}
            }
        }
    }

    /// Pays out `addr`'s unbonding entries that are due (all of them that are, whichever
    /// release scheduled this visit: two unbondings may share a height).
    fn release_unbonded(&mut self, addr: Address) {
        let h = self.h();
        let Some(stake) = self.state.stakes.get_mut(&addr) else {
            return;
        };
        let (due, keep): (Vec<Unbonding>, Vec<Unbonding>) = stake
            .unbonding
            .drain(..)
            .partition(|u| u.release_height <= h);
        stake.unbonding = keep;
        let amount: u64 = due.iter().map(|u| u.amount).sum();
        if amount > 0 {
            self.credit(addr, amount);
        }
    }

    /// Whether `job` ended at least `job_retention` blocks ago. An ended job holds no funds
    /// (every terminal state pays its escrow out), so it can leave the state without a trace
    /// in the balances; its provenance record stays.
    fn retirement_due(&self, job_id: JobId, job: &Job) -> bool {
        let retention = self.state.params.job_retention;
        job.state().is_terminal()
            && job.escrow == 0
            && self
                .state
                .provenance
                .get(&job_id)
                .is_some_and(|p| self.h() >= p.finished_height.saturating_add(retention))
    }

    /// Whether one of `job`'s deadlines has come at this height, and which.
    fn due(&self, job: &Job) -> Option<Due> {
        let h = self.h();
        let params = &self.state.params;
        match &job.phase {
            JobPhase::Submitted if h >= job.lock_deadline() => Some(Due::Expire),
            // A locker waiting for private inputs is released when they are due, and never
            // slashed meanwhile: its delivery clock has not started.
            JobPhase::Locked { lock } if job.awaiting_inputs() => (h
                >= lock.height + params.private_inputs_timeout)
                .then(|| Due::ReleaseUnprovided(lock.clone())),
            JobPhase::Locked { lock } if h >= job.deadline() => Some(Due::Slash(lock.clone())),
            JobPhase::Fulfilled {
                lock,
                delivery,
                bond,
            } if h >= delivery.height + params.challenge_window => Some(Due::Finalize(
                lock.clone(),
                Box::new(delivery.clone()),
                *bond,
            )),
            _ => None,
        }
    }

    /// A job a deadline fired for: `run_deadlines` only visits jobs that exist.
    fn scheduled(&mut self, job_id: JobId) -> &mut crate::state::Job {
        self.state
            .jobs
            .get_mut(&job_id)
            .expect("scheduled job exists")
    }

    pub(super) fn expire(&mut self, job_id: JobId) {
        let job = self.scheduled(job_id);
        job.phase = JobPhase::Expired { lock: None };
        let (client, refund) = (job.client, std::mem::take(&mut job.escrow));
        self.credit(client, refund);
        self.record(
            job_id,
            None,
            format!("nobody locked it; {refund} refunded to the client"),
        );
        self.finish(job_id);
    }

    fn slash_unfulfilled(&mut self, job_id: JobId, lock: Lock) {
        let locker = lock.provider;
        let job = self.scheduled(job_id);
        job.phase = JobPhase::Slashed { lock };
        let collateral = job.request.offer.collateral;
        let (client, refund) = (job.client, std::mem::take(&mut job.escrow));
        let (burn, to_client) = self.slash_half(locker, collateral);
        self.credit(client, refund + to_client);
        self.record(
            job_id,
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
    fn release_unprovided(&mut self, job_id: JobId, lock: Lock) {
        let locker = lock.provider;
        let job = self.scheduled(job_id);
        job.phase = JobPhase::Expired { lock: Some(lock) };
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
            None,
            format!(
                "the client never provided its private inputs: {}'s lock released, {pay} paid to it for the wasted lock, {refund} refunded",
                locker.short()
            ),
        );
        self.finish(job_id);
    }

    fn finalize_optimistic(&mut self, job_id: JobId, lock: Lock, delivery: Delivery, bond: u64) {
        let (fulfiller, price) = (delivery.prover, lock.price);
        let job = self.scheduled(job_id);
        job.phase = JobPhase::Finalized { lock, delivery };
        let client = job.client;
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
    pub(super) fn forfeit(&mut self, who: Address, amount: u64) {
        let stake = self.state.stakes.entry(who).or_default();
        stake.provider_locked -= amount;
        stake.provider -= amount;
    }

    /// Slashes a locker's collateral: half is burned, the other half is returned for the
    /// caller to credit (to the rescuer, or else the client). Returns `(burned, remainder)`.
    pub(super) fn slash_half(&mut self, locker: Address, collateral: u64) -> (u64, u64) {
        self.forfeit(locker, collateral);
        let burn = collateral / 2;
        self.state.burned += burn;
        self.stats(locker).slashed += 1;
        (burn, collateral - burn)
    }

    /// Writes the provenance record of a job that reached a terminal state.
    pub(super) fn finish(&mut self, job_id: JobId) {
        let job = &self.state.jobs[&job_id];
        let price = match &job.phase {
            JobPhase::Finalized { lock, .. } => lock.price,
            _ => 0,
        };
        let record = Provenance {
            job_id,
            state: job.state(),
            mode: job.request.mode,
            client: job.client,
            program_hash: job.program_hash,
            input_hash: job.input_hash(),
            output_hash: job
                .outputs()
                .map(|o| Digest::blake3(&borsh::to_vec(o).expect("encoding to a Vec cannot fail"))),
            proof_hash: job.proof_hash(),
            // Who delivered the outputs on record, and when: the challenger's proof, once a
            // delivery is overturned.
            prover: job.prover().map(|(who, _)| who),
            price,
            submitted_height: job.submitted_height,
            fulfilled_height: job.prover().map(|(_, at)| at),
            finished_height: self.header.height,
        };
        self.state.provenance.insert(job_id, record);
        // Its retirement from the state, `job_retention` blocks on.
        let retire_at = self
            .header
            .height
            .saturating_add(self.state.params.job_retention);
        self.state.schedule.insert((retire_at, job_id), ());
    }
}
