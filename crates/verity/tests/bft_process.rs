//! Four `verity node run --peers` processes on loopback form a BFT network. The provider's
//! node is killed with SIGKILL while a job is in flight; the provider fails over to another
//! node, the job still ends with a verified receipt, the others report the dead validator
//! silent, and the killed validator, restarted, catches up to the same chain. And a validator
//! that starts late joins by state sync, then follows and votes.

mod common;

use std::time::{Duration, Instant};

use verity_client::Client;
use verity_ledger::{Genesis, GenesisAccount, GenesisStake, JobState};
use verity_node::devnet;
use verity_types::{Address, JobId, JobRequest, Role, TxBody};

use common::{Proc, free_port, spawn, verity, wait_height};

const TIMEOUT: Duration = Duration::from_secs(90);

/// The tests here run one at a time: each runs four validator processes with 100 ms blocks,
/// and eight at once on two cores would test the machine's load, not the protocol.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn height(client: &Client) -> Option<u64> {
    client.head().await.ok().map(|h| h.height)
}

/// Four validators' directories (`verity node init`), their peers file and a genesis that
/// stakes them, with an API address each; nothing started yet.
struct Network {
    root: std::path::PathBuf,
    validators: Vec<Address>,
    genesis_path: std::path::PathBuf,
    peers_path: std::path::PathBuf,
    apis: Vec<String>,
}

impl Network {
    fn new(root: &std::path::Path) -> Network {
        // `verity node init` for each validator; the peers file is their lines concatenated.
        let mut peers = String::new();
        let mut validators: Vec<Address> = Vec::new();
        for i in 0..4 {
            let d = root.join(format!("v{i}"));
            let p2p = format!("127.0.0.1:{}", free_port());
            let out = verity(&["node", "init", "--dir", d.to_str().unwrap(), "--p2p", &p2p])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = std::fs::read_to_string(d.join("peer.toml")).unwrap();
            let address = line
                .lines()
                .find_map(|l| l.strip_prefix("address = \""))
                .unwrap()
                .trim_end_matches('"')
                .parse()
                .unwrap();
            validators.push(address);
            peers.push_str(&line);
        }
        let peers_path = root.join("peers.toml");
        std::fs::write(&peers_path, peers).unwrap();

        // The devnet genesis, with these four as its validators, each with a balance to pay
        // the fees of its audit transactions.
        let mut genesis: Genesis = devnet::genesis();
        genesis.stakes.retain(|s| s.role != Role::Validator);
        for v in &validators {
            genesis.stakes.push(GenesisStake {
                address: *v,
                role: Role::Validator,
                amount: 1_000_000,
            });
            genesis.accounts.push(GenesisAccount {
                address: *v,
                balance: 1_000_000,
            });
        }
        let genesis_path = root.join("genesis.json");
        std::fs::write(&genesis_path, serde_json::to_vec(&genesis).unwrap()).unwrap();
        let apis = (0..4)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        Network {
            root: root.to_path_buf(),
            validators,
            genesis_path,
            peers_path,
            apis,
        }
    }

    /// Starts validator `i` (`verity node run --peers`, 100 ms blocks) with `extra` flags.
    fn start(&self, i: usize, extra: &[&str]) -> Proc {
        let dir = self.root.join(format!("v{i}"));
        let mut args = vec![
            "node",
            "run",
            "--dir",
            dir.to_str().unwrap(),
            "--genesis",
            self.genesis_path.to_str().unwrap(),
            "--peers",
            self.peers_path.to_str().unwrap(),
            "--listen",
            &self.apis[i],
            "--block-ms",
            "100",
        ];
        args.extend_from_slice(extra);
        spawn(&args, Some(&self.root.join(format!("v{i}.log"))))
    }

    fn clients(&self) -> Vec<Client> {
        self.apis
            .iter()
            .map(|a| Client::new(&format!("http://{a}")))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validator_processes_survive_kill_9_mid_job() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let net = Network::new(dir.path());
    let (validators, apis, genesis_path) = (&net.validators, &net.apis, &net.genesis_path);
    let start = |i: usize| net.start(i, &[]);
    let mut nodes: Vec<Option<Proc>> = (0..4).map(|i| Some(start(i))).collect();
    let clients = net.clients();
    for (i, c) in clients.iter().enumerate() {
        wait_height(c, 3, &format!("validator {i}"), TIMEOUT).await;
    }
    let head = clients[0].head().await.unwrap();
    let consensus = head.consensus.expect("a BFT node reports consensus");
    assert_eq!(consensus.validators, 4);

    // A provider process on validator 0, with validator 1 to fail over to; the client
    // submits through validator 1.
    let url0 = format!("http://{}", apis[0]);
    let url1 = format!("http://{}", apis[1]);
    let _provider = spawn(
        &[
            "provider", "--node", &url0, "--node", &url1, "--key", "provider",
        ],
        Some(&net.root.join("provider.log")),
    );
    let req = JobRequest {
        offer: verity_testkit::auction(10, 100, 0, verity_testkit::offer(100, 600, 1_200, 50)),
        max_cycles: 1 << 12,
        ..verity_testkit::fib_job(20)
    };
    let job_id = JobId::submitted_by(
        clients[1]
            .send(&devnet::dev_key("client"), TxBody::SubmitJob(req))
            .await
            .unwrap(),
    );

    // Once the job is on the ledger, kill validator 0, the provider's node, without warning:
    // its fulfilment (seconds of locking and proving later) can only go through validator 1.
    let t = Instant::now();
    while clients[0].job(&job_id).await.is_err() {
        assert!(t.elapsed() < Duration::from_secs(60), "job never included");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut killed = nodes[0].take().unwrap();
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let stopped_at = height(&clients[1]).await.unwrap();

    // Three of four validators are a quorum, and the provider carries on through validator
    // 1: the job completes with a verified receipt.
    let job = clients[1]
        .wait_job(&job_id, Duration::from_secs(120), |_| {})
        .await
        .unwrap();
    assert_eq!(job.state(), JobState::Finalized);
    assert_eq!(job.outputs().unwrap()[0], 6765);
    // Validator 2 saw the same result once it has applied the same blocks (it may trail
    // validator 1 by a block or two, so compare at equal heights, not at the same instant).
    let at = height(&clients[1]).await.unwrap();
    wait_height(&clients[2], at, "validator 2", TIMEOUT).await;
    let seen_by_2 = clients[2].job(&job_id).await.unwrap().job;
    assert_eq!(seen_by_2.state(), JobState::Finalized);
    assert_eq!(seen_by_2.outputs().unwrap()[0], 6765);
    // Every node builds the receipt from the ledger: validator 2 serves the very receipt
    // validator 1 does, cycle count included.
    let (from_1, from_2) = (
        clients[1].receipt(&job_id).await.unwrap(),
        clients[2].receipt(&job_id).await.unwrap(),
    );
    assert!(from_1.cycles > 0);
    assert_eq!(from_1, from_2);
    // And the job's provenance is final by the validators' own signatures: at least three of
    // the four genesis validators signed a block naming the state root that holds it.
    let out = verity(&["provenance", "verify", &job_id.to_string(), "--genesis"])
        .arg(genesis_path)
        .args(["--json", "--node", clients[2].url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked["validators"], 4, "{checked}");
    assert_eq!(
        checked["devnet"], false,
        "validators with keys of their own: {checked}"
    );
    assert!(checked["signers"].as_u64().unwrap() >= 3, "{checked}");

    // The provider talks to validator 1 only now; validators share its heartbeats, so
    // validator 2, which it never reached, has it online too.
    let provider = devnet::dev_key("provider").address();
    let t = Instant::now();
    while !clients[2].provider(&provider).await.unwrap().online {
        assert!(
            t.elapsed() < TIMEOUT,
            "validator 2 never heard the provider's heartbeats"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(clients[2].head().await.unwrap().providers_online >= 1);

    // The others see who stopped voting: validator 0 is silent, the three others vote.
    let t = Instant::now();
    loop {
        let voters = clients[1].head().await.unwrap().consensus.unwrap().voters;
        let silent: Vec<_> = voters
            .iter()
            .filter(|v| !v.voting)
            .map(|v| v.validator)
            .collect();
        if silent == [validators[0]] {
            break;
        }
        assert!(t.elapsed() < TIMEOUT, "silent: {silent:?} ({voters:?})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // `verity status` says the same (votes arrive all the time: read until it settles).
    let t = Instant::now();
    loop {
        let out = verity(&["status", "--node", &url1]).output().unwrap();
        let status = String::from_utf8_lossy(&out.stdout).into_owned();
        let silent = status
            .lines()
            .find(|l| l.contains(&validators[0].to_string()))
            // Killed early, it may have died before this node saw any vote of it.
            .is_some_and(|l| l.contains("silent since view") || l.contains("never seen voting"));
        if status.contains("3 voted in the last 20 views") && silent {
            break;
        }
        assert!(t.elapsed() < TIMEOUT, "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Restart the killed validator: it rejoins and catches up past where it died.
    nodes[0] = Some(start(0));
    let target = height(&clients[1]).await.unwrap();
    assert!(
        target > stopped_at,
        "the chain kept going without validator 0"
    );
    wait_height(&clients[0], target, "restarted validator 0", TIMEOUT).await;
    let h = clients[0].job(&job_id).await.unwrap().job;
    assert_eq!(h.state(), JobState::Finalized);
    assert_eq!(h.outputs().unwrap()[0], 6765);

    // Every validator runs the auditor by default: each commits to canaries on the ledger
    // (the restarted one too, though it may have died before its first commitment and
    // commits only ahead of an epoch), and `verity auditors` lists all four.
    let t = Instant::now();
    let auditors = loop {
        let auditors = clients[0].auditors().await.unwrap();
        assert_eq!(auditors.len(), 4);
        if auditors.iter().all(|a| a.record.canary_commitments >= 1) {
            break auditors;
        }
        assert!(t.elapsed() < TIMEOUT, "{auditors:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = verity(&["auditors", "--node", &url0]).output().unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), 5, "{table}");
    for a in &auditors {
        assert!(table.contains(&a.validator.short()), "{table}");
    }
}

/// A validator that joins late by state sync. Three of the four validators run the chain
/// for a while (three are a quorum); the fourth then starts with `--sync-from`: it holds the
/// chain's state (a transfer made before it came) without any block before the height it
/// synced at, follows the chain block for block, and votes: once another validator is
/// killed, the chain moves on only because it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_that_joins_late_by_state_sync_follows_and_votes() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let net = Network::new(dir.path());
    let clients = net.clients();
    let mut early: Vec<Proc> = (0..3).map(|i| net.start(i, &[])).collect();
    for (i, c) in clients[..3].iter().enumerate() {
        wait_height(c, 10, &format!("validator {i}"), TIMEOUT).await;
    }
    let to = Address([0xab; 32]);
    let tx = clients[0]
        .send(
            &devnet::dev_key("client"),
            TxBody::Transfer { to, amount: 4_242 },
        )
        .await
        .unwrap();
    clients[0].wait_tx(&tx, TIMEOUT).await.unwrap();
    let before = height(&clients[0]).await.unwrap();

    let url0 = format!("http://{}", net.apis[0]);
    let _late = net.start(3, &["--sync-from", &url0]);
    let joined = wait_height(&clients[3], before, "the late validator", TIMEOUT).await;
    assert!(
        clients[3].certified_block(1).await.is_err(),
        "the late validator replayed the chain instead of syncing its state"
    );
    assert_eq!(clients[3].account(&to).await.unwrap().balance, 4_242);
    // It follows: its blocks are the others' blocks.
    let at = wait_height(&clients[3], joined + 5, "the late validator", TIMEOUT).await;
    wait_height(&clients[1], at, "validator 1", TIMEOUT).await;
    assert_eq!(
        clients[3].certified_block(at).await.unwrap().id,
        clients[1].certified_block(at).await.unwrap().id
    );

    // It votes: without validator 0, no quorum of three exists unless it takes part.
    let mut killed = early.remove(0);
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let h = height(&clients[1]).await.unwrap();
    wait_height(
        &clients[1],
        h + 10,
        "validators 1 and 2 with the late validator",
        TIMEOUT,
    )
    .await;
    let voters = clients[1].head().await.unwrap().consensus.unwrap().voters;
    assert!(
        voters
            .iter()
            .any(|v| v.validator == net.validators[3] && v.voting),
        "{voters:?}"
    );
}
