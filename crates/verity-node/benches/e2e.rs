//! End-to-end latency of a small job (submit → verified receipt) with its breakdown, and API
//! throughput for job queries under concurrent load over loopback.
//!
//! Run: `cargo bench --workspace --profile dev --bench e2e`
//! The node, provider and load generator share this process (separate tasks, real HTTP on
//! 127.0.0.1); blocks every 250 ms as in `verity devnet`.

use std::time::{Duration, Instant};

use verity_client::Client;
use verity_ledger::JobState;
use verity_node::devnet;
use verity_provider::{Provider, ProviderConfig};
use verity_testkit::{auction, fib_job, offer};
use verity_types::{JobId, JobRequest, TxBody};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = devnet::start_single(
        dir.path(),
        devnet::genesis(),
        "127.0.0.1:0".parse().unwrap(),
        verity_node::node::DEFAULT_BLOCK_INTERVAL_MS,
    )
    .await
    .unwrap();
    let mut pcfg = ProviderConfig::new(&node.url(), devnet::dev_key("provider"));
    pcfg.price_per_mcycle = 100;
    pcfg.poll_interval = Duration::from_millis(50);
    node.spawn_worker(|stop| Provider::new(pcfg).run(stop));
    let client = Client::new(&node.url());
    let key = devnet::dev_key("client");

    println!("end-to-end, fib(n) in proof mode, 250 ms blocks, one job at a time");
    println!(
        "{:>4} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "n", "include ms", "lock ms", "deliver ms", "receipt ms", "total ms"
    );
    let (mut inc, mut lck, mut dlv, mut tot) = (vec![], vec![], vec![], vec![]);
    for n in [10u64, 50, 100, 200, 300] {
        let req = JobRequest {
            offer: auction(50, 100, 0, offer(100, 40, 400, 100)),
            max_cycles: 1 << 13,
            ..fib_job(n)
        };
        let t0 = Instant::now();
        let tx = client.send(&key, TxBody::SubmitJob(req)).await.unwrap();
        client.wait_tx(&tx, Duration::from_secs(30)).await.unwrap();
        let included = t0.elapsed();
        let job = client
            .wait_job(&JobId::submitted_by(tx), Duration::from_secs(120), |_| {})
            .await
            .unwrap();
        assert_eq!(job.state(), JobState::Finalized);
        client.receipt(&JobId::submitted_by(tx)).await.unwrap();
        let total = t0.elapsed();
        let ts = |s: JobState| {
            job.timeline
                .iter()
                .find(|e| e.state == s)
                .unwrap()
                .timestamp_ms as f64
        };
        let lock = ts(JobState::Locked) - ts(JobState::Submitted);
        let deliver = ts(JobState::Finalized) - ts(JobState::Locked);
        let receipt_ms = total.as_secs_f64() * 1e3 - included.as_secs_f64() * 1e3 - lock - deliver;
        println!(
            "{n:>4} {:>10.0} {lock:>10.0} {deliver:>10.0} {receipt_ms:>10.0} {:>10.0}",
            included.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3
        );
        inc.push(included.as_secs_f64() * 1e3);
        lck.push(lock);
        dlv.push(deliver);
        tot.push(total.as_secs_f64() * 1e3);
    }
    println!(
        "median: include {:.0} ms, lock {:.0} ms, deliver (prove + fulfil inclusion) {:.0} ms, total {:.0} ms",
        median(inc),
        median(lck),
        median(dlv),
        median(tot)
    );

    // API throughput: GET /v1/jobs/{id} from 16 concurrent clients for 5 s.
    let ids: Vec<_> = client
        .jobs(&Default::default())
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (c, ids) = (Client::new(&node.url()), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                c.job(&ids[(w + n as usize) % ids.len()]).await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                n += 1;
            }
            (n, lat)
        }));
    }
    let (mut total, mut lat) = (0u64, Vec::new());
    for t in tasks {
        let (n, l) = t.await.unwrap();
        total += n;
        lat.extend(l);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "API: GET /v1/jobs/{{id}}, 16 concurrent clients, 5 s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        total as f64 / 5.0,
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    node.stop().await;
}
