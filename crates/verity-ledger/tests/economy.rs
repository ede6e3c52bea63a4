//! The whole economy under random play: an honest provider, a lying one (wrong optimistic
//! results, locks it abandons, self-challenges), an honest watcher that challenges every wrong
//! result it sees, and clients submitting jobs of both modes, with fees on. Real Miden proofs.
//!
//! Invariants after every block, over many seeds:
//! - supply is conserved (fees and burns accounted);
//! - the honest provider never loses collateral;
//! - no wrong result finalizes while the watcher is present;
//! - no client pays for a result that was not delivered: what every client holds is exactly
//!   its genesis balance, less its fees, less the price of its finalized jobs, plus its share
//!   of slashed collateral, less what is still in escrow.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use verity_ledger::JobState;
use verity_types::{JobId, JobRequest, Mode, SignedTx, StackOutputs, TxBody};

/// Who submits jobs (the watcher and the providers do not, so their winnings stay apart).
const CLIENTS: [&str; 1] = ["client"];

#[derive(Debug, Clone)]
enum Move {
    Submit {
        client: usize,
        n: u64,
        proof: bool,
        lock_timeout: u64,
        collateral: u64,
    },
    /// The honest provider locks a job and delivers the right result at once.
    HonestTakes {
        job: usize,
    },
    /// The liar locks a job: in optimistic mode it posts a wrong result, in proof mode it
    /// goes silent.
    LiarTakes {
        job: usize,
    },
    /// The liar tries to take back its bond by challenging its own wrong result.
    LiarSelfChallenges {
        job: usize,
    },
    /// The honest provider rescues a job the liar abandoned, once it may.
    HonestRescues {
        job: usize,
    },
    Wait {
        blocks: u64,
    },
}

fn moves() -> impl Strategy<Value = Move> {
    prop_oneof![
        3 => (0..1usize, 1..4u64, any::<bool>(), 2..8u64, 0..3u64).prop_map(
            |(client, n, proof, lock_timeout, c)| Move::Submit {
                client,
                n,
                proof,
                lock_timeout,
                collateral: [0, 200, 1_000][c as usize],
            }
        ),
        2 => (0..8usize).prop_map(|job| Move::HonestTakes { job }),
        2 => (0..8usize).prop_map(|job| Move::LiarTakes { job }),
        1 => (0..8usize).prop_map(|job| Move::LiarSelfChallenges { job }),
        1 => (0..8usize).prop_map(|job| Move::HonestRescues { job }),
        2 => (1..12u64).prop_map(|blocks| Move::Wait { blocks }),
    ]
}

fn right(n: u64) -> StackOutputs {
    fib_receipt(n).stack_outputs
}

/// The economy's books: fees each client paid, to check its balance against.
struct Books {
    chain: Chain,
    fees: BTreeMap<&'static str, u64>,
    genesis: BTreeMap<&'static str, u64>,
    honest_stake: u64,
}

impl Books {
    fn new() -> Books {
        let chain = Chain::with_fees();
        let genesis = CLIENTS.iter().map(|c| (*c, chain.balance(c))).collect();
        let honest_stake = chain.state.stakes[&addr("p1")].provider;
        Books {
            chain,
            fees: BTreeMap::new(),
            genesis,
            honest_stake,
        }
    }

    /// Applies one block of `txs` (each signed by the named actor) and books client fees.
    fn block(&mut self, txs: Vec<(&'static str, SignedTx)>) {
        let fees: Vec<(&'static str, u64, bool)> = txs
            .iter()
            .map(|(who, tx)| (*who, verity_ledger::fee_of(&self.chain.state, tx), false))
            .collect();
        let out = self
            .chain
            .block(txs.into_iter().map(|(_, tx)| tx).collect());
        for ((who, fee, _), result) in fees.into_iter().zip(&out.tx_results) {
            let included = !matches!(result, Err(e) if e.invalidates_block());
            if included && CLIENTS.contains(&who) {
                *self.fees.entry(who).or_default() += fee;
            }
        }
        self.check();
    }

    fn send(&mut self, who: &'static str, body: TxBody) {
        let tx = self.chain.tx(who, body);
        self.block(vec![(who, tx)]);
    }

    /// The honest watcher challenges every wrong optimistic result still in its window.
    fn watch(&mut self) {
        let wrong: Vec<(JobId, u64)> = self
            .chain
            .state
            .jobs
            .values()
            .filter(|j| j.state() == JobState::Fulfilled)
            .filter(|j| j.outputs() != Some(&right(j.request.stack_inputs[0])))
            .map(|j| (j.id, j.request.stack_inputs[0]))
            .collect();
        for (job, n) in wrong {
            let r = fib_receipt(n);
            self.send(
                "watcher",
                TxBody::Challenge {
                    job_id: job,
                    outputs: r.stack_outputs,
                    proof: r.proof.clone(),
                    cycles: 0,
                },
            );
        }
    }

    fn check(&self) {
        let chain = &self.chain;
        chain.check_supply();
        let honest = &chain.state.stakes[&addr("p1")];
        assert!(
            honest.provider >= self.honest_stake,
            "the honest provider lost collateral: {} < {}",
            honest.provider,
            self.honest_stake
        );
        for job in chain.state.jobs.values() {
            if job.state() == JobState::Finalized {
                assert_eq!(
                    job.outputs(),
                    Some(&right(job.request.stack_inputs[0])),
                    "a wrong result finalized: {:?}",
                    job.timeline
                );
            }
        }
        for client in CLIENTS {
            let me = addr(client);
            let mut expected = i128::from(self.genesis[client])
                - i128::from(self.fees.get(client).copied().unwrap_or(0));
            for job in chain.state.jobs.values().filter(|j| j.client == me) {
                expected -= i128::from(job.escrow);
                match job.state() {
                    JobState::Finalized => expected -= i128::from(job.lock_price().unwrap()),
                    // Slashed at the deadline (not rescued): half the collateral to the client.
                    JobState::Slashed => {
                        let c = job.request.offer.collateral;
                        expected += i128::from(c - c / 2);
                    }
                    _ => {}
                }
            }
            assert_eq!(
                i128::from(chain.balance(client)),
                expected,
                "{client}'s balance does not match what it was delivered"
            );
        }
    }
}

fn job_at(books: &Books, i: usize) -> Option<JobId> {
    let ids: Vec<JobId> = books.chain.state.jobs.keys().collect();
    ids.get(i % ids.len().max(1)).copied()
}

fn play(books: &mut Books, m: &Move) {
    match *m {
        Move::Submit {
            client,
            n,
            proof,
            lock_timeout,
            collateral,
        } => {
            let req = JobRequest {
                mode: if proof { Mode::Proof } else { Mode::Optimistic },
                offer: verity_testkit::auction(
                    10,
                    300,
                    0,
                    verity_testkit::offer(300, lock_timeout, lock_timeout + 6, collateral),
                ),
                ..verity_testkit::fib_job(n)
            };
            books.send(CLIENTS[client], TxBody::SubmitJob(req));
        }
        Move::HonestTakes { job } => {
            let Some(id) = job_at(books, job) else { return };
            let j = &books.chain.state.jobs[&id];
            // The honest provider locks only what it can deliver before the lock deadline.
            if j.state() != JobState::Submitted || books.chain.height() + 2 >= j.lock_deadline() {
                return;
            }
            let (n, mode) = (j.request.stack_inputs[0], j.request.mode);
            books.send("p1", TxBody::LockJob { job_id: id });
            if books.chain.state.jobs[&id].locker() == Some(addr("p1")) {
                let r = fib_receipt(n);
                let proof = (mode == Mode::Proof).then(|| r.proof.clone());
                books.send(
                    "p1",
                    TxBody::Fulfil {
                        job_id: id,
                        outputs: r.stack_outputs,
                        proof,
                        cycles: 0,
                    },
                );
            }
        }
        Move::LiarTakes { job } => {
            let Some(id) = job_at(books, job) else { return };
            let j = &books.chain.state.jobs[&id];
            if j.state() != JobState::Submitted {
                return;
            }
            let (n, mode) = (j.request.stack_inputs[0], j.request.mode);
            books.send("p2", TxBody::LockJob { job_id: id });
            if mode == Mode::Optimistic && books.chain.state.jobs[&id].locker() == Some(addr("p2"))
            {
                let lie = with_top(&right(n), right(n)[0] + 1);
                books.send(
                    "p2",
                    TxBody::Fulfil {
                        job_id: id,
                        outputs: lie,
                        proof: None,
                        cycles: 0,
                    },
                );
            }
        }
        Move::LiarSelfChallenges { job } => {
            let Some(id) = job_at(books, job) else { return };
            let n = books.chain.state.jobs[&id].request.stack_inputs[0];
            let r = fib_receipt(n);
            books.send(
                "p2",
                TxBody::Challenge {
                    job_id: id,
                    outputs: r.stack_outputs,
                    proof: r.proof.clone(),
                    cycles: 0,
                },
            );
        }
        Move::HonestRescues { job } => {
            let Some(id) = job_at(books, job) else { return };
            let j = &books.chain.state.jobs[&id];
            let h = books.chain.height() + 1;
            if j.state() != JobState::Locked || h < j.lock_deadline() || h >= j.deadline() {
                return;
            }
            let (n, mode) = (j.request.stack_inputs[0], j.request.mode);
            let r = fib_receipt(n);
            books.send(
                "p1",
                TxBody::Fulfil {
                    job_id: id,
                    outputs: r.stack_outputs,
                    proof: (mode == Mode::Proof).then(|| r.proof.clone()),
                    cycles: 0,
                },
            );
        }
        Move::Wait { blocks } => {
            for _ in 0..blocks {
                books.block(vec![]);
                books.watch();
            }
        }
    }
    books.watch();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn honest_actors_never_lose_and_no_lie_finalizes(plays in proptest::collection::vec(moves(), 1..40)) {
        let mut books = Books::new();
        for m in &plays {
            play(&mut books, m);
        }
        // Let every job end.
        for _ in 0..30 {
            books.block(vec![]);
            books.watch();
        }
        prop_assert!(books.chain.state.jobs.values().all(|j| j.state().is_terminal()));
    }
}
