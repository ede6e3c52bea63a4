//! Four validators under commonware's deterministic runtime and simulated network: real
//! simplex, real ledger, real signatures and Miden proofs; only time and the network are
//! simulated (reproducible by seed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use commonware_cryptography::ed25519::PublicKey;
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_runtime::{Clock, Handle, Quota, Runner, Supervisor, deterministic};
use commonware_utils::{NZU32, NZUsize, probability};
use verity_consensus::byzantine::start_equivocator;
use verity_consensus::{
    AppConfig, Chain, Channels, Fault, MAX_MESSAGE_BYTES, MemoryChain, Validator, ValidatorConfig,
    channel, public_key, start,
};
use verity_ledger::{Block, Genesis};
use verity_types::{JobRequest, Keypair, Role, SignedTx, TxBody};
use verity_vm::{Inputs, Program, ProveOptions};

type Ctx = deterministic::Context;
type Sender = simulated::Sender<PublicKey, Ctx>;

const CHAIN: &str = "verity-sim";
use verity_testkit::{FIB, auction, fib_job, offer};

fn validator_key(i: usize) -> Keypair {
    Keypair::dev(&format!("sim-validator-{i}"))
}

fn genesis(n: usize) -> Genesis {
    let provider = Keypair::dev("provider").address();
    let g = verity_testkit::genesis(CHAIN)
        .account(Keypair::dev("client").address(), 1_000_000)
        .account(provider, 1_000_000)
        .stake(provider, Role::Provider, 100_000);
    (0..n)
        .fold(g, |g, i| {
            let v = validator_key(i).address();
            g.account(v, 1_000_000).stake(v, Role::Validator, 100_000)
        })
        .build()
}

fn tx(who: &str, nonce: u64, body: TxBody) -> SignedTx {
    verity_testkit::signed(CHAIN, &Keypair::dev(who), nonce, body)
}

fn transfer(nonce: u64) -> SignedTx {
    tx(
        "client",
        nonce,
        TxBody::Transfer {
            to: Keypair::dev("provider").address(),
            amount: 10,
        },
    )
}

struct Net {
    context: Ctx,
    oracle: Oracle<PublicKey, Ctx>,
    chains: Vec<Arc<MemoryChain>>,
    validators: Vec<Option<(Validator<Sender>, Handle<()>)>>,
    faults: Vec<Option<Fault>>,
    /// Validator run as an equivocator instead of an honest engine, and its count.
    equivocator: Option<(usize, Arc<AtomicU64>)>,
}

const LAN: Link = Link {
    latency: Duration::from_millis(10),
    jitter: Duration::from_millis(2),
    success_rate: probability!(1.0),
};

impl Net {
    async fn new(context: Ctx, n: usize, faults: Vec<Option<Fault>>) -> Net {
        Net::with_equivocator(context, n, faults, None).await
    }

    async fn with_equivocator(
        context: Ctx,
        n: usize,
        faults: Vec<Option<Fault>>,
        equivocator: Option<usize>,
    ) -> Net {
        let genesis = genesis(n);
        let keys: Vec<PublicKey> = (0..n)
            .map(|i| public_key(&validator_key(i).address()).unwrap())
            .collect();
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: MAX_MESSAGE_BYTES,
                max_peers_per_set: NZUsize!(n),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            keys,
        )
        .await;
        network.start();
        let chains = (0..n)
            .map(|_| Arc::new(MemoryChain::new(&genesis).unwrap()))
            .collect();
        let mut net = Net {
            context,
            oracle,
            chains,
            validators: (0..n).map(|_| None).collect(),
            faults,
            equivocator: equivocator.map(|i| (i, Arc::new(AtomicU64::new(0)))),
        };
        net.link_all(LAN).await;
        for i in 0..n {
            net.start(i).await;
        }
        net
    }

    fn key(i: usize) -> PublicKey {
        public_key(&validator_key(i).address()).unwrap()
    }

    async fn link(&self, a: usize, b: usize, link: Option<Link>) {
        let _ = self.oracle.remove_link(Self::key(a), Self::key(b)).await;
        if let Some(link) = link {
            self.oracle
                .add_link(Self::key(a), Self::key(b), link)
                .await
                .unwrap();
        }
    }

    async fn link_all(&self, link: Link) {
        let n = self.chains.len();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    self.link(a, b, Some(link.clone())).await;
                }
            }
        }
    }

    async fn start(&mut self, i: usize) {
        let control = self.oracle.control(Self::key(i));
        let quota = Quota::per_second(NZU32!(100_000));
        let mut regs = Vec::new();
        for ch in channel::ALL {
            regs.push(control.register(ch, quota).await.unwrap());
        }
        let mut regs = regs.into_iter();
        let channels = Channels {
            votes: regs.next().unwrap(),
            certificates: regs.next().unwrap(),
            resolver: regs.next().unwrap(),
            blocks: regs.next().unwrap(),
            sync: regs.next().unwrap(),
            txs: regs.next().unwrap(),
            notes: regs.next().unwrap(),
        };
        let validators = (0..self.chains.len())
            .map(|j| validator_key(j).address())
            .collect();
        let mut config = ValidatorConfig::new(
            AppConfig {
                key: validator_key(i),
                block_interval: Duration::from_millis(100),
                verify_threads: 1,
                fault: self.faults[i],
            },
            validators,
            CHAIN,
        );
        // All validators share the simulated disk: one journal partition each.
        config.partition = format!("verity-simplex-{i}");
        if let Some((e, counter)) = &mut self.equivocator
            && *e == i
        {
            let (_, count) = start_equivocator(
                self.context.child("byzantine"),
                config,
                self.chains[i].clone(),
                channels,
            )
            .unwrap();
            *counter = count;
            return;
        }
        let started = start(
            self.context.child("validator").with_attribute("index", i),
            config,
            self.chains[i].clone(),
            channels,
            control,
        )
        .unwrap();
        self.validators[i] = Some(started);
    }

    async fn crash(&mut self, i: usize) {
        let (_, handle) = self.validators[i].take().expect("running");
        handle.abort();
        let _ = handle.await;
    }

    /// Submits a transaction the way a node's API does: into its pool, then gossip.
    fn submit(&self, via: usize, tx: SignedTx) {
        self.chains[via].admit(tx.clone());
        self.validators[via].as_ref().unwrap().0.gossip(&tx);
    }

    fn height(&self, i: usize) -> u64 {
        self.chains[i].tip().height
    }

    async fn wait_for(&self, who: &[usize], height: u64) {
        while who.iter().any(|i| self.height(*i) < height) {
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every pair of validators agrees on every block both have committed.
    fn assert_no_fork(&self) {
        let ids: Vec<_> = self.chains.iter().map(|c| c.ids()).collect();
        for a in &ids {
            for b in &ids {
                let common = a.len().min(b.len());
                assert_eq!(
                    a[..common],
                    b[..common],
                    "validators committed different blocks"
                );
            }
        }
    }

    fn blocks(&self, i: usize) -> Vec<Block> {
        (1..=self.height(i))
            .map(|h| self.chains[i].block_at(h).unwrap())
            .collect()
    }
}

fn run<F, Fut>(seed: u64, f: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(Duration::from_secs(600)));
    deterministic::Runner::new(config).start(f);
}

#[test]
fn four_validators_finalize_one_chain_with_transactions_and_proofs() {
    // A real proof, made outside the simulation (proving is CPU time, not simulated time).
    let program = Program::assemble(FIB, "fib.masm").unwrap();
    let receipt = verity_vm::prove(
        &program,
        &Inputs::from_stack_list("10").unwrap(),
        ProveOptions::default(),
    )
    .unwrap();
    run(1, |context| async move {
        let net = Net::new(context, 4, vec![None; 4]).await;
        // Transfers submitted through different validators.
        for nonce in 0..10 {
            net.submit((nonce % 4) as usize, transfer(nonce));
        }
        // A proof-carrying job: submit, lock, fulfil, each through a different validator.
        let job = JobRequest {
            offer: auction(100, 1_000, 5, offer(1_000, 50, 100, 500)),
            ..fib_job(10)
        };
        let submit = tx("client", 10, TxBody::SubmitJob(job));
        let job_id = verity_types::JobId::submitted_by(submit.id());
        net.submit(1, submit);
        net.wait_for(&[0, 1, 2, 3], 5).await;
        while !net.chains[2].tip().state.jobs.contains_key(&job_id) {
            net.context.sleep(Duration::from_millis(50)).await;
        }
        net.submit(2, tx("provider", 0, TxBody::LockJob { job_id }));
        while net.chains[3].tip().state.jobs[&job_id].locker().is_none() {
            net.context.sleep(Duration::from_millis(50)).await;
        }
        net.submit(
            3,
            tx(
                "provider",
                1,
                TxBody::Fulfil {
                    job_id,
                    outputs: receipt.stack_outputs,
                    proof: Some(receipt.proof.clone()),
                    cycles: 0,
                },
            ),
        );
        loop {
            let h = net.height(0);
            net.wait_for(&[0, 1, 2, 3], h + 1).await;
            let state = net.chains[0].tip().state;
            if state.jobs[&job_id].state() == verity_ledger::JobState::Finalized
                && state.accounts[&Keypair::dev("client").address()].nonce == 11
            {
                break;
            }
        }
        let target = net.height(0) + 3;
        net.wait_for(&[0, 1, 2, 3], target).await;
        net.assert_no_fork();
        let h = (0..4).map(|i| net.height(i)).min().unwrap();
        for i in 0..4 {
            let root = net.chains[i].block_at(h).unwrap().id();
            assert_eq!(root, net.chains[0].block_at(h).unwrap().id());
        }
        // Every validator proposed (round robin) and every transaction landed exactly once.
        let blocks = net.blocks(0);
        let included: usize = blocks.iter().map(|b| b.txs.len()).sum();
        assert_eq!(included, 13);
        let proposers: std::collections::BTreeSet<_> =
            blocks.iter().map(|b| b.header.proposer).collect();
        assert_eq!(proposers.len(), 4);
        for i in 0..4 {
            assert_eq!(
                net.chains[i].pool_len(),
                0,
                "validator {i} kept included txs"
            );
        }
    });
}

#[test]
fn crashed_validator_restarts_and_catches_up() {
    run(2, |context| async move {
        let mut net = Net::new(context, 4, vec![None; 4]).await;
        net.wait_for(&[0, 1, 2, 3], 5).await;
        net.crash(3).await;
        let stopped_at = net.height(3);
        // Three of four is a quorum: the others keep finalizing, with transactions.
        for nonce in 0..5 {
            net.submit(0, transfer(nonce));
        }
        // Longer than a proposal may lead the tip: it must catch up by fetching.
        net.wait_for(&[0, 1, 2], stopped_at + 100).await;
        assert_eq!(
            net.height(3),
            stopped_at,
            "a crashed validator committed blocks"
        );
        net.start(3).await;
        let target = net.height(0) + 5;
        net.wait_for(&[0, 1, 2, 3], target).await;
        net.assert_no_fork();
        // It caught up through blocks it never saw proposed, to the same state.
        let h = net.height(3).min(net.height(0));
        assert_eq!(
            net.chains[3].block_at(h).unwrap().id(),
            net.chains[0].block_at(h).unwrap().id()
        );
        assert_eq!(
            net.chains[3].tip().state.accounts[&Keypair::dev("client").address()].nonce,
            5
        );
    });
}

#[test]
fn partition_halts_finality_without_forking_and_heals() {
    run(3, |context| async move {
        let net = Net::new(context, 4, vec![None; 4]).await;
        net.wait_for(&[0, 1, 2, 3], 5).await;
        // Split {0,1} | {2,3}: neither side has a quorum of 3.
        for a in [0, 1] {
            for b in [2, 3] {
                net.link(a, b, None).await;
                net.link(b, a, None).await;
            }
        }
        // Let anything already in flight settle, then watch: nothing may finalize.
        net.context.sleep(Duration::from_secs(2)).await;
        let frozen: Vec<u64> = (0..4).map(|i| net.height(i)).collect();
        net.submit(0, transfer(0));
        net.context.sleep(Duration::from_secs(20)).await;
        let after: Vec<u64> = (0..4).map(|i| net.height(i)).collect();
        assert_eq!(frozen, after, "a minority partition finalized blocks");
        net.assert_no_fork();
        // Heal: finality resumes and everyone converges.
        net.link_all(LAN).await;
        let target = frozen.iter().max().unwrap() + 10;
        net.wait_for(&[0, 1, 2, 3], target).await;
        net.assert_no_fork();
        // Wait for the transfer sent during the partition.
        while net
            .chains
            .iter()
            .any(|c| c.tip().state.accounts[&Keypair::dev("client").address()].nonce != 1)
        {
            net.context.sleep(Duration::from_millis(100)).await;
        }
        net.assert_no_fork();
    });
}

#[test]
fn lossy_slow_links_still_progress_without_divergence() {
    run(4, |context| async move {
        let net = Net::new(context, 4, vec![None; 4]).await;
        net.link_all(Link {
            latency: Duration::from_millis(100),
            jitter: Duration::from_millis(200),
            success_rate: probability!(0.8),
        })
        .await;
        for nonce in 0..5 {
            net.submit((nonce % 4) as usize, transfer(nonce));
        }
        net.wait_for(&[0, 1, 2, 3], 20).await;
        net.assert_no_fork();
        while net
            .chains
            .iter()
            .any(|c| c.tip().state.accounts[&Keypair::dev("client").address()].nonce != 5)
        {
            net.context.sleep(Duration::from_millis(100)).await;
        }
        net.assert_no_fork();
    });
}

/// Runs four validators of which validator 0 misbehaves as `fault` whenever it leads, with
/// transactions flowing; the honest three keep finalizing, refused blocks from validator 0
/// (each counts some), and never finalize one. Returns the network for further checks.
async fn honest_three_refuse(context: Ctx, fault: Fault, what: &str) -> Net {
    let mut faults = vec![None; 4];
    faults[0] = Some(fault);
    let net = Net::new(context, 4, faults).await;
    for nonce in 0..5 {
        net.submit(1, transfer(nonce));
    }
    net.wait_for(&[1, 2, 3], 20).await;
    net.assert_no_fork();
    for i in 1..4 {
        for block in net.blocks(i) {
            assert_ne!(
                block.header.proposer,
                validator_key(0).address(),
                "{what} was finalized"
            );
        }
        let status = net.validators[i].as_ref().unwrap().0.status.get();
        assert!(status.blocks_rejected > 0);
    }
    net
}

#[test]
fn a_block_from_the_far_future_is_refused_and_the_chain_goes_on() {
    // Honest leaders keep finalizing: none waits for a parent ten years ahead.
    run(5, |context| async move {
        honest_three_refuse(context, Fault::FutureTimestamps, "a far-future block").await;
    });
}

#[test]
fn byzantine_proposer_cannot_finalize_invalid_blocks() {
    run(5, |context| async move {
        let net = honest_three_refuse(
            context,
            Fault::ForgedTransactions,
            "a block from the forging validator",
        )
        .await;
        for i in 1..4 {
            for block in net.blocks(i) {
                assert!(block.txs.iter().all(SignedTx::signature_is_valid));
            }
        }
        // The honest three still carry the workload.
        while net.chains[1..]
            .iter()
            .any(|c| c.tip().state.accounts[&Keypair::dev("client").address()].nonce != 5)
        {
            net.context.sleep(Duration::from_millis(100)).await;
        }
        net.assert_no_fork();
    });
}

#[test]
fn equivocating_leader_cannot_split_the_chain() {
    run(6, |context| async move {
        let net = Net::with_equivocator(context, 4, vec![None; 4], Some(0)).await;
        for nonce in 0..5 {
            net.submit(1 + (nonce % 3) as usize, transfer(nonce));
        }
        net.wait_for(&[1, 2, 3], 30).await;
        let (_, equivocations) = net.equivocator.as_ref().unwrap();
        assert!(
            equivocations.load(Ordering::Relaxed) > 0,
            "the byzantine validator never led a view"
        );
        while net.chains[1..]
            .iter()
            .any(|c| c.tip().state.accounts[&Keypair::dev("client").address()].nonce != 5)
        {
            net.context.sleep(Duration::from_millis(100)).await;
        }
        // Every validator, the equivocator included, committed one and the same chain.
        net.assert_no_fork();
    });
}

/// A validator whose state store fails to stage blocks has no verdict on them: it abstains
/// (the other three finalize), does not count them as invalid, and votes again once its store
/// works, on the blocks it could not stage too.
#[test]
fn a_store_failure_is_no_verdict_on_the_block() {
    run(7, |context| async move {
        let net = Net::new(context, 4, vec![None; 4]).await;
        net.wait_for(&[0, 1, 2, 3], 3).await;
        net.chains[3].fail_stages(5);
        let status = || net.validators[3].as_ref().unwrap().0.status.get();
        let verified = status().blocks_verified;
        for nonce in 0..3 {
            net.submit(0, transfer(nonce));
        }
        let target = net.height(0) + 15;
        net.wait_for(&[0, 1, 2, 3], target).await;
        net.assert_no_fork();
        let s = status();
        assert_eq!(s.store_failures, 5, "{s:?}");
        assert_eq!(s.blocks_rejected, 0, "{s:?}");
        assert!(s.blocks_verified > verified + 5, "{s:?}");
    });
}
