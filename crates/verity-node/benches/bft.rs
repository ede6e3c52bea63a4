//! Finality latency and throughput: a single block producer against four BFT validators
//! (simplex over authenticated TCP on 127.0.0.1), all nodes in this process.
//!
//! Run: `cargo bench --workspace --profile dev --bench bft`
//!
//! Figures: empty blocks per second (no minimum interval), transfer finality latency
//! (submit over HTTP → the node reports the transaction committed; p50/p99 of 100, one at a
//! time, polled every 2 ms), throughput for a burst of 2,000 transfers, and the latency of a
//! proof-mode job (submit → lock → proof-carrying fulfil → finalized) with a provider worker.

use std::time::{Duration, Instant};

use verity_client::Client;
use verity_ledger::JobState;
use verity_node::{RunningNode, devnet};
use verity_provider::{Provider, ProviderConfig};
use verity_testkit::{auction, fib_job, offer};
use verity_types::{JobId, JobRequest, Keypair, SignedTx, Tx, TxBody, TxId};

async fn network(validators: usize, block_ms: u64) -> (Vec<RunningNode>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    if validators == 1 {
        let node = devnet::start_single(
            &dir.path().join("v0"),
            devnet::genesis(),
            "127.0.0.1:0".parse().unwrap(),
            block_ms.max(1),
        )
        .await
        .unwrap();
        return (vec![node], dir);
    }
    let nodes = devnet::start_bft_network(
        dir.path(),
        validators,
        "127.0.0.1:0".parse().unwrap(),
        block_ms,
    )
    .await
    .unwrap();
    (nodes, dir)
}

fn transfer(key: &Keypair, nonce: u64) -> SignedTx {
    Tx {
        chain_id: devnet::DEVNET_CHAIN_ID.into(),
        signer: key.address(),
        nonce,
        body: TxBody::Transfer {
            to: devnet::dev_key("provider2").address(),
            amount: 1,
        },
    }
    .sign(key)
}

async fn committed(client: &Client, id: &TxId) {
    loop {
        if let Ok(s) = client.tx_status(id).await
            && s.status != verity_client::TxState::Pending
        {
            assert_eq!(s.status, verity_client::TxState::Accepted, "{:?}", s.error);
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure(label: &str, validators: usize) {
    // Empty blocks, as fast as ordering allows.
    let (nodes, _dir) = network(validators, 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let h0 = nodes[0].node.state().height;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let blocks = (nodes[0].node.state().height - h0) as f64 / t.elapsed().as_secs_f64();
    for n in nodes {
        n.stop().await;
    }

    // Transactions, at the devnet's 250 ms minimum block interval and with none.
    for block_ms in [250u64, 0] {
        let (mut nodes, _dir) = network(validators, block_ms).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let client = Client::new(&nodes[0].url());
        let key = devnet::dev_key("client");
        let mut nonce = 0;
        let mut lat = Vec::new();
        for _ in 0..100 {
            let tx = transfer(&key, nonce);
            nonce += 1;
            let t = Instant::now();
            let id = client.submit(&tx).await.unwrap();
            committed(&client, &id).await;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));

        let burst: Vec<SignedTx> = (0..2_000).map(|i| transfer(&key, nonce + i)).collect();
        let t = Instant::now();
        let mut last = None;
        for tx in &burst {
            last = Some(client.submit(tx).await.unwrap());
        }
        committed(&client, &last.unwrap()).await;
        let tps = burst.len() as f64 / t.elapsed().as_secs_f64();

        // A proof-mode job through a provider: includes a proof-carrying fulfil.
        let mut job_ms = Vec::new();
        if block_ms == 250 {
            let mut pcfg = ProviderConfig::new(&nodes[0].url(), devnet::dev_key("provider"));
            pcfg.price_per_mcycle = 100;
            pcfg.poll_interval = Duration::from_millis(50);
            nodes[0].spawn_worker(|stop| Provider::new(pcfg).run(stop));
            for n in [10u64, 20, 30, 40, 50] {
                let req = JobRequest {
                    offer: auction(50, 100, 0, offer(100, 200, 400, 100)),
                    max_cycles: 1 << 12,
                    ..fib_job(n)
                };
                let t = Instant::now();
                let id = client.send(&key, TxBody::SubmitJob(req)).await.unwrap();
                committed(&client, &id).await;
                let job = client
                    .wait_job(&JobId::submitted_by(id), Duration::from_secs(120), |_| {})
                    .await
                    .unwrap();
                assert_eq!(job.state(), JobState::Finalized);
                job_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        let job = if job_ms.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0}", percentile(&mut job_ms, 0.5))
        };
        println!(
            "{label:<22} {:>9} {:>13.1} {:>9.0} {:>9.0} {:>13.0} {:>12}",
            if block_ms == 0 {
                "none".into()
            } else {
                format!("{block_ms} ms")
            },
            blocks,
            p50,
            p99,
            tps,
            job
        );
        for n in nodes {
            n.stop().await;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "{:<22} {:>9} {:>13} {:>9} {:>9} {:>13} {:>12}",
        "network", "min block", "empty blk/s", "p50 ms", "p99 ms", "burst tx/s", "job p50 ms"
    );
    measure("single producer", 1).await;
    measure("4 validators (BFT)", 4).await;
}
