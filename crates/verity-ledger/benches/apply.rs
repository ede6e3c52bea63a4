//! Ledger throughput: transactions per second of `apply_block` for transfers, job
//! transactions without proofs (submit, lock, optimistic fulfil), and proof-carrying
//! fulfilments verified sequentially or in parallel before the sequential apply.
//!
//! Run: `cargo bench -p verity-ledger --bench apply`

use std::time::{Duration, Instant};

use verity_ledger::{BlockHeader, State, apply_block, apply_block_parallel};
use verity_types::{Digest, JobId, JobRequest, Keypair, Mode, Role, SignedTx, TxBody};
use verity_vm::{Inputs, Program, ProveOptions};

const CHAIN: &str = "bench";
use verity_testkit::{FIB, auction, fib_job, offer};

struct Bench {
    state: State,
    keys: Vec<Keypair>,
}

impl Bench {
    fn new(accounts: usize) -> Bench {
        let keys: Vec<Keypair> = (0..accounts)
            .map(|i| Keypair::dev(&format!("bench-{i}")))
            .collect();
        let genesis = keys
            .iter()
            .fold(verity_testkit::genesis(CHAIN), |g, k| {
                g.account(k.address(), 1 << 40)
                    .stake(k.address(), Role::Provider, 1 << 30)
            })
            .build();
        Bench {
            state: State::from_genesis(&genesis).unwrap(),
            keys,
        }
    }

    fn tx(&self, i: usize, body: TxBody) -> SignedTx {
        let k = &self.keys[i];
        let nonce = self.state.accounts[&k.address()].nonce;
        verity_testkit::signed(CHAIN, k, nonce, body)
    }

    fn header(&self) -> BlockHeader {
        BlockHeader {
            chain_id: CHAIN.into(),
            height: self.state.height + 1,
            timestamp_ms: (self.state.height + 1) * 250,
            parent: Digest::default(),
            proposer: self.keys[0].address(),
        }
    }

    /// Applies `txs`, returns the time spent and checks they all succeeded.
    fn apply(&mut self, txs: &[SignedTx], threads: usize) -> Duration {
        let header = self.header();
        let t = Instant::now();
        let out = if threads > 1 {
            apply_block_parallel(&mut self.state, &header, txs, threads).unwrap()
        } else {
            apply_block(&mut self.state, &header, txs).unwrap()
        };
        let elapsed = t.elapsed();
        for (i, r) in out.tx_results.iter().enumerate() {
            assert!(r.is_ok(), "tx {i}: {r:?}");
        }
        elapsed
    }
}

fn job(n: u64, mode: Mode) -> JobRequest {
    JobRequest {
        mode,
        offer: auction(1, 100, 0, offer(100, 50, 100, 10)),
        ..fib_job(n)
    }
}

fn report(what: &str, n: usize, d: Duration) {
    println!(
        "{what:<48} {n:>6} txs {:>10.1} ms {:>10.0} tx/s",
        d.as_secs_f64() * 1e3,
        n as f64 / d.as_secs_f64()
    );
}

fn main() {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("verity-ledger apply_block throughput ({threads} cores available)");

    // Transfers: 1000 accounts, each sends one transfer per block.
    let mut b = Bench::new(1000);
    let txs: Vec<_> = (0..1000)
        .map(|i| {
            b.tx(
                i,
                TxBody::Transfer {
                    to: b.keys[(i + 1) % 1000].address(),
                    amount: 1,
                },
            )
        })
        .collect();
    report("transfers", txs.len(), b.apply(&txs, 1));

    // Job transactions without proofs.
    let n = 200;
    let mut b = Bench::new(n);
    let txs: Vec<_> = (0..n)
        .map(|i| b.tx(i, TxBody::SubmitJob(job(10 + i as u64, Mode::Optimistic))))
        .collect();
    let ids: Vec<JobId> = txs.iter().map(|tx| JobId::submitted_by(tx.id())).collect();
    report("submit job (assembles the program)", n, b.apply(&txs, 1));
    let txs: Vec<_> = (0..n)
        .map(|i| b.tx((i + 1) % n, TxBody::LockJob { job_id: ids[i] }))
        .collect();
    report("lock job", n, b.apply(&txs, 1));
    let program = Program::assemble(FIB, "fib.masm").unwrap();
    let txs: Vec<_> = (0..n)
        .map(|i| {
            let inputs = Inputs::from_stack_list(&(10 + i as u64).to_string()).unwrap();
            let outputs = verity_vm::execute_outputs(&program, &inputs, 1 << 16).unwrap();
            b.tx(
                (i + 1) % n,
                TxBody::Fulfil {
                    job_id: ids[i],
                    outputs,
                    proof: None,
                    cycles: 0,
                },
            )
        })
        .collect();
    report("optimistic fulfil (no proof)", n, b.apply(&txs, 1));

    // Proof-carrying fulfilments.
    let n = 16;
    let receipts: Vec<_> = (0..n)
        .map(|i| {
            let inputs = Inputs::from_stack_list(&(10 + i as u64).to_string()).unwrap();
            verity_vm::prove(&program, &inputs, ProveOptions::default()).unwrap()
        })
        .collect();
    for threads in [1, threads] {
        let mut b = Bench::new(n);
        let txs: Vec<_> = (0..n)
            .map(|i| b.tx(i, TxBody::SubmitJob(job(10 + i as u64, Mode::Proof))))
            .collect();
        let ids: Vec<JobId> = txs.iter().map(|tx| JobId::submitted_by(tx.id())).collect();
        b.apply(&txs, 1);
        let txs: Vec<_> = (0..n)
            .map(|i| b.tx(i, TxBody::LockJob { job_id: ids[i] }))
            .collect();
        b.apply(&txs, 1);
        let txs: Vec<_> = (0..n)
            .map(|i| {
                b.tx(
                    i,
                    TxBody::Fulfil {
                        job_id: ids[i],
                        outputs: receipts[i].stack_outputs,
                        proof: Some(receipts[i].proof.clone()),
                        cycles: 0,
                    },
                )
            })
            .collect();
        report(
            &format!("fulfil with proof, verified on {threads} thread(s)"),
            n,
            b.apply(&txs, threads),
        );
    }
}
