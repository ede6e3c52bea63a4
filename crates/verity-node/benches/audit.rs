//! Re-execution auditing: detection rate and delay against a provider that lies on every
//! optimistic job, at several sampling rates, and what the auditor spends doing it.
//!
//! Run: `cargo bench --workspace --profile dev --bench audit`
//! One node (50 ms blocks, challenge window 100 blocks), one lying provider worker, the
//! validator's auditor; 12 fib(n) optimistic jobs per rate, one at a time.

use std::time::{Duration, Instant};

use verity_client::Client;
use verity_ledger::JobState;
use verity_node::{AuditorConfig, NodeConfig, ProviderConfig, ProviderFault, devnet};
use verity_types::{JobRequest, Mode, Offer, TxBody};
use verity_vm::{Inputs, Program};

const FIB: &str = include_str!("../../../examples/fib.masm");
const JOBS: u64 = 12;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "{:>10} {:>10} {:>9} {:>22} {:>20}",
        "sample", "frauds", "caught", "delay p50 (blocks)", "delay max (blocks)"
    );
    for rate in [10_000u32, 5_000, 2_500] {
        let dir = tempfile::tempdir().unwrap();
        let mut genesis = devnet::genesis();
        genesis.params.challenge_window = 100;
        let mut config = NodeConfig::new(dir.path().to_path_buf(), genesis);
        config.block_interval_ms = 50;
        let mut node = verity_node::start(
            config,
            "127.0.0.1:0".parse().unwrap(),
            devnet::dev_key("validator"),
        )
        .await
        .unwrap();
        node.spawn_auditor(AuditorConfig {
            sample_per_10k: rate,
            ..AuditorConfig::new(devnet::dev_key("validator"))
        });
        let mut liar = ProviderConfig::new(&node.url(), devnet::dev_key("provider2"));
        liar.price_per_mcycle = 100;
        liar.poll_interval = Duration::from_millis(50);
        liar.fault = Some(ProviderFault::WrongOutputs);
        node.spawn_provider(liar);
        let client = Client::new(&node.url());
        let key = devnet::dev_key("client");
        let mut delays = Vec::new();
        for n in 0..JOBS {
            let req = JobRequest {
                program: FIB.into(),
                stack_inputs: vec![10 + n],
                advice_hash: None,
                mode: Mode::Optimistic,
                offer: Offer {
                    min_price: 10,
                    max_price: 100,
                    ramp_start: 0,
                    ramp_period: 0,
                    lock_timeout: 40,
                    timeout: 400,
                    collateral: 100,
                },
                max_cycles: 1 << 12,
                min_trust: None,
            };
            let id = client.send(&key, TxBody::SubmitJob(req)).await.unwrap();
            client.wait_tx(&id, Duration::from_secs(30)).await.unwrap();
            let job = client
                .wait_job(&id, Duration::from_secs(120), |_| {})
                .await
                .unwrap();
            if job.state == JobState::Overturned {
                let fulfilled = job.fulfilled_height.unwrap();
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
}
