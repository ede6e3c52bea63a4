//! The job lifecycle with real Miden proofs of a small program.

mod common;

use common::*;
use verity_ledger::{EntryKind, JobPhase, JobState, TxError};
use verity_types::{Digest, JobId, JobRequest, Mode, ProgramSource, Receipt, TxBody};

fn submit(chain: &mut Chain, n: u64, mode: Mode) -> JobId {
    let tx = chain.tx("client", TxBody::SubmitJob(fib_job(n, mode)));
    let id = JobId::submitted_by(tx.id());
    let out = chain.block(vec![tx]);
    assert_eq!(out.tx_results, vec![Ok(())]);
    id
}

fn fulfil_with(chain: &mut Chain, who: &str, job: JobId, receipt: &Receipt) -> Result<(), TxError> {
    chain.send(
        who,
        TxBody::Fulfil {
            job_id: job,
            outputs: receipt.stack_outputs,
            proof: Some(receipt.proof.clone()),
            cycles: 0,
        },
    )
}

/// The API serves jobs as JSON: the phase's name sits beside the job's fields as `state`,
/// with that phase's data, and the JSON reads back as the same job.
fn assert_json_round_trip(job: &verity_ledger::Job, state: &str) {
    let json = serde_json::to_value(job).unwrap();
    assert_eq!(json["state"], state, "{json}");
    assert!(
        json.get("lock").is_some(),
        "a {state} job shows its lock: {json}"
    );
    let back: verity_ledger::Job = serde_json::from_value(json).unwrap();
    assert_eq!(&back, job);
}

#[test]
fn proof_mode_submit_lock_fulfil_pays_the_locker() {
    let mut chain = Chain::new();
    let (client0, p1_0) = (chain.balance("client"), chain.balance("p1"));
    let job = submit(&mut chain, 10, Mode::Proof);
    assert_eq!(
        chain.balance("client"),
        client0 - 1_000,
        "max price escrowed"
    );

    chain.advance_to(3); // locked in block 4, 3 blocks into the ramp: 100 + 900 * 3 / 9 = 400
    assert_eq!(chain.send("p1", TxBody::LockJob { job_id: job }), Ok(()));
    let j = &chain.state.jobs[&job];
    assert_eq!(
        (j.state(), j.lock_price(), j.locker()),
        (JobState::Locked, Some(400), Some(addr("p1")))
    );
    assert_eq!(chain.state.stakes[&addr("p1")].provider_locked, 500);
    assert_json_round_trip(j, "locked");
    // A second lock is refused.
    assert!(matches!(
        chain.send("p2", TxBody::LockJob { job_id: job }),
        Err(TxError::WrongState { .. })
    ));

    let receipt = fib_receipt(10);
    assert_eq!(receipt.stack_outputs[0], 55);
    assert_eq!(fulfil_with(&mut chain, "p1", job, &receipt), Ok(()));
    let j = &chain.state.jobs[&job];
    assert_eq!(j.state(), JobState::Finalized);
    assert_eq!(j.outputs().unwrap()[0], 55);
    assert_json_round_trip(j, "finalized");
    assert_eq!(chain.balance("p1"), p1_0 + 400);
    assert_eq!(chain.balance("client"), client0 - 400);
    assert_eq!(chain.state.stakes[&addr("p1")].provider_locked, 0);
    assert_eq!(chain.state.providers[&addr("p1")].fulfilled, 1);
    chain.check_supply();

    // Provenance: the record is the state entry under its own key (what a state store
    // proves against its root).
    let record = chain.state.provenance[&job].clone();
    let stored: std::collections::BTreeMap<_, _> = chain.state.entries().into_iter().collect();
    assert_eq!(
        stored.get(&record.store_key()),
        Some(&borsh::to_vec(&record).unwrap())
    );
    assert_eq!(record.program_hash, receipt.program_hash);
    assert_eq!(record.proof_hash, Some(receipt.proof_hash()));
    assert_eq!((record.price, record.prover), (400, Some(addr("p1"))));
    let states: Vec<JobState> = j.timeline.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        vec![JobState::Submitted, JobState::Locked, JobState::Finalized]
    );
}

#[test]
fn bad_proofs_are_rejected_and_change_nothing() {
    let mut chain = Chain::new();
    let job = submit(&mut chain, 10, Mode::Proof);
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();

    // A valid proof, but of fib(11): it does not attest to this job's inputs.
    let other = fib_receipt(11);
    let tx = chain.tx(
        "p1",
        TxBody::Fulfil {
            job_id: job,
            outputs: other.stack_outputs,
            proof: Some(other.proof.clone()),
            cycles: 0,
        },
    );
    let empty = chain.clone_state_after_empty_block();
    let out = chain.block(vec![tx.clone()]);
    let err = out.tx_results[0].clone().unwrap_err();
    assert!(matches!(err, TxError::BadProof(_)), "{err:?}");
    assert_eq!(
        chain.state.to_bytes(),
        chain.expected_after_rejection(&empty, &tx, &err).to_bytes(),
        "the rejected tx consumed its nonce (and fee) and changed nothing else"
    );

    // Right proof, wrong claimed outputs.
    let good = fib_receipt(10);
    let outputs = with_top(&good.stack_outputs, 56);
    let r = chain.send(
        "p1",
        TxBody::Fulfil {
            job_id: job,
            outputs,
            proof: Some(good.proof.clone()),
            cycles: 0,
        },
    );
    assert!(matches!(r, Err(TxError::BadProof(_))));
    // No proof at all in proof mode.
    let r = chain.send(
        "p1",
        TxBody::Fulfil {
            job_id: job,
            outputs: good.stack_outputs,
            proof: None,
            cycles: 0,
        },
    );
    assert_eq!(r, Err(TxError::ProofRequired));
    assert_eq!(chain.state.jobs[&job].state(), JobState::Locked);
}

#[test]
fn unlocked_job_expires_and_refunds_the_client() {
    let mut chain = Chain::new();
    let client0 = chain.balance("client");
    let job = submit(&mut chain, 10, Mode::Proof);
    let lock_deadline = chain.state.jobs[&job].lock_deadline();
    chain.advance_to(lock_deadline - 1);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Submitted);
    chain.advance_to(lock_deadline);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Expired);
    assert_eq!(chain.balance("client"), client0);
    assert!(matches!(
        chain.send("p1", TxBody::LockJob { job_id: job }),
        Err(TxError::WrongState { .. })
    ));
    assert_eq!(chain.state.provenance[&job].state, JobState::Expired);
    chain.check_supply();
}

#[test]
fn missed_deadline_is_slashed_half_burned_half_to_client() {
    let mut chain = Chain::new();
    let client0 = chain.balance("client");
    let job = submit(&mut chain, 10, Mode::Proof);
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let deadline = chain.state.jobs[&job].deadline();
    chain.advance_to(deadline);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Slashed);
    assert_eq!(
        chain.balance("client"),
        client0 + 250,
        "escrow back plus half the collateral"
    );
    assert_eq!(chain.state.burned, 250);
    assert_eq!(chain.state.stakes[&addr("p1")].provider, 9_500);
    assert_eq!(chain.state.providers[&addr("p1")].slashed, 1);
    chain.check_supply();
}

#[test]
fn rescue_after_the_lock_deadline_slashes_the_locker() {
    let mut chain = Chain::new();
    let p2_0 = chain.balance("p2");
    let job = submit(&mut chain, 10, Mode::Proof);
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let receipt = fib_receipt(10);
    // Before the lock deadline only the locker may fulfil.
    assert!(matches!(
        fulfil_with(&mut chain, "p2", job, &receipt),
        Err(TxError::NotLocker { .. })
    ));
    let lock_deadline = chain.state.jobs[&job].lock_deadline();
    chain.advance_to(lock_deadline);
    let price = chain.state.jobs[&job].lock_price().unwrap();
    assert_eq!(fulfil_with(&mut chain, "p2", job, &receipt), Ok(()));
    assert_eq!(chain.state.jobs[&job].state(), JobState::Finalized);
    assert_eq!(chain.state.jobs[&job].fulfiller(), Some(addr("p2")));
    assert_eq!(
        chain.balance("p2"),
        p2_0 + price + 250,
        "price plus half the locker's collateral"
    );
    assert_eq!(chain.state.burned, 250);
    assert_eq!(chain.state.stakes[&addr("p1")].provider, 9_500);
    chain.check_supply();
}

#[test]
fn optimistic_result_finalizes_after_the_window() {
    let mut chain = Chain::new();
    let p1_0 = chain.balance("p1");
    let job = submit(&mut chain, 10, Mode::Optimistic);
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let price = chain.state.jobs[&job].lock_price().unwrap();
    let outputs = fib_receipt(10).stack_outputs;
    // Optimistic fulfilments carry no proof.
    let r = chain.send(
        "p1",
        TxBody::Fulfil {
            job_id: job,
            outputs,
            proof: Some(vec![1]),
            cycles: 0,
        },
    );
    assert_eq!(r, Err(TxError::ProofNotAllowed));
    chain
        .send(
            "p1",
            TxBody::Fulfil {
                job_id: job,
                outputs,
                proof: None,
                cycles: 0,
            },
        )
        .unwrap();
    let fulfilled_at = chain.height();
    assert_eq!(chain.state.jobs[&job].state(), JobState::Fulfilled);
    assert_eq!(
        chain.state.stakes[&addr("p1")].provider_locked,
        500,
        "collateral held as the bond"
    );
    chain.advance_to(fulfilled_at + 4);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Fulfilled);
    chain.advance_to(fulfilled_at + 5);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Finalized);
    assert_eq!(chain.balance("p1"), p1_0 + price);
    assert_eq!(chain.state.stakes[&addr("p1")].provider_locked, 0);
    chain.check_supply();
}

#[test]
fn wrong_optimistic_result_is_overturned_by_a_proof() {
    let mut chain = Chain::new();
    let (client0, watcher0) = (chain.balance("client"), chain.balance("watcher"));
    let job = submit(&mut chain, 10, Mode::Optimistic);
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let truth = fib_receipt(10);
    let lie = with_top(&truth.stack_outputs, 54);
    chain
        .send(
            "p1",
            TxBody::Fulfil {
                job_id: job,
                outputs: lie,
                proof: None,
                cycles: 0,
            },
        )
        .unwrap();

    // A challenge that proves the same (wrong) outputs is impossible; one that repeats the
    // claimed outputs is refused outright; a garbage proof is refused.
    let r = chain.send(
        "watcher",
        TxBody::Challenge {
            job_id: job,
            outputs: lie,
            proof: truth.proof.clone(),
            cycles: 0,
        },
    );
    assert_eq!(r, Err(TxError::SameOutputs));
    let wrong = with_top(&truth.stack_outputs, 53);
    let r = chain.send(
        "watcher",
        TxBody::Challenge {
            job_id: job,
            outputs: wrong,
            proof: truth.proof.clone(),
            cycles: 0,
        },
    );
    assert!(matches!(r, Err(TxError::BadProof(_))), "{r:?}");
    let r = chain.send(
        "watcher",
        TxBody::Challenge {
            job_id: job,
            outputs: truth.stack_outputs,
            proof: vec![0; 100],
            cycles: 0,
        },
    );
    assert!(matches!(r, Err(TxError::BadProof(_))), "{r:?}");
    assert_eq!(chain.state.jobs[&job].state(), JobState::Fulfilled);

    let r = chain.send(
        "watcher",
        TxBody::Challenge {
            job_id: job,
            outputs: truth.stack_outputs,
            proof: truth.proof.clone(),
            cycles: 0,
        },
    );
    assert_eq!(r, Ok(()));
    let j = &chain.state.jobs[&job];
    assert_eq!(j.state(), JobState::Overturned);
    assert_eq!(
        j.outputs().unwrap()[0],
        55,
        "the proven outputs replace the false ones"
    );
    // The job keeps both: the overturned delivery (who lied, and what) and the correction.
    let JobPhase::Overturned {
        delivery,
        correction,
        ..
    } = &j.phase
    else {
        panic!("overturned job has no correction: {:?}", j.phase);
    };
    assert_eq!((delivery.prover, delivery.outputs), (addr("p1"), lie));
    assert_eq!(correction.challenger, addr("watcher"));
    // Provenance names the proof that stands and who made it, not the overturned prover.
    let record = &chain.state.provenance[&job];
    assert_eq!(record.prover, Some(addr("watcher")));
    assert_eq!(record.fulfilled_height, Some(correction.height));
    assert_eq!(record.proof_hash, Some(Digest::blake3(&truth.proof)));
    assert_eq!(
        chain.balance("watcher"),
        watcher0 + 250,
        "half the bond pays the challenger"
    );
    assert_eq!(chain.state.burned, 250, "the other half is burned");
    assert_eq!(
        chain.balance("client"),
        client0,
        "the client is refunded in full"
    );
    assert_eq!(chain.state.stakes[&addr("p1")].provider, 9_500);
    assert_eq!(chain.state.providers[&addr("p1")].overturned, 1);
    // Too late to challenge a finalized job.
    chain.check_supply();
}

#[test]
fn parallel_verification_gives_the_same_result() {
    let build = |parallel: bool| {
        let mut chain = Chain::new();
        let a = submit(&mut chain, 10, Mode::Proof);
        let b = submit(&mut chain, 11, Mode::Proof);
        chain.send("p1", TxBody::LockJob { job_id: a }).unwrap();
        chain.send("p2", TxBody::LockJob { job_id: b }).unwrap();
        let (ra, rb) = (fib_receipt(10), fib_receipt(11));
        let txs = vec![
            chain.tx(
                "p1",
                TxBody::Fulfil {
                    job_id: a,
                    outputs: ra.stack_outputs,
                    proof: Some(ra.proof.clone()),
                    cycles: 0,
                },
            ),
            // p2 sends a's proof for b: rejected either way.
            chain.tx(
                "p2",
                TxBody::Fulfil {
                    job_id: b,
                    outputs: ra.stack_outputs,
                    proof: Some(ra.proof.clone()),
                    cycles: 0,
                },
            ),
        ];
        let header = verity_ledger::BlockHeader {
            chain_id: CHAIN.into(),
            height: chain.height() + 1,
            timestamp_ms: 99_999,
            parent: Digest::default(),
            proposer: addr("validator"),
        };
        let out = if parallel {
            verity_ledger::apply_block_parallel(&mut chain.state, &header, &txs, 2).unwrap()
        } else {
            verity_ledger::apply_block(&mut chain.state, &header, &txs).unwrap()
        };
        let _ = rb;
        (out.tx_results, out.changes)
    };
    let (seq, par) = (build(false), build(true));
    assert_eq!(seq, par);
    assert!(seq.0[0].is_ok() && seq.0[1].is_err());
}

/// An ended job leaves the state `job_retention` blocks after it ended (its receipt and
/// source with it), exactly then and on every replica alike; its provenance record stays and
/// nothing else moves. A job still running is never retired, however old.
#[test]
fn an_ended_job_leaves_the_state_after_the_retention_period_and_its_provenance_stays() {
    const R: u64 = verity_ledger::MIN_JOB_RETENTION;
    // Shorter than a canary reveal may come after its jobs: refused at genesis.
    let mut short = verity_testkit::genesis(CHAIN).build();
    short.params.job_retention = R - 1;
    let refused = verity_ledger::State::from_genesis(&short).unwrap_err();
    assert!(refused.to_string().contains("job_retention"), "{refused}");
    let mut chain = Chain::with_retention(R);
    let ended = submit(&mut chain, 10, Mode::Proof);
    let lock_deadline = chain.state.jobs[&ended].lock_deadline();
    chain.advance_to(lock_deadline);
    assert_eq!(chain.state.jobs[&ended].state(), JobState::Expired);
    let finished = chain.state.provenance[&ended].finished_height;
    // Locked and left running: only its own deadlines apply to it.
    let running = submit(&mut chain, 10, Mode::Proof);
    assert_eq!(
        chain.send("p1", TxBody::LockJob { job_id: running }),
        Ok(())
    );

    chain.advance_to(finished + R - 1);
    assert!(chain.state.jobs.contains_key(&ended));
    let supply = chain.state.total_held();
    let out = chain.block(vec![]);
    assert_eq!(chain.height(), finished + R);
    assert_eq!(out.retired, vec![ended]);
    assert!(!chain.state.jobs.contains_key(&ended));
    assert_eq!(chain.state.provenance[&ended].state, JobState::Expired);
    assert_eq!(chain.state.total_held(), supply);
    chain.check_supply();
    // Its deletion is in the block's change set, as every write is.
    assert!(out.changes.iter().any(|(_, value)| value.is_none()));
    // The running job stays until it ends (here: slashed at its deadline), then retires too.
    assert!(chain.state.jobs.contains_key(&running));
    let deadline = chain.state.jobs[&running].deadline();
    chain.advance_to(deadline);
    assert_eq!(chain.state.jobs[&running].state(), JobState::Slashed);
    chain.advance_to(deadline + R);
    assert!(!chain.state.jobs.contains_key(&running));
    assert!(chain.state.provenance.contains_key(&running));
    // A transaction naming a retired job is refused as for an unknown job.
    assert!(matches!(
        chain.send("p1", TxBody::LockJob { job_id: ended }),
        Err(TxError::UnknownJob(_))
    ));
}

/// Jobs of one program written the same way share one copy of its source in the state,
/// counted per job; the copy leaves with the last of them, and each job reads as its client
/// submitted it (source inline) wherever it is served or archived.
#[test]
fn an_inline_source_is_held_once_for_all_its_jobs_and_leaves_with_the_last() {
    const R: u64 = verity_ledger::MIN_JOB_RETENTION;
    let mut chain = Chain::with_retention(R);
    let first = submit(&mut chain, 10, Mode::Proof);
    let second = submit(&mut chain, 20, Mode::Proof);
    let tx = chain.tx(
        "client",
        TxBody::SubmitJob(JobRequest {
            program: "begin push.7 drop end".into(),
            ..fib_job(1, Mode::Proof)
        }),
    );
    let other = JobId::submitted_by(tx.id());
    assert_eq!(chain.block(vec![tx]).tx_results, vec![Ok(())]);

    let fib = verity_testkit::fib_job(1).program;
    let digest = |chain: &Chain, job: JobId| match chain.state.jobs[&job].request.program {
        ProgramSource::Stored(d) => d,
        ref p => panic!("job {job} holds {p:?}, not a stored source"),
    };
    let shared = digest(&chain, first);
    assert_eq!(shared, digest(&chain, second));
    assert_ne!(shared, digest(&chain, other));
    assert_eq!(chain.state.sources.len(), 2);
    assert_eq!(chain.state.source_jobs[&shared], 2);
    assert_eq!(Some(chain.state.sources[&shared].as_str()), fib.inline());
    // The job's own entry no longer carries the source.
    let encoded = chain.state.entries();
    let job_entry = encoded
        .iter()
        .find(|(k, _)| *k == EntryKind::Job.store_key(&first.0.0))
        .unwrap();
    assert!(
        job_entry.1.len() < fib.inline().unwrap().len(),
        "{}",
        job_entry.1.len()
    );
    // A transaction cannot name a stored source (the ledger's own form, not a way to submit).
    let named = chain.send(
        "client",
        TxBody::SubmitJob(JobRequest {
            program: ProgramSource::Stored(shared),
            ..fib_job(3, Mode::Proof)
        }),
    );
    assert!(matches!(named, Err(TxError::BadProgram(_))), "{named:?}");
    // As served: the source inline, as submitted.
    assert_eq!(
        chain
            .state
            .as_submitted(&chain.state.jobs[&first])
            .request
            .program,
        fib
    );

    // All three expire, a block apart (they were submitted a block apart).
    let deadline = chain.state.jobs[&other].lock_deadline();
    chain.advance_to(deadline);
    let finished = |chain: &Chain, job: JobId| chain.state.provenance[&job].finished_height;
    let (f1, f2, f3) = (
        finished(&chain, first),
        finished(&chain, second),
        finished(&chain, other),
    );
    assert!(f1 < f2 && f2 < f3);
    // The first retires; the source stays for the second.
    chain.advance_to(f1 + R);
    assert!(!chain.state.jobs.contains_key(&first));
    assert_eq!(chain.state.source_jobs[&shared], 1);
    assert!(chain.state.sources.contains_key(&shared));
    // The second retires with it: the source leaves the state; its archived record (what a
    // node serves after retirement) has the source back.
    chain.advance_to(f2 + R);
    assert!(!chain.state.jobs.contains_key(&second));
    assert!(!chain.state.sources.contains_key(&shared));
    assert_eq!(chain.archive[&second].request.program, fib);
    assert_eq!(chain.state.sources.len(), 1);
    chain.advance_to(f3 + R);
    assert!(chain.state.sources.is_empty() && chain.state.source_jobs.is_empty());
    chain.check_supply();
}
