//! Property tests over random transaction sequences: supply conservation, one terminal state
//! per job with its money moved once, rejected transactions change nothing, and determinism.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

use verity_ledger::{JobPhase, JobState, State};
use verity_types::{Address, JobId};
use verity_types::{
    CanaryClaim, CanaryReveal, Digest, JobRequest, Mode, Offer, ProgramSource, Role, SignedTx,
    StackOutputs, Tx, TxBody, canary,
};

const ACTORS: [&str; 5] = ["client", "p1", "p2", "watcher", "nobody"];
const TINY: &str = "begin push.1 drop end";

/// An abstract action; turned into a concrete transaction against the current state.
#[derive(Debug, Clone)]
enum Action {
    Transfer {
        from: usize,
        to: usize,
        amount: u64,
    },
    Stake {
        who: usize,
        provider: bool,
        amount: u64,
    },
    Unstake {
        who: usize,
        provider: bool,
        amount: u64,
    },
    Submit {
        who: usize,
        mode_proof: bool,
        max_price: u64,
        min_price: u64,
        lock_timeout: u64,
        extra: u64,
        collateral: u64,
    },
    Lock {
        who: usize,
        job: usize,
    },
    /// Sends a job's (sealed) private inputs.
    Provide {
        who: usize,
        job: usize,
    },
    /// Gives up a lock of a job with private inputs.
    Release {
        who: usize,
        job: usize,
    },
    Fulfil {
        who: usize,
        job: usize,
        output: u64,
        with_proof: bool,
    },
    Challenge {
        who: usize,
        job: usize,
        output: u64,
    },
    BadNonce {
        who: usize,
    },
    BadSignature {
        who: usize,
    },
    WrongChain {
        who: usize,
    },
    /// Skips ahead (empty blocks), so audit epochs end and canaries can be revealed.
    Skip {
        blocks: u64,
    },
    CanaryCommit {
        who: usize,
        ahead: u64,
        count: u32,
    },
    /// `watcher` funds canary `index` of its next epoch.
    CanaryFund {
        index: u32,
    },
    /// Canary `index` of `watcher`'s current epoch submits its job.
    CanarySubmit {
        index: u32,
        mode_proof: bool,
    },
    CanaryReveal {
        who: usize,
        back: u64,
        right: bool,
    },
    Empty,
}

/// The seed every canary of `who` in `epoch` derives from in these tests.
fn canary_seed(who: &str, epoch: u64) -> Digest {
    Digest::blake3(format!("{who}/{epoch}").as_bytes())
}

fn epoch_of(chain: &Chain) -> u64 {
    chain.state.height / verity_ledger::trust::AUDIT_EPOCH_BLOCKS
}

fn action() -> impl Strategy<Value = Action> {
    let who = 0..ACTORS.len();
    prop_oneof![
        (who.clone(), who.clone(), 0..2_000u64).prop_map(|(from, to, amount)| Action::Transfer {
            from,
            to,
            amount
        }),
        (who.clone(), any::<bool>(), 0..3_000u64).prop_map(|(who, provider, amount)| {
            Action::Stake {
                who,
                provider,
                amount,
            }
        }),
        (who.clone(), any::<bool>(), 0..3_000u64).prop_map(|(who, provider, amount)| {
            Action::Unstake {
                who,
                provider,
                amount,
            }
        }),
        (
            who.clone(),
            any::<bool>(),
            0..2_000u64,
            0..2_000u64,
            0..6u64,
            0..6u64,
            0..800u64
        )
            .prop_map(
                |(who, mode_proof, max_price, min_price, lock_timeout, extra, collateral)| {
                    Action::Submit {
                        who,
                        mode_proof,
                        max_price,
                        min_price,
                        lock_timeout,
                        extra,
                        collateral,
                    }
                }
            ),
        (who.clone(), 0..8usize).prop_map(|(who, job)| Action::Lock { who, job }),
        (who.clone(), 0..8usize).prop_map(|(who, job)| Action::Provide { who, job }),
        (who.clone(), 0..8usize).prop_map(|(who, job)| Action::Release { who, job }),
        (who.clone(), 0..8usize, 0..3u64, any::<bool>()).prop_map(
            |(who, job, output, with_proof)| Action::Fulfil {
                who,
                job,
                output,
                with_proof
            }
        ),
        (who.clone(), 0..8usize, 0..3u64).prop_map(|(who, job, output)| Action::Challenge {
            who,
            job,
            output
        }),
        who.clone().prop_map(|who| Action::BadNonce { who }),
        who.clone().prop_map(|who| Action::BadSignature { who }),
        who.clone().prop_map(|who| Action::WrongChain { who }),
        (0..120u64).prop_map(|blocks| Action::Skip { blocks }),
        (who.clone(), 0..4u64, 0..3u32).prop_map(|(who, ahead, count)| Action::CanaryCommit {
            who,
            ahead,
            count
        }),
        (0..3u32).prop_map(|index| Action::CanaryFund { index }),
        (0..3u32, any::<bool>())
            .prop_map(|(index, mode_proof)| Action::CanarySubmit { index, mode_proof }),
        (who, 0..3u64, any::<bool>()).prop_map(|(who, back, right)| Action::CanaryReveal {
            who,
            back,
            right
        }),
        Just(Action::Empty),
    ]
}

fn job_ids(state: &State) -> Vec<JobId> {
    state.jobs.keys().collect()
}

fn to_tx(chain: &Chain, a: &Action) -> Option<SignedTx> {
    let jobs = job_ids(&chain.state);
    let pick = |i: usize| jobs.get(i % jobs.len().max(1)).copied().unwrap_or_default();
    let outputs = |o: u64| {
        let mut v = vec![0u64; 16];
        v[0] = o;
        StackOutputs::new(&v).unwrap()
    };
    let role = |p: bool| if p { Role::Provider } else { Role::Validator };
    Some(match *a {
        Action::Transfer { from, to, amount } => chain.tx(
            ACTORS[from],
            TxBody::Transfer {
                to: addr(ACTORS[to]),
                amount,
            },
        ),
        Action::Stake {
            who,
            provider,
            amount,
        } => chain.tx(
            ACTORS[who],
            TxBody::Stake {
                role: role(provider),
                amount,
            },
        ),
        Action::Unstake {
            who,
            provider,
            amount,
        } => chain.tx(
            ACTORS[who],
            TxBody::Unstake {
                role: role(provider),
                amount,
            },
        ),
        Action::Submit {
            who,
            mode_proof,
            max_price,
            min_price,
            lock_timeout,
            extra,
            collateral,
        } => chain.tx(
            ACTORS[who],
            TxBody::SubmitJob(JobRequest {
                program: TINY.into(),
                stack_inputs: vec![],
                // A third of the jobs have private inputs.
                private_inputs: collateral
                    .is_multiple_of(3)
                    .then(|| verity_vm::commit_private(&[collateral]).unwrap()),
                mode: if mode_proof {
                    Mode::Proof
                } else {
                    Mode::Optimistic
                },
                offer: Offer {
                    min_price,
                    max_price,
                    ramp_start: 0,
                    ramp_period: lock_timeout / 2,
                    lock_timeout,
                    timeout: lock_timeout + extra,
                    collateral,
                },
                max_cycles: 1 << 12,
                min_trust: None,
            }),
        ),
        Action::Lock { who, job } => chain.tx(ACTORS[who], TxBody::LockJob { job_id: pick(job) }),
        Action::Provide { who, job } => chain.tx(
            ACTORS[who],
            TxBody::ProvideInputs {
                job_id: pick(job),
                sealed: vec![7; 48],
            },
        ),
        Action::Release { who, job } => {
            chain.tx(ACTORS[who], TxBody::ReleaseLock { job_id: pick(job) })
        }
        Action::Fulfil {
            who,
            job,
            output,
            with_proof,
        } => chain.tx(
            ACTORS[who],
            TxBody::Fulfil {
                job_id: pick(job),
                outputs: outputs(output),
                proof: with_proof.then(|| vec![7u8; 64]),
                cycles: 0,
            },
        ),
        Action::Challenge { who, job, output } => chain.tx(
            ACTORS[who],
            TxBody::Challenge {
                job_id: pick(job),
                outputs: outputs(output),
                proof: vec![9u8; 64],
                cycles: 0,
            },
        ),
        Action::BadNonce { who } => {
            let k = key(ACTORS[who]);
            let nonce = chain
                .state
                .accounts
                .get(&k.address())
                .map_or(0, |a| a.nonce)
                + 1;
            Tx {
                chain_id: CHAIN.into(),
                signer: k.address(),
                nonce,
                body: TxBody::Transfer {
                    to: addr("p1"),
                    amount: 1,
                },
            }
            .sign(&k)
        }
        Action::BadSignature { who } => {
            let mut tx = chain.tx(
                ACTORS[who],
                TxBody::Transfer {
                    to: addr("p1"),
                    amount: 1,
                },
            );
            tx.signature.0[0] ^= 1;
            tx
        }
        Action::WrongChain { who } => {
            let k = key(ACTORS[who]);
            let nonce = chain
                .state
                .accounts
                .get(&k.address())
                .map_or(0, |a| a.nonce);
            Tx {
                chain_id: "other".into(),
                signer: k.address(),
                nonce,
                body: TxBody::Transfer {
                    to: addr("p1"),
                    amount: 1,
                },
            }
            .sign(&k)
        }
        Action::Skip { .. } | Action::Empty => return None,
        Action::CanaryCommit { who, ahead, count } => {
            let epoch = epoch_of(chain) + ahead;
            chain.tx(
                ACTORS[who],
                TxBody::CanaryCommit {
                    epoch,
                    commitment: canary::commitment(
                        &addr(ACTORS[who]),
                        epoch,
                        &canary_seed(ACTORS[who], epoch),
                    ),
                    count,
                },
            )
        }
        Action::CanaryFund { index } => {
            let epoch = epoch_of(chain) + 1;
            let to = canary::client_address(
                &addr("watcher"),
                epoch,
                &canary_seed("watcher", epoch),
                index,
            );
            chain.tx("watcher", TxBody::Transfer { to, amount: 1_000 })
        }
        Action::CanarySubmit { index, mode_proof } => {
            let epoch = epoch_of(chain);
            let k = canary::client_key(
                &addr("watcher"),
                epoch,
                &canary_seed("watcher", epoch),
                index,
            );
            let mut req = fib_job(
                1,
                if mode_proof {
                    Mode::Proof
                } else {
                    Mode::Optimistic
                },
            );
            req.program = TINY.into();
            req.stack_inputs = vec![];
            chain.tx_by(&k, TxBody::SubmitJob(req))
        }
        Action::CanaryReveal { who, back, right } => {
            let (me, epoch) = (addr(ACTORS[who]), epoch_of(chain).saturating_sub(back));
            let seed = canary_seed(ACTORS[who], epoch);
            let count = chain
                .state
                .canary_commits
                .get(&(epoch, me))
                .map_or(1, |c| c.count);
            // Claim every job a canary key of this epoch submitted, with its outputs (or
            // different ones).
            let canaries = (0..count)
                .filter_map(|i| {
                    // A canary key's first job in the epoch (a reveal names one per index).
                    let client = canary::client_address(&me, epoch, &seed, i);
                    let blocks = verity_ledger::trust::AUDIT_EPOCH_BLOCKS;
                    chain
                        .state
                        .jobs
                        .values()
                        .filter(|j| j.client == client)
                        .filter(|j| j.submitted_height / blocks == epoch)
                        .min_by_key(|j| (j.submitted_height, j.id))
                        .map(|j| CanaryClaim {
                            index: i,
                            job_id: j.id,
                            expected: match (j.outputs(), right) {
                                (Some(o), true) => *o,
                                _ => outputs(2),
                            },
                        })
                })
                .collect();
            chain.tx(
                ACTORS[who],
                TxBody::CanaryReveal(CanaryReveal {
                    epoch,
                    seed,
                    canaries,
                }),
            )
        }
    })
}

/// A chain with fees whose ended jobs retire after 8 blocks, so that random sequences
/// exercise retirement (jobs leaving the state) as well as every transaction. A genesis may
/// not set so short a retention (canary reveals must find their jobs), so it is set on the
/// state: retirement itself does not depend on the length.
fn retiring_chain() -> Chain {
    let mut chain = Chain::with_fees();
    chain.state.params.job_retention = 8;
    chain
}

fn check_invariants(chain: &Chain) {
    chain.check_supply();
    // Trust profiles kept incrementally equal the ones recomputed from the jobs' history.
    let live: Vec<_> = chain.state.jobs.values().collect();
    for (provider, kept) in chain.state.providers.iter() {
        let every_job = live.iter().map(|job| &**job).chain(chain.archive.values());
        let mut rebuilt = verity_ledger::trust::stats_from_history(every_job, &provider);
        let mut kept = kept.into_owned();
        // Within one block the order of equal-height fulfilments is not in the history.
        kept.recent_latencies.sort_unstable();
        rebuilt.recent_latencies.sort_unstable();
        assert_eq!(
            kept, rebuilt,
            "provider {provider}'s record drifted from its history"
        );
    }
    for job in chain.state.jobs.values() {
        let terminal_entries = job
            .timeline
            .iter()
            .filter(|e| e.state.is_terminal())
            .count();
        if job.state().is_terminal() {
            assert_eq!(
                terminal_entries, 1,
                "job {} reached exactly one terminal state",
                job.id
            );
            assert_eq!(job.escrow, 0, "terminal job {} holds no escrow", job.id);
            assert!(chain.state.provenance.contains_key(&job.id));
        } else {
            assert_eq!(terminal_entries, 0);
            assert_eq!(
                job.escrow, job.request.offer.max_price,
                "escrow intact until the end"
            );
        }
    }
    // Each inline source is held once, for exactly the jobs in the state that name it; a
    // retired job's archived record has its source back.
    let mut named: BTreeMap<Digest, u64> = BTreeMap::new();
    for job in chain.state.jobs.values() {
        match &job.request.program {
            ProgramSource::Inline(_) => panic!("job {} holds its source itself", job.id),
            ProgramSource::Stored(d) => *named.entry(*d).or_default() += 1,
            ProgramSource::Published(_) => {}
        }
    }
    let held: BTreeMap<Digest, u64> = chain
        .state
        .source_jobs
        .iter()
        .map(|(d, n)| (d, *n))
        .collect();
    assert_eq!(held, named, "the stored sources are the jobs' sources");
    assert!(
        chain.state.sources.keys().eq(named.keys().copied()),
        "a source is stored exactly while a job names it"
    );
    for job in chain.archive.values() {
        assert!(
            !matches!(job.request.program, ProgramSource::Stored(_)),
            "archived job {} lost its source",
            job.id
        );
    }
    // Locked stake is exactly what live jobs hold: each locked job its locker's collateral,
    // each optimistic result in its window its prover's bond (a terminal job holds none).
    let mut held: BTreeMap<Address, u64> = BTreeMap::new();
    for job in chain.state.jobs.values() {
        match &job.phase {
            JobPhase::Locked { lock } => {
                *held.entry(lock.provider).or_default() += job.request.offer.collateral
            }
            JobPhase::Fulfilled { delivery, bond, .. } => {
                *held.entry(delivery.prover).or_default() += bond
            }
            _ => {}
        }
    }
    for (who, stake) in chain.state.stakes.iter() {
        assert!(stake.provider_locked <= stake.provider);
        assert_eq!(
            stake.provider_locked,
            held.get(&who).copied().unwrap_or(0),
            "{who}'s locked stake is what its live jobs hold"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// One transaction per block: after each block the invariants hold, and a rejected
    /// transaction leaves the state exactly as an empty block would have.
    #[test]
    fn invariants_hold_and_rejections_change_nothing(actions in proptest::collection::vec(action(), 1..40)) {
        let mut chain = retiring_chain();
        // `watcher` is a validator, so its canary commitments and reveals can be accepted.
        chain.send("watcher", TxBody::Stake { role: Role::Validator, amount: 5_000 }).unwrap();
        for a in &actions {
            if let Action::Skip { blocks } = a {
                chain.advance_to(chain.height() + blocks);
                check_invariants(&chain);
                continue;
            }
            let expected_if_rejected = chain.clone_state_after_empty_block();
            let Some(tx) = to_tx(&chain, a) else {
                chain.block(vec![]);
                continue;
            };
            let out = chain.block(vec![tx.clone()]);
            if let Err(e) = &out.tx_results[0] {
                prop_assert!(!e.to_string().is_empty());
                let expected = chain.expected_after_rejection(&expected_if_rejected, &tx, e);
                prop_assert_eq!(chain.state.to_bytes(), expected.to_bytes(), "rejected {:?} ({}) changed more than its fee and nonce", a, e);
            }
            check_invariants(&chain);
        }
    }

    /// Several transactions per block; replaying the blocks from genesis (and from a decoded
    /// snapshot) reproduces every block's change set, hence every state root a store computes.
    #[test]
    fn replay_is_deterministic(blocks in proptest::collection::vec(proptest::collection::vec(action(), 0..5), 1..15)) {
        let mut chain = retiring_chain();
        let mut roots: Vec<verity_ledger::ChangeSet> = Vec::new();
        for actions in &blocks {
            for a in actions {
                if let Action::Skip { blocks } = a {
                    for _ in 0..*blocks {
                        roots.push(chain.block(vec![]).changes);
                    }
                }
            }
            // Build the block's txs against the state as it evolves within the block: nonces
            // must increase, so sign each tx against a scratch copy.
            let mut txs = Vec::new();
            let mut scratch = Chain { state: chain.state.clone(), blocks: vec![], genesis: chain.genesis.clone(), archive: Default::default(), mirror: None };
            for a in actions {
                if let Some(tx) = to_tx(&scratch, a) {
                    scratch.state.accounts.entry(tx.tx.signer).or_default().nonce += 1;
                    txs.push(tx);
                }
            }
            roots.push(chain.block(txs).changes);
            check_invariants(&chain);
        }

        let mut replay = State::from_genesis(&chain.genesis).unwrap();
        replay.params.job_retention = chain.state.params.job_retention;
        // A store fed only each block's change set (the first one carries genesis) holds
        // exactly the state's entries after every block.
        let mut store: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
        for (i, (header, txs)) in chain.blocks.iter().enumerate() {
            let out = verity_ledger::apply_block(&mut replay, header, txs).unwrap();
            prop_assert_eq!(&out.changes, &roots[i]);
            for (key, value) in &out.changes {
                match value {
                    Some(value) => store.insert(key.clone(), value.clone()),
                    None => store.remove(key),
                };
            }
            let entries: std::collections::BTreeMap<_, _> = replay.entries().into_iter().collect();
            prop_assert!(store == entries, "block {}: the change set is not what changed", i + 1);
            // And the state read back from those entries is the state.
            let reopened = State::from_entries(store.clone()).unwrap();
            prop_assert_eq!(reopened.to_bytes(), replay.to_bytes());
            if i == chain.blocks.len() / 2 {
                // Encode, decode, and continue from the copy.
                replay = State::from_bytes(&replay.to_bytes()).unwrap();
            }
        }
        prop_assert_eq!(replay.to_bytes(), chain.state.to_bytes());

        // The same against the real state store (QMDB): the change sets of the run and of the
        // replay give the same root after every block, and the store holds the final state's
        // every entry.
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (run, again) = (
            verity_store::StateStore::open(dir_a.path()).unwrap(),
            verity_store::StateStore::open(dir_b.path()).unwrap(),
        );
        let mut replay = State::from_genesis(&chain.genesis).unwrap();
        replay.params.job_retention = chain.state.params.job_retention;
        for (i, (header, txs)) in chain.blocks.iter().enumerate() {
            let out = verity_ledger::apply_block(&mut replay, header, txs).unwrap();
            let height = header.height;
            let (a, b) = (run.write(height, &roots[i]).unwrap(), again.write(height, &out.changes).unwrap());
            prop_assert_eq!(a.root, b.root, "block {}", height);
        }
        for (key, value) in replay.entries() {
            prop_assert_eq!(again.get(&key).unwrap(), Some(value));
        }
    }

    /// `watcher` commits to three canaries of epoch 1 and funds them; then random submits,
    /// locks, fulfilments, skips and early reveals; finally it reveals. Every block keeps the
    /// invariants, rejected transactions change nothing, and the verdicts are exactly what the
    /// jobs' ends say (fake proofs never verify here, so no proof contradicts anyone).
    #[test]
    fn canary_reveals_judge_exactly_what_the_ledger_shows(
        steps in proptest::collection::vec(canary_step(), 1..30),
        right in any::<bool>(),
    ) {
        let mut chain = Chain::new();
        chain.send("watcher", TxBody::Stake { role: Role::Validator, amount: 5_000 }).unwrap();
        for a in [Action::CanaryCommit { who: 3, ahead: 1, count: 3 }, Action::CanaryFund { index: 0 }, Action::CanaryFund { index: 1 }, Action::CanaryFund { index: 2 }] {
            let tx = to_tx(&chain, &a).unwrap();
            prop_assert_eq!(chain.block(vec![tx]).tx_results, vec![Ok(())]);
        }
        chain.advance_to(verity_ledger::trust::AUDIT_EPOCH_BLOCKS);
        for a in &steps {
            if let Action::Skip { blocks } = a {
                chain.advance_to(chain.height() + blocks);
                check_invariants(&chain);
                continue;
            }
            let expected_if_rejected = chain.clone_state_after_empty_block();
            let tx = to_tx(&chain, a).unwrap();
            let out = chain.block(vec![tx.clone()]);
            if let Err(e) = &out.tx_results[0] {
                let expected = chain.expected_after_rejection(&expected_if_rejected, &tx, e);
                prop_assert_eq!(chain.state.to_bytes(), expected.to_bytes(), "rejected {:?} ({}) changed more than its fee and nonce", a, e);
            }
            check_invariants(&chain);
        }
        let watcher = addr("watcher");
        if chain.state.canary_commits[&(1, watcher)].revealed {
            return Ok(());
        }
        // Long enough for every canary (timeouts ≤ 11 blocks, window 5) to end.
        chain.advance_to(chain.height().max(2 * verity_ledger::trust::AUDIT_EPOCH_BLOCKS) + 20);
        let reveal = to_tx(&chain, &Action::CanaryReveal { who: 3, back: chain.height() / 100 - 1, right }).unwrap();
        let claimed = match &reveal.tx.body { TxBody::CanaryReveal(r) => r.canaries.clone(), _ => unreachable!() };
        prop_assert_eq!(chain.block(vec![reveal]).tx_results, vec![Ok(())]);
        check_invariants(&chain);

        let ended = |state: JobState| claimed.iter().filter(|c| chain.state.jobs[&c.job_id].state() == state).count() as u64;
        let record = &chain.state.auditors[&watcher];
        let verdicts: u64 = chain.state.canaries.values().map(|r| r.passed + r.failed).sum();
        let passed: u64 = chain.state.canaries.values().map(|r| r.passed).sum();
        prop_assert_eq!(record.contradicted, 0);
        prop_assert_eq!(record.canaries_unpicked, ended(JobState::Expired));
        // Rescues add a failed locker on top of the rescuer's verdict.
        let rescued = claimed.iter().filter(|c| { let j = &chain.state.jobs[&c.job_id]; j.fulfiller().is_some() && j.fulfiller() != j.locker() }).count() as u64;
        if right {
            prop_assert_eq!(passed, ended(JobState::Finalized));
            prop_assert_eq!(record.canaries_disputed, 0);
        } else {
            prop_assert_eq!(passed, 0);
            prop_assert_eq!(record.canaries_disputed, ended(JobState::Finalized));
        }
        prop_assert_eq!(verdicts, passed + ended(JobState::Slashed) + rescued);
    }
}

fn canary_step() -> impl Strategy<Value = Action> {
    let provider = prop_oneof![Just(1usize), Just(2usize)];
    prop_oneof![
        (0..3u32, any::<bool>())
            .prop_map(|(index, mode_proof)| Action::CanarySubmit { index, mode_proof }),
        (provider.clone(), 0..3usize).prop_map(|(who, job)| Action::Lock { who, job }),
        (provider, 0..3usize, 0..2u64).prop_map(|(who, job, output)| Action::Fulfil {
            who,
            job,
            output,
            with_proof: false
        }),
        (0..15u64).prop_map(|blocks| Action::Skip { blocks }),
        any::<bool>().prop_map(|right| Action::CanaryReveal {
            who: 3,
            back: 0,
            right
        }),
    ]
}
