//! Canary jobs: validators commit to them before an epoch and reveal them after, and the ledger
//! judges each one by what it holds.

use verity_types::{Address, CanaryReveal, Digest};

use super::Ctx;
use crate::error::TxError;
use crate::state::JobPhase;

impl Ctx<'_> {
    pub(super) fn canary_commit(
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

    /// Every check of a reveal: it opens an unrevealed commitment of an ended epoch, in time,
    /// and names distinct, ended jobs of that epoch submitted by the committed canary keys.
    fn check_reveal(&self, auditor: Address, reveal: &CanaryReveal) -> Result<(), TxError> {
        use crate::trust::{AUDIT_EPOCH_BLOCKS, CANARY_REVEAL_EPOCHS};
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
            if !job.state().is_terminal() {
                return Err(TxError::BadAudit(format!(
                    "canary job {} is still {}: reveal once every canary has ended",
                    c.job_id.short(),
                    job.state()
                )));
            }
        }
        Ok(())
    }

    /// Each canary's verdict, from the job's terminal state and what the auditor claims its
    /// outputs had to be.
    fn judge(&self, reveal: &CanaryReveal) -> Verdicts {
        let mut v = Verdicts::default();
        for c in &reveal.canaries {
            let job = &self.state.jobs[&c.job_id];
            let right = job.outputs() == Some(&c.expected);
            // A rescued job: the locker let it lapse, whatever the rescuer then did.
            if let (Some(locker), Some(fulfiller)) = (job.locker(), job.fulfiller())
                && locker != fulfiller
            {
                v.failed.push(locker);
            }
            match &job.phase {
                JobPhase::Expired { .. } => v.unpicked += 1,
                JobPhase::Slashed { lock } => v.failed.push(lock.provider),
                // Proof mode: the outputs are proven, so a claim that differs is false.
                JobPhase::Finalized { delivery, .. } if delivery.proof_hash.is_some() && !right => {
                    v.contradicted += 1
                }
                // Optimistic and unchallenged: a different claim is unproven either way.
                JobPhase::Finalized { .. } if !right => v.disputed += 1,
                JobPhase::Finalized { delivery, .. } => v.passed.push(delivery.prover),
                // The challenge proved the outputs the auditor had to claim.
                JobPhase::Overturned { delivery, .. } if right => v.failed.push(delivery.prover),
                JobPhase::Overturned { .. } => v.contradicted += 1,
                // `check_reveal` refused a reveal with a canary still open.
                JobPhase::Submitted | JobPhase::Locked { .. } | JobPhase::Fulfilled { .. } => {}
            }
        }
        v
    }

    /// Opens a canary commitment and judges each canary by what the ledger holds: a proof or
    /// a challenge backs every verdict, and a claim a proof contradicts costs the auditor stake.
    pub(super) fn canary_reveal(
        &mut self,
        auditor: Address,
        reveal: &CanaryReveal,
    ) -> Result<(), TxError> {
        use crate::trust::FALSE_AUDIT_SLASH_BP;
        self.check_reveal(auditor, reveal)?;
        let epoch = reveal.epoch;
        let Verdicts {
            passed,
            failed,
            unpicked,
            disputed,
            contradicted,
        } = self.judge(reveal);
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

/// What a reveal's canaries say: who passed, who failed, and the claims that could not count.
#[derive(Default)]
struct Verdicts {
    passed: Vec<Address>,
    failed: Vec<Address>,
    /// Canaries nobody locked.
    unpicked: u64,
    /// Optimistic results the auditor disputes without a challenge.
    disputed: u64,
    /// Claims a proof contradicts.
    contradicted: u64,
}
