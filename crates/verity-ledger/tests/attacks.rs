//! The attacks of the security review (docs/SECURITY.md), each written as the attacker would
//! try it against the ledger, with the defence it must meet. Real Miden proofs.

mod common;

use common::*;
use verity_ledger::{JobState, TxError, precheck};
use verity_types::{
    JobRequest, Keypair, Mode, ProgramSource, Role, SignedTx, StackOutputs, Tx, TxBody, canary,
};

/// Adds the first two private inputs to the public input (with data [3, 4] and input 10: 17).
use verity_testkit::PRIVATE_SUM;
use verity_types::JobId;

fn private_job(data: &[u64], mode: Mode) -> JobRequest {
    JobRequest {
        mode,
        offer: offer(),
        ..verity_testkit::private_sum_job(data)
    }
}

/// A real proof of PRIVATE_SUM on `data`, as a provider would make it for a job committing to
/// `data`.
fn prove_private(data: &[u64]) -> verity_types::Receipt {
    let commitment = verity_vm::commit_private(data).unwrap();
    let job = verity_vm::assemble_job(PRIVATE_SUM, Some(&commitment), u64::MAX).unwrap();
    let inputs = verity_vm::job_inputs(&[10], Some((&commitment, data))).unwrap();
    verity_vm::prove(&job.program, &inputs, verity_vm::ProveOptions::default()).unwrap()
}

fn submit_req(chain: &mut Chain, req: JobRequest) -> JobId {
    let tx = chain.tx("client", TxBody::SubmitJob(req));
    let id = JobId::submitted_by(tx.id());
    assert_eq!(chain.block(vec![tx]).tx_results, vec![Ok(())]);
    id
}

fn fulfil(
    chain: &mut Chain,
    who: &str,
    job: JobId,
    r: &verity_types::Receipt,
    proof: bool,
) -> Result<(), TxError> {
    chain.send(
        who,
        TxBody::Fulfil {
            job_id: job,
            outputs: r.stack_outputs,
            proof: proof.then(|| r.proof.clone()),
            cycles: r.cycles,
        },
    )
}

// ------------------------------------------------------------------ 1. truncated outputs

#[test]
fn truncated_outputs_cannot_overturn_a_correct_result() {
    let mut chain = Chain::new();
    let job = submit_req(&mut chain, fib_job(10, Mode::Optimistic));
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let honest = fib_receipt(10);
    fulfil(&mut chain, "p1", job, &honest, false).unwrap();

    // `[55]` is not a result: it cannot be built, and an encoding carrying it does not decode.
    assert!(StackOutputs::new(&[55]).is_err());
    let challenge = chain.tx(
        "watcher",
        TxBody::Challenge {
            job_id: job,
            outputs: honest.stack_outputs,
            proof: honest.proof.clone(),
            cycles: 0,
        },
    );
    let bytes = challenge.to_bytes();
    let outputs_bytes = borsh::to_vec(&honest.stack_outputs).unwrap();
    let at = bytes
        .windows(outputs_bytes.len())
        .position(|w| w == outputs_bytes.as_slice())
        .expect("outputs are in the encoding");
    let mut truncated = bytes[..at].to_vec();
    truncated.extend_from_slice(&borsh::to_vec(&vec![55u64]).unwrap());
    truncated.extend_from_slice(&bytes[at + outputs_bytes.len()..]);
    assert!(SignedTx::from_bytes(&truncated).is_err());

    // The only spelling of the honest result is the honest result: no overturn.
    assert_eq!(
        chain.block(vec![challenge]).tx_results,
        vec![Err(TxError::SameOutputs)]
    );
    let end = chain.state.jobs[&job].phase.delivery().unwrap().height + 5;
    chain.advance_to(end);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Finalized);
}

// ------------------------------------------------------------------ 2. private inputs bound

#[test]
fn a_proof_on_data_of_the_provers_choosing_is_not_paid() {
    let mut chain = Chain::new();
    let client_data = [3, 4];
    let job = submit_req(&mut chain, private_job(&client_data, Mode::Proof));
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    // Nothing can be fulfilled before the client provides the data.
    assert!(matches!(
        fulfil(&mut chain, "p1", job, &prove_private(&client_data), true),
        Err(TxError::WrongState { .. })
    ));
    provide(&mut chain, "client", job).unwrap();

    // The provider proves the same program on data it picked (600 + 66 + 10 = 676).
    let forged = prove_private(&[600, 66]);
    assert_eq!(forged.stack_outputs[0], 676);
    assert!(matches!(
        fulfil(&mut chain, "p1", job, &forged, true),
        Err(TxError::BadProof(_))
    ));
    // Nor the bare program (no loader) on any data.
    let bare = verity_vm::prove(
        &verity_vm::Program::assemble(PRIVATE_SUM, "bare.masm").unwrap(),
        &verity_vm::Inputs::from_stack_list("10").unwrap(),
        verity_vm::ProveOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        fulfil(&mut chain, "p1", job, &bare, true),
        Err(TxError::BadProof(_))
    ));

    // The proof on the client's data is accepted.
    let honest = prove_private(&client_data);
    assert_eq!(honest.stack_outputs[0], 17);
    fulfil(&mut chain, "p1", job, &honest, true).unwrap();
    assert_eq!(chain.state.jobs[&job].state(), JobState::Finalized);
}

/// An optimistic result on private data could be checked by nobody but the client (and a
/// challenge on other data never verifies): such jobs run in proof mode only.
#[test]
fn private_inputs_cannot_be_optimistic_and_challenges_stay_on_the_committed_data() {
    let mut chain = Chain::new();
    let r = chain.send(
        "client",
        TxBody::SubmitJob(private_job(&[3, 4], Mode::Optimistic)),
    );
    assert!(
        matches!(r, Err(TxError::BadInputs(ref m)) if m.contains("proof mode")),
        "{r:?}"
    );
    // A commitment outside the field is refused too (no proof could ever match it).
    let mut bad = private_job(&[3, 4], Mode::Proof);
    bad.private_inputs.as_mut().unwrap().commitment[0] = verity_types::MODULUS;
    assert!(matches!(
        chain.send("client", TxBody::SubmitJob(bad)),
        Err(TxError::BadInputs(_))
    ));
}

#[test]
fn optimistic_jobs_whose_outputs_depend_on_unverified_hints_are_refused() {
    let mut chain = Chain::new();
    let hinted = "begin\n    push.1 drop\n    adv_push\n    add\nend\n";
    let req = JobRequest {
        program: hinted.into(),
        ..fib_job(1, Mode::Optimistic)
    };
    let r = chain.send("client", TxBody::SubmitJob(req.clone()));
    let Err(TxError::BadProgram(msg)) = r else {
        panic!("expected a refusal, got {r:?}");
    };
    assert!(
        msg.contains("adv_push") && msg.contains("line 3"),
        "names the instruction and line: {msg}"
    );
    // Proof mode takes it, and the job says it uses unverified hints.
    let tx = chain.tx(
        "client",
        TxBody::SubmitJob(JobRequest {
            mode: Mode::Proof,
            ..req
        }),
    );
    let id = JobId::submitted_by(tx.id());
    assert_eq!(chain.block(vec![tx]).tx_results, vec![Ok(())]);
    assert!(chain.state.jobs[&id].unverified_hints);
}

// ------------------------------------------------------------------ 3. self-challenge

#[test]
fn a_liar_cannot_challenge_itself_and_a_second_key_still_loses_half_the_bond() {
    let mut chain = Chain::new();
    let job = submit_req(&mut chain, fib_job(10, Mode::Optimistic));
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
    // Its result was sampled for audit: it races the auditor with its own challenge.
    let challenge = TxBody::Challenge {
        job_id: job,
        outputs: truth.stack_outputs,
        proof: truth.proof.clone(),
        cycles: 0,
    };
    assert_eq!(
        chain.send("p1", challenge.clone()),
        Err(TxError::SelfChallenge)
    );
    // Through a second key (`p2`, the liar's sybil), the pair ends 250 down: the bond of 500
    // leaves p1's stake, 250 reaches p2, 250 is burned.
    let (p1_stake, p2_balance) = (
        chain.state.stakes[&addr("p1")].provider,
        chain.balance("p2"),
    );
    chain.send("p2", challenge).unwrap();
    let lost = p1_stake - chain.state.stakes[&addr("p1")].provider;
    let won = chain.balance("p2") - p2_balance;
    assert_eq!((lost, won), (500, 250));
    chain.check_supply();
}

// ------------------------------------------------------------------ 5. replay of rejections

#[test]
fn a_rejected_transfer_cannot_execute_once_the_account_is_funded() {
    let mut chain = Chain::with_fees();
    let poor = Keypair::dev("poor");
    chain
        .send(
            "client",
            TxBody::Transfer {
                to: poor.address(),
                amount: 100,
            },
        )
        .unwrap();
    // 100 pays the fee but not the 5,000 it sends: rejected, and its nonce is spent.
    let transfer = chain.tx_by(
        &poor,
        TxBody::Transfer {
            to: addr("watcher"),
            amount: 5_000,
        },
    );
    let out = chain.block(vec![transfer.clone()]);
    assert!(matches!(
        out.tx_results[0],
        Err(TxError::InsufficientFunds { .. })
    ));
    let fee = chain
        .state
        .params
        .fee(&transfer.tx.body, transfer.encoded_len());
    assert!(fee > 0);
    assert_eq!(chain.state.accounts[&poor.address()].nonce, 1);
    assert_eq!(chain.state.accounts[&poor.address()].balance, 100 - fee);

    // Funded later, the old signed transfer is stale: it cannot even be included.
    chain
        .send(
            "client",
            TxBody::Transfer {
                to: poor.address(),
                amount: 10_000,
            },
        )
        .unwrap();
    let watcher = chain.balance("watcher");
    let replay = chain.block(vec![transfer]);
    assert!(matches!(
        replay.tx_results[0],
        Err(TxError::BadNonce { .. })
    ));
    assert_eq!(chain.balance("watcher"), watcher);
    chain.check_supply();
}

#[test]
fn every_included_transaction_pays_its_fee_and_fees_are_burned() {
    let mut chain = Chain::with_fees();
    let before = chain.balance("client");
    let tx = chain.tx("client", TxBody::SubmitJob(fib_job(10, Mode::Proof)));
    let fee = verity_ledger::fee_of(&chain.state, &tx);
    // Its program's assembly is paid for like bytes: a KiB's fee per 1,024 operations.
    let ops = verity_ledger::assembly_ops(&tx.tx.body);
    let p = &chain.state.params;
    assert_eq!(
        fee,
        p.fee(&tx.tx.body, tx.encoded_len()) + p.fee_per_kib * ops.div_ceil(1024)
    );
    assert_eq!(chain.block(vec![tx]).tx_results, vec![Ok(())]);
    assert_eq!(chain.balance("client"), before - 1_000 - fee);
    assert_eq!(chain.state.fees_burned, fee);
    // A proof costs the per-proof fee on top of its bytes.
    let proof_tx = chain.tx(
        "p1",
        TxBody::Fulfil {
            job_id: JobId::default(),
            outputs: fib_receipt(10).stack_outputs,
            proof: Some(fib_receipt(10).proof.clone()),
            cycles: 0,
        },
    );
    let p = &chain.state.params;
    assert_eq!(
        p.fee(&proof_tx.tx.body, proof_tx.encoded_len()),
        p.fee_base
            + p.fee_per_kib * (proof_tx.encoded_len() as u64).div_ceil(1024)
            + p.fee_per_proof
    );
    // A key with nothing cannot pay: its transaction is not includable at all.
    let broke = Keypair::dev("broke");
    let spam = chain.tx_by(
        &broke,
        TxBody::Announce {
            endpoint: "http://x".into(),
        },
    );
    assert!(matches!(
        precheck(&chain.state, &spam, 0),
        Err(TxError::CannotPayFee { .. })
    ));
    chain.check_supply();
}

#[test]
fn a_block_over_the_byte_cap_is_refused_whole() {
    let mut chain = Chain::with_params(verity_ledger::Params {
        max_block_bytes: 1_000,
        ..Chain::new().state.params
    });
    let txs: Vec<SignedTx> = (0..10)
        .map(|i| {
            Tx {
                chain_id: CHAIN.into(),
                signer: addr("client"),
                nonce: i,
                body: TxBody::Transfer {
                    to: addr("p1"),
                    amount: 1,
                },
            }
            .sign(&key("client"))
        })
        .collect();
    let header = verity_ledger::BlockHeader {
        chain_id: CHAIN.into(),
        height: 1,
        timestamp_ms: 2_000,
        parent: verity_types::Digest::default(),
        proposer: addr("watcher"),
    };
    let mut state = chain.state.clone();
    assert!(matches!(
        verity_ledger::apply_block(&mut state, &header, &txs),
        Err(verity_ledger::BlockError::TooManyBytes { .. })
    ));
    assert_eq!(
        chain.block(txs[..2].to_vec()).tx_results,
        vec![Ok(()), Ok(())]
    );
}

// ------------------------------------------------------------------ 6. rescuers and min_trust

#[test]
fn a_rescuer_below_the_offers_min_trust_cannot_take_the_job() {
    let mut chain = Chain::new();
    // p2 misses a deadline once: its score drops to 333.
    let first = submit_req(&mut chain, fib_job(10, Mode::Proof));
    chain.send("p2", TxBody::LockJob { job_id: first }).unwrap();
    let deadline = chain.state.jobs[&first].deadline();
    chain.advance_to(deadline);
    assert_eq!(chain.state.jobs[&first].state(), JobState::Slashed);
    assert!(verity_ledger::TrustProfile::of(&chain.state, &addr("p2")).score < 500);

    let job = submit_req(
        &mut chain,
        JobRequest {
            min_trust: Some(500),
            ..fib_job(10, Mode::Proof)
        },
    );
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let lock_deadline = chain.state.jobs[&job].lock_deadline();
    chain.advance_to(lock_deadline);
    // p1 sat on it; p2 may not rescue a job it could not have locked.
    let r = fulfil(&mut chain, "p2", job, &fib_receipt(10), true);
    assert!(matches!(r, Err(TxError::NotEligible(_))), "{r:?}");
    // An unstaked key may not either.
    let r = fulfil(&mut chain, "client", job, &fib_receipt(10), true);
    assert!(matches!(r, Err(TxError::NotEligible(_))), "{r:?}");
    assert_eq!(chain.state.jobs[&job].state(), JobState::Locked);
}

// ------------------------------------------------------------------ 8. audits from outsiders

#[test]
fn validator_stake_outside_the_consensus_set_buys_no_audit_weight() {
    let mut chain = Chain::new();
    // `client` is rich and not a validator: it tries to buy its way into auditing.
    let r = chain.send(
        "client",
        TxBody::Stake {
            role: Role::Validator,
            amount: 100_000,
        },
    );
    assert_eq!(r, Err(TxError::NotValidator("hold validator stake")));
    chain.advance_to(verity_ledger::trust::AUDIT_EPOCH_BLOCKS);
    let r = chain.send(
        "client",
        TxBody::Audit(verity_types::AuditReport {
            epoch: 0,
            liveness: vec![],
        }),
    );
    assert!(matches!(r, Err(TxError::NotValidator(_))), "{r:?}");
    let seed = verity_types::Digest::blake3(b"s");
    let r = chain.send(
        "client",
        TxBody::CanaryCommit {
            epoch: 2,
            commitment: canary::commitment(&addr("client"), 2, &seed),
            count: 1,
        },
    );
    assert!(matches!(r, Err(TxError::NotValidator(_))), "{r:?}");
    // The set's own member still may.
    chain
        .send(
            "watcher",
            TxBody::Stake {
                role: Role::Validator,
                amount: 10,
            },
        )
        .unwrap();
}

// ------------------------------------------------------------------ 10. unmetered assembly

#[test]
fn a_program_that_unrolls_past_the_limit_is_refused_before_assembly() {
    let chain = Chain::new();
    // 378 bytes of this kind took 9.6 s to assemble on every validator.
    let bomb = "begin\n repeat.1000000\n  repeat.1000000\n   push.1 drop\n  end\n end\nend\n";
    let tx = chain.tx(
        "client",
        TxBody::SubmitJob(JobRequest {
            program: bomb.into(),
            ..fib_job(1, Mode::Proof)
        }),
    );
    let r = precheck(&chain.state, &tx, 0);
    assert!(
        matches!(r, Err(TxError::Oversized { what, .. }) if what.contains("unrolled")),
        "{r:?}"
    );
    assert!(r.unwrap_err().invalidates_block());
}

// ------------------------------------------------------------------ 4. withheld private inputs

fn provide(chain: &mut Chain, who: &str, job: JobId) -> Result<(), TxError> {
    chain.send(
        who,
        TxBody::ProvideInputs {
            job_id: job,
            sealed: vec![1, 2, 3],
        },
    )
}

#[test]
fn withheld_private_inputs_release_the_locker_and_the_client_pays_for_the_lock() {
    let mut chain = Chain::new();
    let (client0, p1_0) = (chain.balance("client"), chain.balance("p1"));
    let job = submit_req(&mut chain, private_job(&[3, 4], Mode::Proof));
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let locked = chain.height();
    // The client never provides its data. The locker is not slashed at the job's deadline:
    // its lock is released when the inputs are due, and it is paid the offer's floor price.
    let due = locked + chain.state.params.private_inputs_timeout;
    chain.advance_to(due - 1);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Locked);
    chain.advance_to(due);
    let j = &chain.state.jobs[&job];
    assert_eq!(j.state(), JobState::Expired, "{:?}", j.timeline);
    let min = offer().min_price;
    assert_eq!(chain.balance("p1"), p1_0 + min, "paid for the wasted lock");
    assert_eq!(chain.balance("client"), client0 - min);
    let stake = &chain.state.stakes[&addr("p1")];
    assert_eq!(
        (stake.provider, stake.provider_locked),
        (10_000, 0),
        "no slash"
    );
    let stats = &chain.state.providers[&addr("p1")];
    assert_eq!((stats.released, stats.slashed), (1, 0));
    chain.check_supply();
}

#[test]
fn the_delivery_clock_starts_when_the_private_inputs_arrive() {
    let mut chain = Chain::new();
    let job = submit_req(&mut chain, private_job(&[3, 4], Mode::Proof));
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let (lock_deadline, deadline) = {
        let j = &chain.state.jobs[&job];
        (j.lock_deadline(), j.deadline())
    };
    chain.advance_to(chain.height() + 4);
    // Only the job's client provides, and only once.
    assert!(matches!(
        provide(&mut chain, "p2", job),
        Err(TxError::NotEligible(_))
    ));
    provide(&mut chain, "client", job).unwrap();
    assert!(matches!(
        provide(&mut chain, "client", job),
        Err(TxError::WrongState { .. })
    ));
    let j = &chain.state.jobs[&job];
    let lock = j.phase.lock().unwrap();
    let delay = j.inputs_delay;
    assert_eq!(delay, lock.inputs.as_ref().unwrap().height - lock.height);
    assert!(delay >= 4);
    assert_eq!(
        (j.lock_deadline(), j.deadline()),
        (lock_deadline + delay, deadline + delay)
    );
    // Not slashed at the old deadline; slashed at the moved one.
    chain.advance_to(deadline);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Locked);
    chain.advance_to(deadline + delay);
    assert_eq!(chain.state.jobs[&job].state(), JobState::Slashed);
    chain.check_supply();
}

#[test]
fn a_job_sealed_to_its_locker_cannot_be_rescued_and_only_the_locker_releases_it() {
    let mut chain = Chain::new();
    let data = [3, 4];
    let job = submit_req(&mut chain, private_job(&data, Mode::Proof));
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    // Before the inputs arrive there is nothing to release (the timeout handles it).
    assert!(matches!(
        chain.send("p1", TxBody::ReleaseLock { job_id: job }),
        Err(TxError::WrongState { .. })
    ));
    provide(&mut chain, "client", job).unwrap();
    let lock_deadline = chain.state.jobs[&job].lock_deadline();
    chain.advance_to(lock_deadline);
    // Someone who knows the data (here, anyone with a proof) still cannot take the job.
    let r = fulfil(&mut chain, "p2", job, &prove_private(&data), true);
    assert!(matches!(r, Err(TxError::NotEligible(_))), "{r:?}");
    // Only the locker gives it up; the client is refunded in full and nobody is slashed.
    assert!(matches!(
        chain.send("p2", TxBody::ReleaseLock { job_id: job }),
        Err(TxError::NotEligible(_))
    ));
    // Walking away costs both sides a little, to nobody's profit: the client the floor price,
    // the locker a tenth of its collateral.
    let (client0, burned0) = (chain.balance("client"), chain.state.burned);
    chain
        .send("p1", TxBody::ReleaseLock { job_id: job })
        .unwrap();
    assert_eq!(chain.state.jobs[&job].state(), JobState::Expired);
    let (min, collateral) = (offer().min_price, offer().collateral);
    assert_eq!(chain.balance("client"), client0 + offer().max_price - min);
    assert_eq!(chain.state.burned, burned0 + min + collateral / 10);
    let stake = &chain.state.stakes[&addr("p1")];
    assert_eq!(
        (stake.provider, stake.provider_locked),
        (10_000 - collateral / 10, 0)
    );
    assert_eq!(chain.state.providers[&addr("p1")].released, 1);
    chain.check_supply();
}

// ------------------------------------------------------------------ 22. published programs

fn publish(chain: &mut Chain, who: &str, source: &str) -> Result<(), TxError> {
    chain.send(
        who,
        TxBody::PublishProgram {
            source: source.into(),
        },
    )
}

fn by_hash(req: JobRequest) -> JobRequest {
    let source = req.program.inline().expect("an inline job").to_string();
    let hash = verity_vm::Program::assemble(&source, "job.masm")
        .unwrap()
        .hash();
    JobRequest {
        program: ProgramSource::Published(hash),
        ..req
    }
}

#[test]
fn a_job_naming_a_published_program_proves_what_the_inline_job_proves() {
    let mut chain = Chain::new();
    let data = [3, 4];
    // Before publication the name means nothing: the job is refused (and pays its fee).
    let early = chain.send(
        "client",
        TxBody::SubmitJob(by_hash(private_job(&data, Mode::Proof))),
    );
    assert!(
        matches!(early, Err(TxError::UnknownProgram(_))),
        "{early:?}"
    );

    publish(&mut chain, "watcher", PRIVATE_SUM).unwrap();
    let inline = submit_req(&mut chain, private_job(&data, Mode::Proof));
    let named = submit_req(&mut chain, by_hash(private_job(&data, Mode::Proof)));
    assert_eq!(
        chain.state.jobs[&named].program_hash, chain.state.jobs[&inline].program_hash,
        "with private inputs, the named program is proven behind the same loader"
    );

    // The provider proves the named job exactly as it would the inline one, and is paid.
    chain.send("p1", TxBody::LockJob { job_id: named }).unwrap();
    provide(&mut chain, "client", named).unwrap();
    let forged = prove_private(&[600, 66]);
    assert!(matches!(
        fulfil(&mut chain, "p1", named, &forged, true),
        Err(TxError::BadProof(_))
    ));
    fulfil(&mut chain, "p1", named, &prove_private(&data), true).unwrap();
    assert_eq!(chain.state.jobs[&named].state(), JobState::Finalized);
    chain.check_supply();
}

#[test]
fn fib_by_hash_is_the_program_as_written() {
    let mut chain = Chain::new();
    publish(&mut chain, "client", FIB).unwrap();
    let job = submit_req(&mut chain, by_hash(fib_job(10, Mode::Proof)));
    let receipt = fib_receipt(10);
    assert_eq!(chain.state.jobs[&job].program_hash, receipt.program_hash);
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    fulfil(&mut chain, "p1", job, &receipt, true).unwrap();
    assert_eq!(chain.state.jobs[&job].state(), JobState::Finalized);
}

#[test]
fn a_publication_is_paid_once_and_cannot_be_replaced_or_used_to_dodge_the_rules() {
    let mut chain = Chain::with_fees();
    publish(&mut chain, "client", FIB).unwrap();
    let hash = verity_vm::Program::assemble(FIB, "job.masm")
        .unwrap()
        .hash();
    let first = chain.state.programs[&hash].clone();
    assert_eq!(
        (first.publisher, first.source.as_str()),
        (addr("client"), FIB)
    );
    // A griefer republishing it (or a copy with other whitespace, which has the same hash)
    // pays its fee and changes nothing: the first publication stands.
    let (griefer0, burned0) = (chain.balance("p2"), chain.state.burned);
    let spaced = format!("{FIB}\n\n");
    let r = publish(&mut chain, "p2", &spaced);
    assert_eq!(r, Err(TxError::AlreadyPublished(hash)));
    assert!(chain.balance("p2") < griefer0);
    assert_eq!(chain.state.burned - burned0, griefer0 - chain.balance("p2"));
    assert_eq!(chain.state.programs[&hash], first);

    // A program with unverified hints stays proof-mode only when named by hash.
    let hinted = "begin\n    push.1 drop\n    adv_push\n    add\nend\n";
    publish(&mut chain, "client", hinted).unwrap();
    let req = JobRequest {
        program: hinted.into(),
        ..fib_job(1, Mode::Optimistic)
    };
    let r = chain.send("client", TxBody::SubmitJob(by_hash(req.clone())));
    assert!(
        matches!(&r, Err(TxError::BadProgram(m)) if m.contains("adv_push") && m.contains("line 3")),
        "{r:?}"
    );
    let id = submit_req(
        &mut chain,
        by_hash(JobRequest {
            mode: Mode::Proof,
            ..req
        }),
    );
    assert!(chain.state.jobs[&id].unverified_hints);

    // Naming a published program with private inputs of a size the loader refuses fails as
    // it would inline.
    let mut bad = by_hash(JobRequest {
        private_inputs: Some(verity_vm::commit_private(&[3, 4]).unwrap()),
        ..fib_job(1, Mode::Proof)
    });
    bad.private_inputs.as_mut().unwrap().words = 0;
    let r = chain.send("client", TxBody::SubmitJob(bad));
    assert!(matches!(r, Err(TxError::BadInputs(_))), "{r:?}");
}

#[test]
fn publications_are_bounded_before_anything_is_assembled() {
    let chain = Chain::new();
    let p = &chain.state.params;
    // Too many bytes.
    let big = format!(
        "begin\n{}end\n",
        "    push.1 drop\n".repeat(p.max_published_program_bytes as usize / 16 + 1)
    );
    let tx = chain.tx("client", TxBody::PublishProgram { source: big });
    let r = precheck(&chain.state, &tx, 0);
    assert!(
        matches!(
            r,
            Err(TxError::Oversized {
                what: "published program",
                ..
            })
        ),
        "{r:?}"
    );
    // Few bytes that unroll past the limit.
    let bomb = "begin\n repeat.1000000\n  repeat.1000000\n   push.1 drop\n  end\n end\nend\n";
    let tx = chain.tx(
        "client",
        TxBody::PublishProgram {
            source: bomb.into(),
        },
    );
    let r = precheck(&chain.state, &tx, 0);
    assert!(
        matches!(r, Err(TxError::Oversized { what, .. }) if what.contains("unrolled")),
        "{r:?}"
    );
    assert!(r.unwrap_err().invalidates_block());
    // A program over the inline limit but within the publication limit is admitted, and
    // costs its assembly twice over in fees.
    let large = format!(
        "begin\n{}end\n",
        "    push.1 drop\n".repeat(p.max_program_bytes as usize / 16 + 1)
    );
    let inline = chain.tx(
        "client",
        TxBody::SubmitJob(JobRequest {
            program: large.as_str().into(),
            ..fib_job(1, Mode::Proof)
        }),
    );
    assert!(matches!(
        precheck(&chain.state, &inline, 0),
        Err(TxError::Oversized {
            what: "program",
            ..
        })
    ));
    let publication = chain.tx("client", TxBody::PublishProgram { source: large });
    let admitted = precheck(&chain.state, &publication, 0).unwrap();
    assert!(admitted.assembly_ops > 2 * (p.max_program_bytes as u64 / 16));

    // At the boundary (found by review): a publication is assembled twice, and one that
    // could never fit a block's assembly budget would wait at the head of every mempool,
    // letting nothing behind it into a block. The largest admissible one fits a block.
    let just_over = "begin repeat.65500 push.1 drop end end";
    let tx = chain.tx(
        "client",
        TxBody::PublishProgram {
            source: just_over.into(),
        },
    );
    assert!(matches!(
        precheck(&chain.state, &tx, 0),
        Err(TxError::Oversized { .. })
    ));
    let just_under = "begin repeat.65000 push.1 drop end end";
    let tx = chain.tx(
        "client",
        TxBody::PublishProgram {
            source: just_under.into(),
        },
    );
    let admitted = precheck(&chain.state, &tx, 0).unwrap();
    assert!(admitted.assembly_ops <= p.max_block_assembly_ops);
    let mut chain = chain;
    assert_eq!(chain.block(vec![tx]).tx_results, vec![Ok(())]);
}

// ------------------------------------------------------------------ inflated cycle counts

/// Receipts are rebuilt from the ledger, cycle count included, and the count is the prover's
/// word: a prover inflating it (to look like a bigger machine, or to pad the network's
/// throughput figures) is held to what its proof's trace can hold.
#[test]
fn a_cycle_count_the_proof_cannot_hold_is_refused() {
    let mut chain = Chain::new();
    let honest = fib_receipt(10);
    let send = |chain: &mut Chain, job, cycles, proof: bool| {
        chain.send(
            "p1",
            TxBody::Fulfil {
                job_id: job,
                outputs: honest.stack_outputs,
                proof: proof.then(|| honest.proof.clone()),
                cycles,
            },
        )
    };

    let job = submit_req(&mut chain, fib_job(10, Mode::Proof));
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    assert!(matches!(
        send(&mut chain, job, honest.trace_len + 1, true),
        Err(TxError::BadCycles(_))
    ));
    send(&mut chain, job, honest.cycles, true).unwrap();
    let recorded = chain.state.jobs[&job].phase.delivery().unwrap().clone();
    assert_eq!(recorded.cycles, honest.cycles);
    assert_eq!(recorded.trace_len, honest.trace_len, "read from the proof");

    // Without a proof, the job's cycle cap bounds the claim.
    let job = submit_req(&mut chain, fib_job(10, Mode::Optimistic));
    chain.send("p1", TxBody::LockJob { job_id: job }).unwrap();
    let cap = u64::from(chain.state.jobs[&job].request.max_cycles);
    assert!(matches!(
        send(&mut chain, job, cap + 1, false),
        Err(TxError::BadCycles(_))
    ));

    // A challenger is held to its proof as well.
    let mut wrong = honest.stack_outputs.to_vec();
    wrong[0] = 56;
    let wrong = StackOutputs::new(&wrong).unwrap();
    let lie = TxBody::Fulfil {
        job_id: job,
        outputs: wrong,
        proof: None,
        cycles: 10,
    };
    chain.send("p1", lie).unwrap();
    let challenge = |cycles| TxBody::Challenge {
        job_id: job,
        outputs: honest.stack_outputs,
        proof: honest.proof.clone(),
        cycles,
    };
    assert!(matches!(
        chain.send("watcher", challenge(honest.trace_len + 1)),
        Err(TxError::BadCycles(_))
    ));
    chain.send("watcher", challenge(honest.cycles)).unwrap();
    let job = &chain.state.jobs[&job];
    assert_eq!(job.state(), JobState::Overturned);
    assert_eq!(job.cycles(), Some(honest.cycles));
}

/// An unstake spammer grows nothing without bound: every `Unstake` used to add an entry to its
/// stake record, which is rewritten whole into the state store whenever it changes, until no
/// block touching it could be stored. Unstakes released at one height merge; distinct pending
/// releases are capped, and the cap frees up as releases come due.
#[test]
fn an_unstake_spammer_cannot_grow_its_stake_record_without_bound() {
    let mut chain = Chain::with_params(verity_ledger::Params {
        unbonding_period: 1_000,
        ..Chain::new().state.params.clone()
    });
    let unstake = TxBody::Unstake {
        role: Role::Provider,
        amount: 1,
    };
    // Two in one block: one release.
    let a = chain.tx("p1", unstake.clone());
    let b = verity_testkit::signed(CHAIN, &key("p1"), a.tx.nonce + 1, unstake.clone());
    let out = chain.block(vec![a, b]);
    assert!(
        out.tx_results.iter().all(Result::is_ok),
        "{:?}",
        out.tx_results
    );
    let pending = |c: &Chain| c.state.stakes[&addr("p1")].unbonding.clone();
    assert_eq!(pending(&chain).len(), 1);
    assert_eq!(pending(&chain)[0].amount, 2);
    for _ in 1..verity_ledger::MAX_PENDING_UNBONDINGS {
        assert_eq!(chain.send("p1", unstake.clone()), Ok(()));
    }
    assert_eq!(pending(&chain).len(), verity_ledger::MAX_PENDING_UNBONDINGS);
    let stake_before = chain.state.stakes[&addr("p1")].clone();
    assert_eq!(
        chain.send("p1", unstake.clone()),
        Err(TxError::TooManyUnbondings {
            limit: verity_ledger::MAX_PENDING_UNBONDINGS
        })
    );
    assert_eq!(
        chain.state.stakes[&addr("p1")],
        stake_before,
        "a refusal changes no stake"
    );
    // Once the first release comes due, there is room again.
    chain.advance_to(1_001);
    assert_eq!(
        pending(&chain).len(),
        verity_ledger::MAX_PENDING_UNBONDINGS - 1
    );
    assert_eq!(chain.send("p1", unstake), Ok(()));
    chain.check_supply();
}

/// A state read from a store that cannot read an entry (a failing disk, a corrupt page) must
/// not treat it as absent: the payer's account would read as empty, the transfer be refused,
/// and this validator reach a root no other does. The block is refused as unreadable instead,
/// whatever it holds.
#[test]
fn an_entry_the_store_cannot_read_makes_the_block_unreadable_not_absent() {
    let mut chain = Chain::new();
    chain.block(vec![]);
    let tx = chain.tx(
        "client",
        TxBody::Transfer {
            to: addr("p1"),
            amount: 5,
        },
    );
    let header = verity_ledger::BlockHeader {
        chain_id: CHAIN.into(),
        height: chain.height() + 1,
        timestamp_ms: 1_000 + (chain.height() + 1) * 250,
        parent: verity_types::Digest([0; 32]),
        proposer: addr("validator"),
    };
    let mut entries: std::collections::BTreeMap<_, _> = chain.state.entries().into_iter().collect();
    // The same state over a sound store applies the block.
    let sound = std::sync::Arc::new(verity_ledger::MemorySource::new(entries.clone()));
    let mut over = verity_ledger::State::over(sound).unwrap();
    let out = verity_ledger::apply_block(&mut over, &header, std::slice::from_ref(&tx)).unwrap();
    assert_eq!(out.tx_results, vec![Ok(())]);
    // The client's account no longer decodes.
    let key = verity_ledger::EntryKind::Account.store_key(&addr("client").0);
    entries.insert(key, vec![0xff]);
    let broken = std::sync::Arc::new(verity_ledger::MemorySource::new(entries));
    let mut over = verity_ledger::State::over(broken).unwrap();
    let mut copy = over.clone();
    let err =
        verity_ledger::apply_block(&mut over, &header, std::slice::from_ref(&tx)).unwrap_err();
    assert!(
        matches!(err, verity_ledger::BlockError::StateUnreadable(ref why) if why.contains("does not decode")),
        "{err}"
    );
    assert!(
        !err.is_verdict(),
        "this node's failure, no verdict on the block"
    );
    // The failure belongs to the execution that met it: another block on the same snapshot,
    // which reads nothing that fails, applies (a failed read elsewhere, by an API request say,
    // must not stop the node for good).
    let empty = verity_ledger::apply_block(&mut copy, &header, &[]).unwrap();
    assert!(empty.tx_results.is_empty());
}

/// A block's signatures are checked as one batch; a forger's transaction among honest ones
/// fails the batch, and then each is checked alone: only the forged one is refused, and the
/// honest ones around it apply as if it were not there.
#[test]
fn a_forged_signature_in_a_block_is_refused_alone() {
    let mut chain = Chain::new();
    let names = ["client", "p1", "p2", "watcher"];
    let block = |chain: &Chain, forged: Option<usize>| -> Vec<SignedTx> {
        names
            .iter()
            .enumerate()
            .map(|(i, who)| {
                let mut tx = chain.tx(
                    who,
                    TxBody::Transfer {
                        to: addr("client"),
                        amount: 1,
                    },
                );
                if forged == Some(i) {
                    tx.signature.0[33] ^= 4;
                }
                tx
            })
            .collect()
    };
    let honest = block(&chain, None);
    assert!(SignedTx::signatures_are_valid(&honest));
    let out = chain.block(honest);
    assert!(out.tx_results.iter().all(Result::is_ok));

    let before = chain.balance("p2");
    let with_forgery = block(&chain, Some(2));
    assert!(!SignedTx::signatures_are_valid(&with_forgery));
    let out = chain.block(with_forgery);
    assert_eq!(
        out.tx_results,
        vec![Ok(()), Ok(()), Err(TxError::BadSignature), Ok(())]
    );
    assert_eq!(
        chain.balance("p2"),
        before,
        "the forged transfer moved nothing"
    );
}
