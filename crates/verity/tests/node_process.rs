//! `verity node` as a real process: killed with SIGKILL while a job is locked, restarted, and
//! nothing committed is lost; then a `verity provider` process completes the job.

mod common;

use std::time::Duration;

use verity_client::Client;
use verity_ledger::JobState;
use verity_node::devnet;
use verity_types::{JobRequest, Mode, Offer, TxBody};

use common::{free_port, spawn, wait_height};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_job_is_locked_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let node_args = [
        "node",
        "run",
        "--dir",
        &data,
        "--listen",
        &listen,
        "--block-ms",
        "50",
    ];
    let url = format!("http://{listen}");
    let client = Client::new(&url);

    let mut node = spawn(&node_args, None);
    wait_height(&client, 0, "node", Duration::from_secs(30)).await;
    let req = JobRequest {
        program: include_str!("../../../examples/fib.masm").into(),
        stack_inputs: vec![15],
        private_inputs: None,
        mode: Mode::Proof,
        offer: Offer {
            min_price: 10,
            max_price: 100,
            ramp_start: 0,
            ramp_period: 0,
            lock_timeout: 2_000,
            timeout: 4_000,
            collateral: 50,
        },
        max_cycles: 1 << 12,
        min_trust: None,
    };
    let submit = client
        .send(&devnet::dev_key("client"), TxBody::SubmitJob(req))
        .await
        .unwrap();
    client
        .wait_tx(&submit, Duration::from_secs(10))
        .await
        .unwrap();
    let lock = client
        .send(
            &devnet::dev_key("provider"),
            TxBody::LockJob { job_id: submit },
        )
        .await
        .unwrap();
    client
        .wait_tx(&lock, Duration::from_secs(10))
        .await
        .unwrap();
    let before = client.job(&submit).await.unwrap().job;
    assert_eq!(before.state, JobState::Locked);
    let height_before = client.head().await.unwrap().height;
    let balance_before = client
        .account(&devnet::dev_key("client").address())
        .await
        .unwrap()
        .balance;

    // SIGKILL: no chance to flush or clean up.
    node.0.kill().unwrap();
    node.0.wait().unwrap();
    assert!(client.head().await.is_err(), "the node is down");

    let _node = spawn(&node_args, None);
    let height_after = wait_height(&client, 0, "node", Duration::from_secs(30)).await;
    assert!(
        height_after >= height_before,
        "no committed block lost ({height_after} < {height_before})"
    );
    let after = client.job(&submit).await.unwrap().job;
    assert_eq!(after.state, JobState::Locked);
    assert_eq!(
        after.timeline, before.timeline,
        "the job's history survived"
    );
    assert_eq!(
        client
            .account(&devnet::dev_key("client").address())
            .await
            .unwrap()
            .balance,
        balance_before
    );

    // The provider that locked it resumes from the ledger and delivers.
    let _provider = spawn(&["provider", "--node", &url, "--key", "provider"], None);
    let job = client
        .wait_job(&submit, Duration::from_secs(60), |_| {})
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Finalized);
    assert_eq!(job.outputs.unwrap()[0], 610);
    client.receipt(&submit).await.unwrap();
}
