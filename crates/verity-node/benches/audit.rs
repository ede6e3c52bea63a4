//! Auditing: detection rate and delay against a provider that lies on every optimistic job,
//! by re-execution sampling at several rates and by canaries alone, and what each costs.
//!
//! Run: `cargo bench --workspace --profile dev --bench audit`
//! One node (50 ms blocks, challenge window 100 blocks), one lying provider worker, the
//! validator's auditor; 12 fib(n) optimistic jobs per rate, one at a time. Then canaries only
//! (2 per epoch, no sampling) for three epochs, and the cost of one canary.

use std::time::{Duration, Instant};

use verity_client::Client;
use verity_ledger::JobState;
use verity_node::{AuditorConfig, devnet};
use verity_provider::{Provider, ProviderConfig, ProviderFault};
use verity_testkit::{FIB, auction, fib_job, offer};
use verity_types::{JobId, JobRequest, Mode, TxBody};
use verity_vm::{Inputs, Program};

const JOBS: u64 = 12;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "{:>10} {:>10} {:>9} {:>22} {:>20}",
        "sample", "frauds", "caught", "delay p50 (blocks)", "delay max (blocks)"
    );
    for rate in [10_000u32, 5_000, 2_500] {
        let dir = tempfile::tempdir().unwrap();
        let node = audited_network(
            dir.path(),
            AuditorConfig {
                sample_per_10k: rate,
                canaries_per_epoch: 0,
                ..AuditorConfig::new(devnet::dev_key("validator"))
            },
        )
        .await;
        let client = Client::new(&node.url());
        let key = devnet::dev_key("client");
        let mut delays = Vec::new();
        for n in 0..JOBS {
            let req = JobRequest {
                mode: Mode::Optimistic,
                offer: auction(10, 100, 0, offer(100, 40, 400, 100)),
                max_cycles: 1 << 12,
                ..fib_job(10 + n)
            };
            let id = client.send(&key, TxBody::SubmitJob(req)).await.unwrap();
            client.wait_tx(&id, Duration::from_secs(30)).await.unwrap();
            let job = client
                .wait_job(&JobId::submitted_by(id), Duration::from_secs(120), |_| {})
                .await
                .unwrap();
            if job.state() == JobState::Overturned {
                let fulfilled = job.phase.delivery().map(|d| d.height).unwrap();
                let overturned = job.timeline.last().unwrap().height;
                delays.push(overturned - fulfilled);
            }
        }
        delays.sort_unstable();
        let p50 = delays
            .get(delays.len() / 2)
            .map_or("-".into(), |d| d.to_string());
        let max = delays.last().map_or("-".into(), |d| d.to_string());
        println!(
            "{:>9}% {:>10} {:>9} {:>22} {:>20}",
            rate / 100,
            JOBS,
            delays.len(),
            p50,
            max
        );
        node.stop().await;
    }

    // The auditor's cost per checked result: one fast execution (a proof only when the result
    // is wrong), against the provider's proof.
    let program = Program::assemble(FIB, "fib.masm").unwrap();
    let inputs = Inputs::from_stack_list("1000").unwrap();
    let t = Instant::now();
    let runs = 50;
    for _ in 0..runs {
        verity_vm::execute_outputs(&program, &inputs, 1 << 16).unwrap();
    }
    let exec = t.elapsed().as_secs_f64() / f64::from(runs);
    let t = Instant::now();
    verity_vm::prove(&program, &inputs, Default::default()).unwrap();
    let prove = t.elapsed().as_secs_f64();
    println!(
        "fib(1000): re-execution {:.3} ms, proof {:.0} ms: auditing every result costs {:.4}% of proving it",
        exec * 1e3,
        prove * 1e3,
        100.0 * exec / prove
    );

    canaries_alone().await;
    canary_cost();
}

/// One node with 50 ms blocks and a challenge window of 100 blocks (long enough to prove in),
/// its validator auditing with `auditor`, and a provider that lies on every optimistic job.
async fn audited_network(
    dir: &std::path::Path,
    auditor: AuditorConfig,
) -> verity_node::RunningNode {
    let mut genesis = devnet::genesis();
    genesis.params.challenge_window = 100;
    let mut node = devnet::start_single(dir, genesis, "127.0.0.1:0".parse().unwrap(), 50)
        .await
        .unwrap();
    node.spawn_auditor(auditor);
    let mut liar = ProviderConfig::new(&node.url(), devnet::dev_key("provider2"));
    liar.price_per_mcycle = 100;
    liar.poll_interval = Duration::from_millis(50);
    liar.fault = Some(ProviderFault::WrongOutputs);
    node.spawn_worker(|stop| Provider::new(liar).run(stop));
    node
}

/// A provider lying on every optimistic job, audited by canaries only (2 per epoch, one of
/// each mode), for three epochs.
async fn canaries_alone() {
    let dir = tempfile::tempdir().unwrap();
    let node = audited_network(
        dir.path(),
        AuditorConfig {
            sample_per_10k: 0,
            canaries_per_epoch: 2,
            ..AuditorConfig::new(devnet::dev_key("validator"))
        },
    )
    .await;
    let me = devnet::dev_key("validator").address();
    let epochs = 3u64;
    let start = Instant::now();
    while !(1..=epochs).all(|e| {
        node.node
            .state()
            .canary_commits
            .get(&(e, me))
            .is_some_and(|c| c.revealed)
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "canaries not revealed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = node.node.state();
    let liar = devnet::dev_key("provider2").address();
    let record = state.canaries.get(&liar).cloned().unwrap_or_default();
    let mut delays: Vec<u64> = state
        .jobs
        .values()
        .filter(|j| j.state() == JobState::Overturned)
        .map(|j| j.timeline.last().unwrap().height - j.phase.delivery().map(|d| d.height).unwrap())
        .collect();
    delays.sort_unstable();
    println!(
        "canaries only, {epochs} epochs of 2: {} passed, {} failed by the liar; overturn delay p50 {} blocks; liar's score {}",
        record.passed,
        record.failed,
        delays
            .get(delays.len() / 2)
            .map_or("-".into(), |d| d.to_string()),
        verity_ledger::TrustProfile::of(&state, &liar).score
    );
    node.stop().await;
}

/// What one canary costs: the validator derives it (assemble, execute for the answer); the
/// provider that takes it executes and, in proof mode, proves it. Canary sizes are the ones
/// the auditor draws (fib(n), n in 20..500).
fn canary_cost() {
    let auditor = devnet::dev_key("validator").address();
    let seed = verity_types::Digest::blake3(b"bench");
    let count = 8u32;
    let (mut derive_s, mut prove_s) = (0.0, 0.0);
    for i in 0..count {
        let t = Instant::now();
        let c = verity_node::canary::derive("bench", &auditor, 1, &seed, i, 1, 250).unwrap();
        derive_s += t.elapsed().as_secs_f64();
        let program = Program::assemble(c.request.program.inline().unwrap(), "fib.masm").unwrap();
        let inputs = Inputs {
            stack: c.request.stack_inputs.clone(),
            ..Default::default()
        };
        let t = Instant::now();
        verity_vm::prove(&program, &inputs, Default::default()).unwrap();
        prove_s += t.elapsed().as_secs_f64();
    }
    let (derive_ms, prove_ms) = (
        1e3 * derive_s / f64::from(count),
        1e3 * prove_s / f64::from(count),
    );
    println!(
        "one canary: {derive_ms:.1} ms for the validator to derive and answer, {prove_ms:.0} ms to prove (mean of {count})"
    );
    // Default: about 1 canary per 100-block epoch across the whole network (each of V
    // validators sends its slot with probability 1/V), whatever V is.
    for block_ms in [250.0, 1_000.0] {
        let epoch_s = 100.0 * block_ms / 1e3;
        println!(
            "  default 1 per epoch, {block_ms} ms blocks (epoch {epoch_s} s): {:.2}% of one prover's time, shared by all providers (upper bound: the optimistic half only execute)",
            100.0 * prove_ms / 1e3 / epoch_s
        );
    }
}
