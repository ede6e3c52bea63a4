//! `verity` networks as real processes: a node killed with SIGKILL while a job is locked,
//! restarted, loses nothing, and a `verity provider` process completes the job; the README's
//! demo runs to the end; a model prediction goes through the network from the CLI.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use verity_client::Client;
use verity_ledger::JobState;
use verity_node::devnet;
use verity_types::JobId;
use verity_types::{JobRequest, Mode, Offer, ProgramSource, TxBody};

use common::{Proc, free_port, spawn, verity, wait_height};

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
        offer: verity_testkit::auction(10, 100, 0, verity_testkit::offer(100, 2_000, 4_000, 50)),
        max_cycles: 1 << 12,
        ..verity_testkit::fib_job(15)
    };
    let submit = client
        .send(&devnet::dev_key("client"), TxBody::SubmitJob(req))
        .await
        .unwrap();
    client
        .wait_tx(&submit, Duration::from_secs(10))
        .await
        .unwrap();
    let submit = JobId::submitted_by(submit);
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
    assert_eq!(before.state(), JobState::Locked);
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
    assert_eq!(after.state(), JobState::Locked);
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
    assert_eq!(job.state(), JobState::Finalized);
    assert_eq!(job.outputs().unwrap()[0], 610);
    client.receipt(&submit).await.unwrap();
}

/// The network tests that prove (a devnet's provider calibrates its speed, then plans its
/// locks by it) take turns: run side by side, each would read the machine as half as fast.
static PROVING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `verity ARGS` with its home (keys, remembered models) in `home`.
fn verity_at(home: &Path, args: &[&str]) -> Output {
    let mut cmd: Command = verity(args);
    cmd.env("VERITY_HOME", home).output().unwrap()
}

fn example(path: &str) -> String {
    format!("{}/../../examples/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// `verity model import` of `examples/models/DIR/ONNX` with its calibration set and `flags`,
/// into `out`; fails the test unless it succeeds.
fn import_at(home: &Path, dir: &str, onnx: &str, out: &Path, flags: &[&str]) {
    let onnx = example(&format!("models/{dir}/{onnx}"));
    let calibration = example(&format!("models/{dir}/calibration.json"));
    let mut args = vec!["model", "import", &onnx, "--calibrate", &calibration];
    args.extend_from_slice(flags);
    args.extend(["-o", out.to_str().unwrap()]);
    let imported = verity_at(home, &args);
    assert!(imported.status.success(), "{:?}", text(&imported));
}

/// A `verity devnet` (no auditor) with its home in `home` and `extra` flags, answering on
/// the returned URL.
async fn start_devnet(home: &Path, extra: &[&std::ffi::OsStr]) -> (Proc, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    let mut devnet = verity(&["devnet", "--listen", &listen, "--no-audit"]);
    devnet.args(extra).env("VERITY_HOME", home);
    let proc = verity_testkit::process::spawn(devnet, None);
    wait_height(&Client::new(&url), 1, "devnet", Duration::from_secs(30)).await;
    (proc, url)
}

/// The README's first command (what `scripts/devnet.sh --demo` runs): every example, and one
/// prediction of the digits model, finalized and verified.
#[test]
fn the_devnet_demo_finalizes_every_job() {
    let _turn = PROVING.blocking_lock();
    let home = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    // Default logging (no VERITY_LOG), from a directory with no examples in it: the demo
    // carries its own inputs, and the network's logs go to the file it names, not between
    // the table's lines.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = verity(&["devnet", "--demo", "--listen", &listen])
        .env_remove("VERITY_LOG")
        .env("VERITY_HOME", home.path())
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("all demo jobs finalized"),
        "{stdout}\n{stderr}"
    );
    // And shows a record checked against the validator's signature, not the node's word.
    assert!(
        stdout.contains("provenance of fib.masm: in the state block")
            && stdout.contains("final by the signatures of 1 of 1 validators"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(" INFO ") && !stderr.contains(" INFO ") && !stderr.contains(" WARN "),
        "logs in the demo's output: {stdout}\n{stderr}"
    );
    let log = stdout
        .lines()
        .find_map(|l| l.strip_prefix("network logs: "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("no log file named: {stdout}"));
    let logged = std::fs::read_to_string(log).unwrap();
    assert!(logged.contains("with a verified proof"), "{logged}");
    let _ = std::fs::remove_file(log);
    let inference = stdout
        .lines()
        .find(|l| l.starts_with("digits mlp.onnx"))
        .unwrap_or_else(|| panic!("no inference job in the demo: {stdout}"));
    assert!(
        inference.contains("finalized")
            && inference.contains("class 2")
            && inference.contains("verified"),
        "{inference}"
    );
    let optimistic = stdout
        .lines()
        .find(|l| l.starts_with("iris mlp.onnx"))
        .unwrap_or_else(|| panic!("no public-input inference job in the demo: {stdout}"));
    assert!(
        optimistic.contains("optimistic")
            && optimistic.contains("finalized")
            && optimistic.contains("virginica"),
        "{optimistic}"
    );
}

/// `job submit --model`: the client imports a model, submits one prediction on a private
/// input, waits, and reads the class back from `job status`; the receipt verifies against
/// the model and the class.
/// Issue 14's scenario: a job of 2^18 cycles (fib(15000), 210,024 cycles) submitted as a new
/// user would, with the default offer. The devnet's provider once locked it on a guessed speed
/// and was slashed 0.8 s before its proof was ready; now the offer is sized from the trace and
/// the provider plans by the speed it measured at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_offer_job_of_2_18_cycles_finalizes() {
    let _turn = PROVING.lock().await;
    let home = tempfile::tempdir().unwrap();
    let (_devnet, url) = start_devnet(home.path(), &[]).await;
    let fib = example("fib.masm");
    let out = verity_at(
        home.path(),
        &[
            "job",
            "submit",
            &fib,
            "--input",
            "15000",
            "--max-price",
            "1000",
            "--wait",
            "--node",
            &url,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let id: JobId = stdout
        .lines()
        .find_map(|l| l.strip_prefix("job "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let client = Client::new(&url);
    let job = client.job(&id).await.unwrap().job;
    assert_eq!(job.state(), JobState::Finalized, "{:?}", job.timeline);
    // The node builds the receipt from the ledger: the trace length comes from the proof.
    let receipt = client.receipt(&id).await.unwrap();
    assert_eq!(receipt.trace_len, 1 << 18, "the job is the issue's size");

    // The provenance record checks against the ledger without trusting the node: it is in a
    // state root, named by the next block, which the devnet's validator signed.
    provenance_is_certified(home.path(), &url, &id);

    // Every read command prints the API's answer with --json.
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--json", "--node", &url]);
        let out = verity_at(home.path(), &all);
        assert!(out.status.success(), "{args:?}: {:?}", text(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {:?}", text(&out)))
    };
    let api_job = serde_json::to_value(client.job(&id).await.unwrap().job).unwrap();
    assert_eq!(json(&["job", "status", &id.to_string()])["job"], api_job);
    let listed = json(&["jobs"]);
    assert!(
        listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.to_string()),
        "{listed}"
    );
    assert_eq!(json(&["status"])["chain_id"], devnet::DEVNET_CHAIN_ID);
    let client_key = devnet::dev_key("client").address();
    let balance = client.account(&client_key).await.unwrap().balance;
    assert_eq!(json(&["account", "client"])["balance"], balance);
    let provider = devnet::dev_key("provider").address().to_string();
    assert_eq!(
        json(&["provider", "show", "provider"])["profile"]["provider"],
        provider
    );
    assert!(
        json(&["providers"])
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["profile"]["provider"] == provider)
    );
    assert!(json(&["auditors"]).is_array());

    // Without --wait, `job submit` prints the id and returns once the node admitted the job.
    let out = verity_at(
        home.path(),
        &["job", "submit", &fib, "--input", "5", "--node", &url],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("job 0x"), "{stdout}");
    assert!(
        lines[1].contains("follow it with `verity job status"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_prediction_as_a_network_job() {
    let _turn = PROVING.lock().await;
    let home = tempfile::tempdir().unwrap();
    let (_devnet, url) = start_devnet(home.path(), &[]).await;

    // The CNN: its program (~210 KB of straight-line code) is too large to travel in a job,
    // so the first submission publishes it and every job names it by hash.
    let model = home.path().join("digits.vmodel");
    import_at(home.path(), "digits", "cnn.onnx", &model, &[]);
    let model = model.to_str().unwrap();

    let x = example("models/digits/x.json");
    let submit = |wait: bool| {
        let mut args = vec![
            "job",
            "submit",
            "--model",
            model,
            "--input",
            &x,
            "--node",
            &url,
            // A roomy offer: the provider plans by a speed measured at start, and this test
            // may share the machine with others.
            "--lock-timeout",
            "400",
        ];
        if wait {
            args.push("--wait");
        }
        verity_at(home.path(), &args)
    };
    let out = submit(true);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("prediction: class 2 (label 2)"), "{stdout}");
    assert!(stderr.contains("publishing program"), "{stderr}");
    let job_of = |out: &std::process::Output| {
        text(out)
            .0
            .lines()
            .find_map(|l| l.strip_prefix("job "))
            .unwrap()
            .trim()
            .to_string()
    };
    let id = job_of(&out);

    // The job carries only the input's commitment: the pixels are nowhere in it. And only
    // the program's hash: the source is on the ledger once.
    let client = Client::new(&url);
    let job = client.job(&id.parse().unwrap()).await.unwrap().job;
    assert!(job.request.private_inputs.is_some());
    assert!(job.request.stack_inputs.is_empty());
    let ProgramSource::Published(program) = job.request.program else {
        panic!("the CNN travels by hash: {:?}", job.request.program);
    };
    let published = client.program(&program).await.unwrap().expect("published");
    assert!(published.source.len() > 64 * 1024);
    assert_eq!(published.wrapped_hash, Some(job.program_hash));
    // A second prediction names the same program without publishing it again.
    let again = submit(false);
    assert!(again.status.success(), "{:?}", text(&again));
    assert!(!text(&again).1.contains("publishing"), "{:?}", text(&again));
    let second = client
        .job(&job_of(&again).parse().unwrap())
        .await
        .unwrap()
        .job;
    assert_eq!(second.request.program, ProgramSource::Published(program));

    // This machine imported the model, so `job status` decodes the prediction by itself;
    // elsewhere it needs `--model`.
    let out = verity_at(home.path(), &["job", "status", &id, "--node", &url]);
    assert!(
        text(&out).0.contains("predicts class 2 (label 2)"),
        "{:?}",
        text(&out)
    );
    // The id as tables print it, abbreviated, names the job too (as git's short ids do);
    // so does a provider's; a prefix nothing starts with is refused, naming it.
    let short = format!("{}…", &id[..10]);
    let out = verity_at(home.path(), &["job", "status", &short, "--node", &url]);
    assert!(text(&out).0.contains(id.as_str()), "{:?}", text(&out));
    let provider = devnet::dev_key("provider").address().to_string();
    let out = verity_at(
        home.path(),
        &["provider", "show", &provider[..10], "--node", &url],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let unknown = if id.starts_with("0xf") { "0x0" } else { "0xf" };
    let unknown = format!("{unknown}{}", "0".repeat(12));
    let out = verity_at(home.path(), &["job", "status", &unknown, "--node", &url]);
    assert!(
        !out.status.success() && text(&out).1.contains("no job id starts with"),
        "{:?}",
        text(&out)
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let out = verity_at(elsewhere.path(), &["job", "status", &id, "--node", &url]);
    assert!(out.status.success() && !text(&out).0.contains("predicts"));
    let out = verity_at(
        elsewhere.path(),
        &["job", "status", &id, "--node", &url, "--model", model],
    );
    assert!(
        text(&out).0.contains("predicts class 2"),
        "{:?}",
        text(&out)
    );

    let receipt = home.path().join("pred.receipt");
    let receipt = receipt.to_str().unwrap();
    let out = verity_at(
        home.path(),
        &["job", "receipt", &id, "-o", receipt, "--node", &url],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let verify = |class: &str| {
        verity_at(
            home.path(),
            &[
                "verify",
                receipt,
                "--model",
                model,
                "--input",
                &x,
                "--expect-class",
                class,
            ],
        )
    };
    assert!(verify("2").status.success(), "{:?}", text(&verify("2")));
    let wrong = verify("7");
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).1.contains("predicts class 2"),
        "{:?}",
        text(&wrong)
    );

    // `--model` takes the input from a JSON file, and nothing else.
    let out = verity_at(
        home.path(),
        &["job", "submit", "--model", model, "--node", &url],
    );
    assert!(
        text(&out).1.contains("--model needs --input FILE"),
        "{:?}",
        text(&out)
    );
    let out = verity_at(
        home.path(),
        &[
            "job",
            "submit",
            "--model",
            model,
            "--input",
            &x,
            "--private",
            "1",
            "--node",
            &url,
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("cannot be used with"),
        "{:?}",
        text(&out)
    );
}

/// Committed weights on the network: the model's owner runs the provider with the weights
/// (`devnet --provider-model`), a client holding only the card submits a prediction, and the
/// receipt verifies against the card. The weights never leave the provider's machine. Also a
/// committed CNN on a private input, whose checked convolution needs per-job accumulators
/// from the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_weights_prediction_is_proven_by_the_provider_that_holds_the_weights() {
    let _turn = PROVING.lock().await;
    let owner = tempfile::tempdir().unwrap();
    let secret = owner.path().join("iris.vmodel");
    import_at(
        owner.path(),
        "iris",
        "mlp.onnx",
        &secret,
        &["--private-weights", "--public-input"],
    );
    // And the digits CNN, on a private input: its program checks the convolution from
    // accumulators that only the weights' holder can compute, for each job.
    let cnn_secret = owner.path().join("cnn.vmodel");
    import_at(
        owner.path(),
        "digits",
        "cnn.onnx",
        &cnn_secret,
        &["--private-weights"],
    );
    // The client gets the cards only.
    let client = tempfile::tempdir().unwrap();
    let card = client.path().join("iris.card.vmodel");
    std::fs::copy(owner.path().join("iris.card.vmodel"), &card).unwrap();
    let card = card.to_str().unwrap();
    let cnn_card = client.path().join("cnn.card.vmodel");
    std::fs::copy(owner.path().join("cnn.card.vmodel"), &cnn_card).unwrap();

    let (_devnet, url) = start_devnet(
        owner.path(),
        &[
            "--provider-model".as_ref(),
            secret.as_os_str(),
            "--provider-model".as_ref(),
            cnn_secret.as_os_str(),
        ],
    )
    .await;

    let x = example("models/iris/x.json");
    let (id, stdout) = submit_prediction(client.path(), &url, card, &x);
    assert!(
        stdout.contains("prediction: class 2 (label virginica)"),
        "{stdout}"
    );
    // The job carries the model commitment and the public input, nothing of the weights.
    let job = Client::new(&url)
        .job(&id.parse().unwrap())
        .await
        .unwrap()
        .job;
    assert_eq!(job.request.stack_inputs.len(), 4 + 4);
    assert!(
        job.unverified_hints,
        "the weights come from the prover's advice"
    );

    let verified = receipt_verifies(client.path(), &url, &id, card, &x, "virginica");
    assert!(verified.contains("model commitment"), "{verified}");

    // `job status` decodes with the card, and refuses a card of the same architecture
    // claiming other weights.
    let out = verity_at(
        client.path(),
        &["job", "status", &id, "--node", &url, "--model", card],
    );
    assert!(
        text(&out).0.contains("predicts class 2 (label virginica)"),
        "{:?}",
        text(&out)
    );
    let mut forged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(card).unwrap()).unwrap();
    forged["weights_commitment"][0] = serde_json::json!(7);
    let forged_path = client.path().join("forged.card.vmodel");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    let out = verity_at(
        client.path(),
        &[
            "job",
            "status",
            &id,
            "--node",
            &url,
            "--model",
            forged_path.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("with other weights"),
        "{:?}",
        text(&out)
    );

    // The thief: a job naming the same (public) commitment but running a program that would
    // print whatever the advice map holds under it. The provider gives held data only to the
    // program it is for, so this job fails its execution and nobody locks it.
    let weights: Vec<u64> = job.request.stack_inputs[..4].to_vec();
    let thief = JobRequest {
        program: "begin\n    adv.push_mapval\n    padw adv_loadw swapw dropw\nend\n".into(),
        stack_inputs: weights,
        private_inputs: None,
        mode: Mode::Proof,
        offer: Offer {
            min_price: 900,
            max_price: 1_000,
            ramp_start: 0,
            ramp_period: 0,
            lock_timeout: 40,
            timeout: 80,
            collateral: 100,
        },
        max_cycles: 1 << 12,
        min_trust: None,
    };
    let node = Client::new(&url);
    let tx = node
        .send(&devnet::dev_key("client"), TxBody::SubmitJob(thief))
        .await
        .unwrap();
    node.wait_tx(&tx, Duration::from_secs(10)).await.unwrap();
    let ended = node
        .wait_job(&JobId::submitted_by(tx), Duration::from_secs(60), |_| {})
        .await
        .unwrap();
    assert_eq!(
        ended.state(),
        JobState::Expired,
        "nobody locked the thief's job"
    );
    assert!(ended.outputs().is_none());

    // The committed CNN: the job carries the input's commitment and the model commitment;
    // the provider computes the accumulators from the opened input with its weights, proves,
    // and the receipt verifies against the card.
    let digit = example("models/digits/x.json");
    let cnn_card = cnn_card.to_str().unwrap();
    let (id, stdout) = submit_prediction(client.path(), &url, cnn_card, &digit);
    assert!(stdout.contains("prediction: class 2"), "{stdout}");
    receipt_verifies(client.path(), &url, &id, cnn_card, &digit, "2");
}

/// Submits a prediction of the model `card` on `input` from the client at `home` and waits
/// for it: the job's id, and what `job submit` printed.
fn submit_prediction(home: &Path, url: &str, card: &str, input: &str) -> (String, String) {
    let out = verity_at(
        home,
        &[
            "job",
            "submit",
            "--model",
            card,
            "--input",
            input,
            "--wait",
            "--node",
            url,
            "--lock-timeout",
            "400",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("job "))
        .unwrap()
        .trim()
        .to_string();
    (id, stdout)
}

/// Fetches job `id`'s receipt and verifies it against `card` and `input`, expecting `class`:
/// what `verify` printed.
fn receipt_verifies(
    home: &Path,
    url: &str,
    id: &str,
    card: &str,
    input: &str,
    class: &str,
) -> String {
    let receipt = home.join(format!("{id}.receipt"));
    let r = receipt.to_str().unwrap();
    let out = verity_at(home, &["job", "receipt", id, "-o", r, "--node", url]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = verity_at(
        home,
        &[
            "verify",
            r,
            "--model",
            card,
            "--input",
            input,
            "--expect-class",
            class,
        ],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    text(&out).0
}

/// The README's way to a network of one's own: `node init` makes a validator, `genesis new`
/// a genesis from its peer line, and `node run` starts producing blocks on it; run again with
/// another genesis, the node refuses the directory, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_on_a_genesis_from_genesis_new() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("v1");
    let (d, h) = (dir.to_str().unwrap(), home.path());
    let init = verity_at(h, &["node", "init", "--dir", d, "--p2p", "127.0.0.1:9000"]);
    assert!(init.status.success(), "{:?}", text(&init));
    let genesis = home.path().join("genesis.json");
    let peers = dir.join("peer.toml");
    // A genesis for this validator, funding the client with `balance`, written to `file`.
    let genesis_new = |balance: &str, file: &std::path::Path| {
        let funded = format!("client={balance}");
        let out = verity_at(
            h,
            &[
                "genesis",
                "new",
                "--chain-id",
                "mine",
                "--peers",
                peers.to_str().unwrap(),
                "--account",
                &funded,
                "--dev-keys",
                "-o",
                file.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{:?}", text(&out));
    };
    genesis_new("1000000", &genesis);
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "node",
        "run",
        "--dir",
        d,
        "--genesis",
        genesis.to_str().unwrap(),
    ];
    let mut run = verity(&args);
    run.args(["--listen", &listen, "--no-audit"])
        .env("VERITY_HOME", h);
    let node = verity_testkit::process::spawn(run, None);
    let client = Client::new(&format!("http://{listen}"));
    wait_height(&client, 2, "node on a new genesis", Duration::from_secs(30)).await;
    let head = client.head().await.unwrap();
    assert_eq!(head.chain_id, "mine");
    drop(node);
    let stopped = head.height;

    // Another genesis over the same directory: refused before anything starts.
    let other = home.path().join("other.json");
    genesis_new("5", &other);
    let out = verity_at(
        h,
        &[
            "node",
            "run",
            "--dir",
            d,
            "--genesis",
            other.to_str().unwrap(),
            "--listen",
            &listen,
        ],
    );
    let (_, stderr) = text(&out);
    assert!(
        !out.status.success() && stderr.contains("was started from another genesis"),
        "{stderr}"
    );
    // The same genesis again: the node resumes where it stopped.
    let mut again = verity(&args);
    again
        .args(["--listen", &listen, "--no-audit"])
        .env("VERITY_HOME", h);
    let _node = verity_testkit::process::spawn(again, None);
    wait_height(
        &client,
        stopped + 1,
        "the restarted node",
        Duration::from_secs(30),
    )
    .await;
}

/// `verity provenance verify` accepts the job's record against the devnet's genesis (with
/// `--devnet`: its validator key is public), and refuses it without a genesis to trust, for a
/// prefix (the node's to resolve) and against a genesis naming another validator.
fn provenance_is_certified(home: &Path, url: &str, id: &JobId) {
    let id = id.to_string();
    let verify = |extra: &[&str]| {
        let mut args = vec!["provenance", "verify"];
        args.extend(extra);
        args.extend(["--node", url]);
        text(&verity_at(home, &args))
    };
    let refused = |extra: &[&str], why: &str| {
        let (stdout, stderr) = verify(extra);
        assert!(stderr.contains(why), "{extra:?}: {stdout}\n{stderr}");
    };
    let devnet_genesis = common::write_genesis(home, "devnet-genesis", &devnet::genesis());
    refused(&[&id], "--genesis");
    refused(&[&id, "--genesis", &devnet_genesis], "public devnet key");
    refused(&[&id[..10], "--devnet"], "not a whole job id");
    let impostor = verity_types::Keypair::from_seed([9; 32]).address();
    let other = common::with_validator(devnet::genesis(), impostor);
    let other = common::write_genesis(home, "other-genesis", &other);
    refused(
        &[&id, "--genesis", &other, "--devnet"],
        "certificate does not verify",
    );

    let (stdout, stderr) = verify(&[&id, "--devnet"]);
    assert!(
        stdout.contains("certified by 1 of 1 genesis validators")
            && stdout.contains(&id)
            && stdout.contains("(devnet: public validator keys)"),
        "{stdout}\n{stderr}"
    );
}
