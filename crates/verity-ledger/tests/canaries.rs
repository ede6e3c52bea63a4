//! Canary jobs on the ledger: commitments before the epoch, reveals after, verdicts backed by
//! proofs and deadlines, and the auditor a proof contradicts losing stake. Real Miden proofs.

mod common;

use common::*;
use verity_ledger::trust::{AUDIT_EPOCH_BLOCKS, FALSE_AUDIT_SLASH_BP};
use verity_ledger::{JobState, TrustProfile, TxError};
use verity_types::canary::{client_key, commitment};
use verity_types::{
    CanaryClaim, CanaryReveal, Digest, JobId, Keypair, Mode, Role, StackOutputs, TxBody,
};

fn wrong(outputs: &[u64]) -> StackOutputs {
    let mut w = outputs.to_vec();
    w[0] += 1;
    StackOutputs::new(&w).unwrap()
}

/// An auditor's canaries for one epoch, as the ledger tests drive them.
struct Canaries {
    auditor: &'static str,
    epoch: u64,
    seed: Digest,
}

impl Canaries {
    fn key(&self, index: u32) -> Keypair {
        client_key(&addr(self.auditor), self.epoch, &self.seed, index)
    }

    fn commit(&self, chain: &mut Chain, count: u32) -> Result<(), TxError> {
        let body = TxBody::CanaryCommit {
            epoch: self.epoch,
            commitment: commitment(&addr(self.auditor), self.epoch, &self.seed),
            count,
        };
        chain.send(self.auditor, body)
    }

    /// Funds canary `index` (from the auditor: the ledger does not care who pays) and submits
    /// its job; returns the job id.
    fn submit(&self, chain: &mut Chain, index: u32, n: u64, mode: Mode) -> JobId {
        let k = self.key(index);
        let fund = TxBody::Transfer {
            to: k.address(),
            amount: 1_000,
        };
        chain.send(self.auditor, fund).unwrap();
        let tx = chain.tx_by(&k, TxBody::SubmitJob(fib_job(n, mode)));
        let id = JobId::submitted_by(tx.id());
        assert_eq!(chain.block(vec![tx]).tx_results, vec![Ok(())]);
        id
    }

    fn reveal(
        &self,
        chain: &mut Chain,
        claims: Vec<(u32, JobId, StackOutputs)>,
    ) -> Result<(), TxError> {
        let body = TxBody::CanaryReveal(CanaryReveal {
            epoch: self.epoch,
            seed: self.seed,
            canaries: claims
                .into_iter()
                .map(|(index, job_id, expected)| CanaryClaim {
                    index,
                    job_id,
                    expected,
                })
                .collect(),
        });
        chain.send(self.auditor, body)
    }
}

fn stake_validator(chain: &mut Chain, who: &str, amount: u64) {
    let body = TxBody::Stake {
        role: Role::Validator,
        amount,
    };
    chain.send(who, body).unwrap();
}

fn lock(chain: &mut Chain, who: &str, job: JobId) {
    chain.send(who, TxBody::LockJob { job_id: job }).unwrap();
}

fn fulfil(chain: &mut Chain, who: &str, job: JobId, outputs: StackOutputs, proof: Option<Vec<u8>>) {
    let body = TxBody::Fulfil {
        job_id: job,
        outputs,
        proof,
        cycles: 0,
    };
    chain.send(who, body).unwrap();
}

/// A chain where `watcher` (validator stake 3,000) committed to `count` canaries of epoch 1
/// with `seed`, at the start of epoch 1.
fn watched(seed: &[u8], count: u32) -> (Chain, Canaries) {
    let mut chain = Chain::new();
    // With its 1,000 at genesis: 3,000.
    stake_validator(&mut chain, "watcher", 2_000);
    let c = Canaries {
        auditor: "watcher",
        epoch: 1,
        seed: Digest::blake3(seed),
    };
    c.commit(&mut chain, count).unwrap();
    chain.advance_to(AUDIT_EPOCH_BLOCKS);
    (chain, c)
}

#[test]
fn revealed_canaries_judge_providers_by_proofs_and_deadlines() {
    let (mut chain, c) = watched(b"watcher's epoch-1 seed", 4);
    let r = fib_receipt(10);

    // 0: proof mode, p1 delivers a proof: passes.
    let j0 = c.submit(&mut chain, 0, 10, Mode::Proof);
    lock(&mut chain, "p1", j0);
    fulfil(&mut chain, "p1", j0, r.stack_outputs, Some(r.proof.clone()));
    // 1: optimistic, p2 posts a wrong answer and the auditor proves the right one: fails.
    let j1 = c.submit(&mut chain, 1, 10, Mode::Optimistic);
    lock(&mut chain, "p2", j1);
    fulfil(&mut chain, "p2", j1, wrong(&r.stack_outputs), None);
    let challenge = TxBody::Challenge {
        job_id: j1,
        outputs: r.stack_outputs,
        proof: r.proof.clone(),
        cycles: 0,
    };
    chain.send("watcher", challenge).unwrap();
    // 2: p2 locks and never delivers: fails when slashed.
    let j2 = c.submit(&mut chain, 2, 10, Mode::Proof);
    lock(&mut chain, "p2", j2);
    // 3: nobody locks: no verdict on anyone.
    let j3 = c.submit(&mut chain, 3, 10, Mode::Proof);
    let claims =
        |exp: &StackOutputs| vec![(0, j0, *exp), (1, j1, *exp), (2, j2, *exp), (3, j3, *exp)];

    // Until revealed, a canary is an ordinary job of an ordinary-looking account.
    for j in [j0, j1, j2, j3] {
        let client = chain.state.jobs[&j].client;
        assert_ne!(client, addr("watcher"));
    }
    // Not before the epoch ends.
    let early = c.reveal(&mut chain, claims(&r.stack_outputs));
    assert!(
        matches!(early, Err(TxError::BadAudit(ref m)) if m.contains("not ended")),
        "{early:?}"
    );
    chain.advance_to(2 * AUDIT_EPOCH_BLOCKS);
    assert_eq!(chain.state.jobs[&j2].state(), JobState::Slashed);
    assert_eq!(chain.state.jobs[&j3].state(), JobState::Expired);

    // A seed that does not open the commitment; jobs swapped between canary keys.
    let liar = Canaries {
        seed: Digest::blake3(b"another seed"),
        ..c
    };
    let e = liar.reveal(&mut chain, vec![]);
    assert!(
        matches!(e, Err(TxError::BadAudit(ref m)) if m.contains("does not open")),
        "{e:?}"
    );
    let c = Canaries {
        seed: Digest::blake3(b"watcher's epoch-1 seed"),
        ..liar
    };
    let swapped = vec![(0, j1, r.stack_outputs), (1, j0, r.stack_outputs)];
    let e = c.reveal(&mut chain, swapped);
    assert!(
        matches!(e, Err(TxError::BadAudit(ref m)) if m.contains("canary key")),
        "{e:?}"
    );
    assert!(chain.state.canaries.is_empty());

    c.reveal(&mut chain, claims(&r.stack_outputs)).unwrap();
    let p1 = TrustProfile::of(&chain.state, &addr("p1"));
    let p2 = TrustProfile::of(&chain.state, &addr("p2"));
    assert_eq!((p1.canaries_passed, p1.canaries_failed), (1, 0));
    assert_eq!((p2.canaries_passed, p2.canaries_failed), (0, 2));
    assert_eq!(
        (p1.canary_pass_bp, p2.canary_pass_bp),
        (Some(10_000), Some(0))
    );
    // Failing every canary halves what the record alone gives.
    let base = verity_ledger::trust::score(&chain.state.providers[&addr("p2")], p2.stake);
    assert_eq!(p2.score, base / 2);
    let record = &chain.state.auditors[&addr("watcher")];
    assert_eq!(
        (
            record.canary_reveals,
            record.canaries_judged,
            record.canaries_unpicked
        ),
        (1, 3, 1)
    );
    assert_eq!(record.slashed, 0);
    // Once only.
    let again = c.reveal(&mut chain, claims(&r.stack_outputs));
    assert!(
        matches!(again, Err(TxError::BadAudit(ref m)) if m.contains("already")),
        "{again:?}"
    );
    chain.check_supply();
}

#[test]
fn an_auditor_whose_claim_a_proof_contradicts_is_slashed() {
    let (mut chain, c) = watched(b"seed", 1);
    let r = fib_receipt(12);
    let job = c.submit(&mut chain, 0, 12, Mode::Proof);
    lock(&mut chain, "p1", job);
    fulfil(
        &mut chain,
        "p1",
        job,
        r.stack_outputs,
        Some(r.proof.clone()),
    );
    chain.advance_to(2 * AUDIT_EPOCH_BLOCKS);
    let burned = chain.state.burned;

    // The auditor claims p1's proven answer was wrong.
    c.reveal(&mut chain, vec![(0, job, wrong(&r.stack_outputs))])
        .unwrap();
    let slash = 3_000 * u64::from(FALSE_AUDIT_SLASH_BP) / 10_000;
    assert_eq!(
        chain.state.stakes[&addr("watcher")].validator,
        3_000 - slash
    );
    assert_eq!(chain.state.burned, burned + slash);
    let record = &chain.state.auditors[&addr("watcher")];
    assert_eq!((record.contradicted, record.slashed), (1, slash));
    // Its verdicts do not count: p1 is neither credited nor blamed.
    let p1 = TrustProfile::of(&chain.state, &addr("p1"));
    assert_eq!((p1.canaries_passed, p1.canaries_failed), (0, 0));
    chain.check_supply();
}

#[test]
fn an_unproven_claim_against_an_optimistic_result_is_no_verdict() {
    let (mut chain, c) = watched(b"seed", 1);
    let r = fib_receipt(10);
    let job = c.submit(&mut chain, 0, 10, Mode::Optimistic);
    lock(&mut chain, "p1", job);
    fulfil(&mut chain, "p1", job, r.stack_outputs, None);
    chain.advance_to(2 * AUDIT_EPOCH_BLOCKS);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Finalized);
    // The auditor never challenged, so its different claim is unproven: nobody is judged
    // and nobody slashed, and the auditor's record shows the dispute.
    c.reveal(&mut chain, vec![(0, job, wrong(&r.stack_outputs))])
        .unwrap();
    assert!(chain.state.canaries.is_empty());
    let record = &chain.state.auditors[&addr("watcher")];
    assert_eq!((record.canaries_disputed, record.slashed), (1, 0));
}

#[test]
fn commitments_come_from_validators_before_their_epoch_and_reveals_in_time() {
    let mut chain = Chain::new();
    // With its 1,000 at genesis: 3,000.
    stake_validator(&mut chain, "watcher", 2_000);
    let bad = |e: Result<(), TxError>| assert!(matches!(e, Err(TxError::BadAudit(_))), "{e:?}");
    let at = |epoch| Canaries {
        auditor: "watcher",
        epoch,
        seed: Digest::blake3(b"seed"),
    };
    // Not in the validator set.
    let outsider = Canaries {
        auditor: "p1",
        ..at(1)
    }
    .commit(&mut chain, 1);
    assert!(
        matches!(outsider, Err(TxError::NotValidator(_))),
        "{outsider:?}"
    );
    // The current epoch (its jobs could already be chosen), too far ahead, no canaries, too many.
    bad(at(0).commit(&mut chain, 1));
    bad(at(3).commit(&mut chain, 1));
    bad(at(1).commit(&mut chain, 0));
    bad(at(1).commit(&mut chain, 65));
    assert!(chain.state.canary_commits.is_empty());
    at(1).commit(&mut chain, 2).unwrap();
    bad(at(1).commit(&mut chain, 2));
    // No commitment for epoch 2; index beyond the committed count; a job not yet ended.
    chain.advance_to(2 * AUDIT_EPOCH_BLOCKS - 12);
    let c = at(1);
    let job = c.submit(&mut chain, 0, 10, Mode::Proof);
    bad(at(2).reveal(&mut chain, vec![]));
    let r = fib_receipt(10).stack_outputs;
    // Locked near the end of the epoch and still open after it.
    lock(&mut chain, "p1", job);
    chain.advance_to(2 * AUDIT_EPOCH_BLOCKS);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Locked);
    bad(c.reveal(&mut chain, vec![(0, job, r)]));
    bad(c.reveal(&mut chain, vec![(2, job, r)]));
    // Too late: five epochs after the canary epoch ended.
    chain.advance_to(7 * AUDIT_EPOCH_BLOCKS);
    let late = c.reveal(&mut chain, vec![(0, job, r)]);
    assert!(
        matches!(late, Err(TxError::BadAudit(ref m)) if m.contains("had to be revealed")),
        "{late:?}"
    );
}

/// Jobs retire from the state `job_retention` blocks after they end, and a reveal is judged
/// on its canary jobs: with the shortest retention a genesis may set, a canary submitted at
/// the start of its epoch and ended at once (unlocked) is still there for a reveal in the last
/// block the reveal window allows, so an auditor who waits cannot lose its canaries.
#[test]
fn a_reveal_in_the_last_allowed_block_still_finds_its_canary_jobs() {
    let mut chain = Chain::with_retention(verity_ledger::MIN_JOB_RETENTION);
    stake_validator(&mut chain, "watcher", 2_000);
    let c = Canaries {
        auditor: "watcher",
        epoch: 1,
        seed: Digest::blake3(b"late"),
    };
    c.commit(&mut chain, 1).unwrap();
    chain.advance_to(AUDIT_EPOCH_BLOCKS - 1);
    let job = c.submit(&mut chain, 0, 10, Mode::Proof);
    let lock_deadline = chain.state.jobs[&job].lock_deadline();
    chain.advance_to(lock_deadline);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Expired);
    // The reveal window ends with epoch 1 + 5; the reveal goes in its last block.
    let last = (c.epoch + 6) * AUDIT_EPOCH_BLOCKS - 1;
    chain.advance_to(last - 1);
    let r = fib_receipt(10).stack_outputs;
    assert_eq!(c.reveal(&mut chain, vec![(0, job, r)]), Ok(()));
    assert_eq!(chain.height(), last);
    assert!(chain.state.canary_commits[&(c.epoch, addr("watcher"))].revealed);
}
