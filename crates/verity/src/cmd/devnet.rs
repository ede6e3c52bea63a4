//! `verity devnet`: a whole network on this machine, and its `--demo`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use verity_client::Client;
use verity_ledger::{Genesis, JobState};
use verity_node::devnet;
use verity_provider::{Provider, ProviderConfig};
use verity_types::{JobId, Mode};

use super::job::{JobSpec, OfferArgs, provide_private_inputs, submit_job, wait_included};
use super::node::AuditArgs;
use super::provider::held_weights;
use crate::model_file::import_model;
use crate::program_file::{InputArgs, ProgramArgs};
use crate::render::{mode_name, short_outputs};

#[derive(Args)]
pub struct DevnetArgs {
    /// API address.
    #[arg(long, default_value = "127.0.0.1:8545")]
    listen: SocketAddr,
    /// Data directory (default: a fresh temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Milliseconds between blocks.
    #[arg(long, default_value_t = 250)]
    block_ms: u64,
    /// Submit the bundled examples in both modes and two model predictions (digits, private
    /// input, proven; iris, public input, optimistic), print a table of results, and exit.
    #[arg(long)]
    demo: bool,
    /// With --demo: print the network's logs here, between the demo's lines, instead of
    /// writing them to a file.
    #[arg(short, long)]
    verbose: bool,
    /// Validators. 1: a single block producer. More: that many validator nodes on loopback
    /// running BFT consensus (simplex) over authenticated p2p, each with its own data
    /// directory, API port (--listen, +1, +2, ...) and p2p port.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    validators: u16,
    /// A committed-weights model the devnet's provider owns and proves with (see `verity
    /// provider --model`). Repeatable.
    #[arg(long = "provider-model", value_name = "FILE")]
    provider_models: Vec<PathBuf>,
    /// Write the genesis this devnet runs on (with --validators N: N validators) to FILE, and
    /// exit: a starting point for a network of your own (`verity genesis new` writes others).
    #[arg(long, value_name = "FILE")]
    write_genesis: Option<PathBuf>,
    #[command(flatten)]
    audit: AuditArgs,
}

impl DevnetArgs {
    /// Where the network's logs go instead of the terminal: the demo prints a table, and a
    /// dozen log lines per job would bury it. `None`: the terminal.
    pub fn log_file(&self) -> Option<PathBuf> {
        if !self.demo || self.verbose {
            return None;
        }
        let dir = self.data_dir.clone().unwrap_or_else(std::env::temp_dir);
        Some(dir.join(format!("verity-devnet-{}.log", std::process::id())))
    }
}

/// The demo's inputs, built into the binary, so an installed `verity` runs the demo from
/// anywhere: `(path under examples/, contents)`.
const DEMO_FILES: &[(&str, &[u8])] = &[
    ("fib.masm", include_bytes!("../../../../examples/fib.masm")),
    (
        "hash_chain.masm",
        include_bytes!("../../../../examples/hash_chain.masm"),
    ),
    (
        "hash_chain.inputs",
        include_bytes!("../../../../examples/hash_chain.inputs"),
    ),
    (
        "preimage.masm",
        include_bytes!("../../../../examples/preimage.masm"),
    ),
    (
        "preimage.inputs",
        include_bytes!("../../../../examples/preimage.inputs"),
    ),
    (
        "models/digits/mlp.onnx",
        include_bytes!("../../../../examples/models/digits/mlp.onnx"),
    ),
    (
        "models/digits/calibration.json",
        include_bytes!("../../../../examples/models/digits/calibration.json"),
    ),
    (
        "models/digits/x.json",
        include_bytes!("../../../../examples/models/digits/x.json"),
    ),
    (
        "models/iris/mlp.onnx",
        include_bytes!("../../../../examples/models/iris/mlp.onnx"),
    ),
    (
        "models/iris/x.json",
        include_bytes!("../../../../examples/models/iris/x.json"),
    ),
    (
        "models/iris/calibration.json",
        include_bytes!("../../../../examples/models/iris/calibration.json"),
    ),
];

/// Writes the demo's inputs under `dir/examples`, and returns that directory.
fn unpack_demo_files(dir: &Path) -> Result<PathBuf> {
    let examples = dir.join("examples");
    for (name, bytes) in DEMO_FILES {
        let path = examples.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
    }
    Ok(examples)
}

/// `--write-genesis`: the genesis a devnet of `validators` runs on, to `path`.
fn write_genesis(path: &std::path::Path, validators: u16) -> Result<()> {
    let genesis = match validators {
        1 => devnet::genesis(),
        n => devnet::genesis_with_validators(n as usize),
    };
    super::genesis::write(path, &genesis, false)?;
    println!(
        "{}: the devnet's genesis ({} validators); its keys are public (derived from their \
         names): for test networks only",
        path.display(),
        genesis.validators().len()
    );
    Ok(())
}

pub async fn run(args: DevnetArgs) -> Result<()> {
    if let Some(path) = &args.write_genesis {
        return write_genesis(path, args.validators);
    }
    let log_file = args.log_file();
    let (dir, _tmp) = match args.data_dir {
        Some(d) => (d, None),
        None => {
            let t = std::env::temp_dir().join(format!("verity-devnet-{}", std::process::id()));
            (t.clone(), Some(TempDir(t)))
        }
    };
    let n = args.validators as usize;
    // Flags are checked before anything starts.
    let audits = (0..n)
        .map(|i| {
            args.audit
                .config(devnet::dev_key(&devnet::validator_name(i)), true)
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(log) = &log_file {
        println!("network logs: {} (-v prints them here)", log.display());
    }
    let demo_jobs = if args.demo {
        std::fs::create_dir_all(&dir)?;
        Some(demo_jobs(&unpack_demo_files(&dir)?)?)
    } else {
        None
    };
    let held = held_weights(&args.provider_models)?;
    let mut others = Vec::new();
    let genesis = match n {
        1 => devnet::genesis(),
        n => devnet::genesis_with_validators(n),
    };
    let mut running = if n == 1 {
        devnet::start_single(&dir, genesis.clone(), args.listen, args.block_ms).await?
    } else {
        let mut nodes = devnet::start_bft_network(&dir, n, args.listen, args.block_ms).await?;
        let first = nodes.remove(0);
        others = nodes;
        first
    };
    for (r, audit) in std::iter::once(&mut running)
        .chain(others.iter_mut())
        .zip(audits)
    {
        if let Some(cfg) = audit {
            r.spawn_auditor(cfg);
        }
    }
    let url = running.url();
    let mut provider = ProviderConfig::new(&url, devnet::dev_key("provider"));
    provider.price_per_mcycle = 100;
    provider.probe_listen = Some(SocketAddr::new(args.listen.ip(), 0));
    provider.held_data = held;
    running.spawn_worker(|stop| Provider::new(provider).run(stop));
    print_banner(&url, &dir, std::iter::once(&running).chain(others.iter()));
    let nodes = || std::iter::once(&running).chain(others.iter());
    let work = async {
        if args.demo {
            let result = demo(&url, &genesis, demo_jobs.unwrap_or_default()).await;
            if result.is_ok() && n > 1 {
                print_agreement(nodes()).await;
            }
            result
        } else {
            println!("press Ctrl-C to stop");
            tokio::signal::ctrl_c().await.map_err(Into::into)
        }
    };
    let result = tokio::select! {
        result = work => result,
        () = any_store_stopped(nodes()) => Err(anyhow::anyhow!(
            "a node's state store stopped (its error is in the log): the devnet can commit no more blocks"
        )),
    };
    for r in others {
        r.stop().await;
    }
    running.stop().await;
    result
}

/// Resolves once any of `nodes`' state stores has stopped for good.
async fn any_store_stopped<'a>(nodes: impl Iterator<Item = &'a verity_node::RunningNode>) {
    let stopped: Vec<_> = nodes
        .map(|r| Box::pin(r.node.state_store_stopped()))
        .collect();
    futures_util::future::select_all(stopped).await;
}

/// What the devnet is: its chain, API, data, dev accounts and (BFT) its validators.
fn print_banner<'a>(
    url: &str,
    dir: &std::path::Path,
    nodes: impl Iterator<Item = &'a verity_node::RunningNode>,
) {
    println!(
        "verity devnet: chain {}, API {url}, data {}",
        devnet::DEVNET_CHAIN_ID,
        dir.display()
    );
    println!("explorer {url}/  (metrics: {url}/metrics)");
    println!("dev accounts (use with --key NAME):");
    for name in devnet::DEV_ACCOUNTS {
        println!("  {name:<10} {}", devnet::dev_key(name).address());
    }
    let nodes: Vec<_> = nodes.collect();
    if nodes.len() > 1 {
        println!("validators (BFT, simplex over authenticated p2p):");
        for (i, r) in nodes.iter().enumerate() {
            println!(
                "  {:<11} {}  API {}",
                devnet::validator_name(i),
                devnet::dev_key(&devnet::validator_name(i))
                    .address()
                    .short(),
                r.url()
            );
        }
    }
}

/// After the demo: every validator's view of the chain, to show they agree.
async fn print_agreement<'a>(nodes: impl Iterator<Item = &'a verity_node::RunningNode>) {
    let nodes: Vec<_> = nodes.collect();
    let target = nodes
        .iter()
        .map(|r| r.node.state().height)
        .max()
        .unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while nodes.iter().any(|r| r.node.state().height < target)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("validators at height {target}:");
    for (i, r) in nodes.iter().enumerate() {
        let root = r
            .node
            .storage()
            .block(target)
            .ok()
            .flatten()
            .map(|b| b.to_block().id().short())
            .unwrap_or_else(|| "(behind)".into());
        println!("  {:<11} block {root}", devnet::validator_name(i));
    }
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The demo's jobs: the bundled examples in both modes, one proven prediction of the digits
/// model on a private input, and one optimistic prediction of the iris model on a public one. Prepared before the network starts, so that the model import does not share the
/// CPU with the provider's speed calibration.
fn demo_jobs(examples: &Path) -> Result<Vec<(String, Mode, JobSpec)>> {
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("fib.masm", None, "50"),
        ("hash_chain.masm", Some("hash_chain.inputs"), ""),
        ("preimage.masm", Some("preimage.inputs"), ""),
    ];
    let mut jobs = Vec::new();
    for mode in [Mode::Proof, Mode::Optimistic] {
        for (file, inputs, stack) in cases {
            // Jobs with private inputs run in proof mode only (nobody but the client could
            // challenge an optimistic result on data only it and the prover know).
            if mode == Mode::Optimistic && inputs.is_some() {
                continue;
            }
            let spec = JobSpec::program(&ProgramArgs {
                program: examples.join(file),
                inputs: InputArgs {
                    input: inputs.is_none().then(|| stack.to_string()),
                    inputs_file: inputs.map(|i| examples.join(i)),
                    ..InputArgs::default()
                },
            })?;
            jobs.push((file.to_string(), mode, spec));
        }
    }
    // Verifiable inference, models imported from their ONNX files here: the digits MLP
    // predicts on a private input (an image of a 2); the iris MLP on a public input (four
    // flower measurements on the stack), which can run optimistically: anyone can re-execute
    // it, so anyone can challenge a wrong class.
    for (dir, public_input, mode) in [
        ("digits", false, Mode::Proof),
        ("iris", true, Mode::Optimistic),
    ] {
        let dir_path = examples.join("models").join(dir);
        let (model, _, _) = import_model(
            &dir_path.join("mlp.onnx"),
            &dir_path.join("calibration.json"),
            verity_vm::DEFAULT_MAX_CYCLES,
            public_input,
            false,
        )?;
        let spec = JobSpec::of_model(model, &dir_path.join("x.json"))?;
        jobs.push((format!("{dir} mlp.onnx"), mode, spec));
    }
    Ok(jobs)
}

/// Submits the demo's jobs and prints what became of them.
async fn demo(url: &str, genesis: &Genesis, jobs: Vec<(String, Mode, JobSpec)>) -> Result<()> {
    let client = Client::new(url);
    let key = devnet::dev_key("client");
    let mut submitted = Vec::new();
    for (name, mode, spec) in jobs {
        // Offers sized from each program's trace, as `job submit` makes them.
        let offer = OfferArgs::default();
        let job = submit_job(&client, &key, &spec, mode, &offer).await?;
        provide_private_inputs(&client, &key, &spec, &job).await?;
        wait_included(&client, &job).await?;
        let id = job.id;
        println!(
            "submitted {name} ({}) as job {}",
            mode_name(mode),
            id.short()
        );
        submitted.push((name, mode, spec.model, id, Instant::now()));
    }
    println!();
    println!(
        "{:<16} {:<11} {:<10} {:<22} {:>6} {:<13} {:>8}  receipt",
        "example", "mode", "state", "outputs", "price", "provider", "secs"
    );
    let mut failures = 0;
    let first_proven = submitted
        .iter()
        .find(|(_, mode, ..)| *mode == Mode::Proof)
        .map(|(name, _, _, id, _)| (name.clone(), *id));
    for (name, mode, model, id, started) in submitted {
        let job = client
            .wait_job(&id, Duration::from_secs(180), |_| {})
            .await?;
        let outputs = match (&job.outputs(), &model) {
            (Some(o), Some(m)) => {
                let (class, _) = m.model.decode_outputs(o)?;
                format!("class {class} ({})", m.model.label(class))
            }
            (Some(o), None) => short_outputs(o),
            (None, _) => "-".into(),
        };
        let receipt = if mode == Mode::Proof && job.state() == JobState::Finalized {
            match client.receipt(&id).await {
                Ok(_) => "verified".to_string(),
                Err(e) => {
                    failures += 1;
                    format!("FAILED: {e}")
                }
            }
        } else if mode == Mode::Optimistic {
            "(optimistic: no proof)".into()
        } else {
            failures += 1;
            "-".into()
        };
        if job.state() != JobState::Finalized {
            failures += 1;
        }
        println!(
            "{:<16} {:<11} {:<10} {:<22} {:>6} {:<13} {:>8.1}  {receipt}",
            name,
            mode_name(mode),
            job.state().to_string(),
            outputs,
            job.lock_price().unwrap_or_default(),
            job.fulfiller()
                .map(|a| a.short())
                .unwrap_or_else(|| "-".into()),
            started.elapsed().as_secs_f64()
        );
    }
    if failures > 0 {
        bail!("{failures} demo job(s) did not finish as expected");
    }
    println!("\nall demo jobs finalized; proof-mode receipts verified locally");
    if let Some((name, id)) = &first_proven {
        show_provenance(&client, genesis, name, *id).await?;
    }
    Ok(())
}

/// What `verity provenance verify` does for any job: a demo job's record, checked against the
/// validators' signatures rather than the node's word.
async fn show_provenance(client: &Client, genesis: &Genesis, name: &str, id: JobId) -> Result<()> {
    let c = super::provenance::check(client, genesis, true, id)
        .await?
        .certified;
    println!(
        "provenance of {name}: in the state block {} names, final by the signatures of {} of {} \
         validators (block {}; devnet keys are public)",
        c.block_height, c.signers, c.validators, c.certified_height
    );
    Ok(())
}
