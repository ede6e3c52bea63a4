//! Network commands: `devnet`, `node`, `provider`, `job ...`, `jobs`, `status`, `account`,
//! `keys`, `stake`, `unstake`, `transfer`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use verity_client::{Client, JobQuery};
use verity_ledger::{Genesis, Job, JobState, TimelineEntry};
use verity_node::{AuditorConfig, NodeConfig, ProviderConfig, devnet};
use verity_types::{
    Address, Digest, JobRequest, Keypair, Mode, Offer, ProgramSource, Role, TxBody, format_felts,
};

use crate::model_cmds::{self, LoadedModel};
use crate::proof_cmds::{LoadedProgram, load};
use crate::{InputArgs, ProgramArgs};

/// Where to find the node.
#[derive(Args, Clone)]
pub struct NodeArgs {
    /// The node's API URL.
    #[arg(long, env = "VERITY_NODE", default_value = "http://127.0.0.1:8545")]
    pub node: String,
}

/// Which key signs.
#[derive(Args, Clone)]
pub struct KeyArgs {
    /// A key name (in $VERITY_HOME/keys, default ~/.verity/keys), a key file, or a devnet
    /// account name (client, provider, provider2, validator).
    #[arg(long, default_value = "client")]
    pub key: String,
}

pub(crate) fn verity_home() -> PathBuf {
    std::env::var_os("VERITY_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".verity")))
        .unwrap_or_else(|| PathBuf::from(".verity"))
}

fn read_key_file(path: &Path) -> Result<Keypair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim().trim_start_matches("0x"), &mut seed)
        .with_context(|| format!("key file {} must hold 64 hex digits", path.display()))?;
    Ok(Keypair::from_seed(seed))
}

pub fn resolve_key(name: &str) -> Result<Keypair> {
    let as_path = Path::new(name);
    if as_path.is_file() {
        return read_key_file(as_path);
    }
    let named = verity_home().join("keys").join(format!("{name}.key"));
    if named.is_file() {
        return read_key_file(&named);
    }
    if devnet::DEV_ACCOUNTS.contains(&name) {
        return Ok(devnet::dev_key(name));
    }
    bail!(
        "no key `{name}`: not a file, not in {}, not a devnet account",
        verity_home().join("keys").display()
    )
}

fn resolve_address(s: &str) -> Result<Address> {
    if s.starts_with("0x") || s.len() == 64 {
        return s
            .parse()
            .map_err(|e| anyhow::anyhow!("`{s}` is not an address: {e}"));
    }
    Ok(resolve_key(s)?.address())
}

fn parse_digest(s: &str) -> Result<Digest> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("`{s}` is not a job id: {e}"))
}

// ------------------------------------------------------------------------ devnet / node

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
    /// Validators. 1: a single block producer. More: that many validator nodes on loopback
    /// running BFT consensus (simplex) over authenticated p2p, each with its own data
    /// directory, API port (--listen, +1, +2, ...) and p2p port.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    validators: u16,
    /// A committed-weights model the devnet's provider owns and proves with (see `verity
    /// provider --model`). Repeatable.
    #[arg(long = "provider-model", value_name = "FILE")]
    provider_models: Vec<PathBuf>,
    #[command(flatten)]
    audit: AuditArgs,
}

/// How a validator audits providers (`verity devnet`, `verity node run`).
#[derive(Args)]
pub struct AuditArgs {
    /// Optimistic fulfilments this validator re-executes, per 10,000 (chosen by block hash);
    /// a wrong result is challenged with a proof.
    #[arg(long, default_value_t = 2_500, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    audit_sample: u32,
    /// Canary jobs (known answers, revealed after the epoch) per audit epoch of 100 blocks,
    /// network-wide: each of V validators commits to this many and sends each with
    /// probability 1/V. 0 sends none.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=i64::from(verity_ledger::trust::MAX_CANARIES_PER_EPOCH)))]
    canaries: u32,
    /// The key that funds canaries (a key name or file; default: the validator's own key,
    /// which links canary accounts to the validator on the ledger).
    #[arg(long)]
    canary_funder: Option<String>,
    /// Do not run the auditor (re-execution sampling, canaries and liveness probes).
    #[arg(long)]
    no_audit: bool,
    /// Also probe provider endpoints on loopback and private addresses (10/8, 192.168/16,
    /// ...). Off by default: an announced URL must not make validators reach into their own
    /// networks. `verity devnet` turns it on (its providers listen on 127.0.0.1).
    #[arg(long)]
    probe_private_hosts: bool,
}

impl AuditArgs {
    /// The auditor of validator `key`, or `None` with `--no-audit`.
    fn config(&self, key: Keypair, local_network: bool) -> Result<Option<AuditorConfig>> {
        if self.no_audit {
            return Ok(None);
        }
        let canary_funder = match &self.canary_funder {
            Some(name) => Some(resolve_key(name).context("--canary-funder")?),
            None => None,
        };
        Ok(Some(AuditorConfig {
            sample_per_10k: self.audit_sample,
            canaries_per_epoch: self.canaries,
            canary_funder,
            probe_private_hosts: self.probe_private_hosts || local_network,
            ..AuditorConfig::new(key)
        }))
    }
}

pub async fn devnet(args: DevnetArgs) -> Result<()> {
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
    let demo_jobs = args.demo.then(demo_jobs).transpose()?;
    let held = held_weights(&args.provider_models)?;
    let mut others = Vec::new();
    let mut running = if n == 1 {
        devnet::start_single(&dir, devnet::genesis(), args.listen, args.block_ms).await?
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
    running.spawn_provider(provider);
    println!(
        "verity devnet: chain {}, API {url}, data {}",
        devnet::DEVNET_CHAIN_ID,
        dir.display()
    );
    println!("dev accounts (use with --key NAME):");
    for name in devnet::DEV_ACCOUNTS {
        println!("  {name:<10} {}", devnet::dev_key(name).address());
    }
    if n > 1 {
        println!("validators (BFT, simplex over authenticated p2p):");
        for (i, r) in std::iter::once(&running).chain(others.iter()).enumerate() {
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
    let result = if args.demo {
        let result = demo(&url, demo_jobs.unwrap_or_default()).await;
        if result.is_ok() && n > 1 {
            print_agreement(std::iter::once(&running).chain(others.iter())).await;
        }
        result
    } else {
        println!("press Ctrl-C to stop");
        tokio::signal::ctrl_c().await.map_err(Into::into)
    };
    for r in others {
        r.stop().await;
    }
    running.stop().await;
    result
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
fn demo_jobs() -> Result<Vec<(String, Mode, JobSpec)>> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
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
        let (model, _, _) = model_cmds::import_model(
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
async fn demo(url: &str, jobs: Vec<(String, Mode, JobSpec)>) -> Result<()> {
    let client = Client::new(url);
    let key = devnet::dev_key("client");
    let mut submitted = Vec::new();
    for (name, mode, spec) in jobs {
        // Offers sized from each program's trace, as `job submit` makes them.
        let offer = OfferArgs::default();
        let (id, _) = submit_job(&client, &key, &spec, mode, &offer).await?;
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
    for (name, mode, model, id, started) in submitted {
        let job = client
            .wait_job(&id, Duration::from_secs(180), |_| {})
            .await?;
        let outputs = match (&job.outputs, &model) {
            (Some(o), Some(m)) => {
                let (class, _) = m.model.decode_outputs(o)?;
                format!("class {class} ({})", m.model.label(class))
            }
            (Some(o), None) => short_outputs(o),
            (None, _) => "-".into(),
        };
        let receipt = if mode == Mode::Proof && job.state == JobState::Finalized {
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
        if job.state != JobState::Finalized {
            failures += 1;
        }
        println!(
            "{:<16} {:<11} {:<10} {:<22} {:>6} {:<13} {:>8.1}  {receipt}",
            name,
            mode_name(mode),
            job.state.to_string(),
            outputs,
            job.lock_price,
            job.fulfiller
                .map(|a| a.short())
                .unwrap_or_else(|| "-".into()),
            started.elapsed().as_secs_f64()
        );
    }
    if failures > 0 {
        bail!("{failures} demo job(s) did not finish as expected");
    }
    println!("\nall demo jobs finalized; proof-mode receipts verified locally");
    Ok(())
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Proof => "proof",
        Mode::Optimistic => "optimistic",
    }
}

fn short_outputs(o: &[u64]) -> String {
    let shown = format_felts(&o[..o.len().min(2)]);
    if o.len() > 2 {
        format!("{shown},…")
    } else {
        shown
    }
}

#[derive(Subcommand)]
pub enum NodeCmd {
    /// Create a validator's directory and key; prints its line for the peers file.
    Init(NodeInitArgs),
    /// Run a node. With `--peers`, it is one validator of a BFT network; without, it
    /// produces every block itself (a one-validator chain).
    Run(NodeCmdArgs),
}

#[derive(Args)]
pub struct NodeInitArgs {
    /// Directory for the node's key, database and consensus journal.
    #[arg(long)]
    dir: PathBuf,
    /// The address other validators reach this one on (p2p, TCP).
    #[arg(long, default_value = "127.0.0.1:9000")]
    p2p: SocketAddr,
}

#[derive(Args)]
pub struct NodeCmdArgs {
    /// Data directory (created if missing); the node resumes from it after a restart.
    #[arg(long, visible_alias = "data-dir")]
    dir: PathBuf,
    /// Genesis file (JSON); default: the devnet genesis.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:8545")]
    listen: SocketAddr,
    /// The validator's key (name or file); default: `validator.key` in the directory if
    /// `node init` made one, else the devnet validator.
    #[arg(long, visible_alias = "validator-key")]
    key: Option<String>,
    /// Peers file (TOML): every genesis validator's address and p2p address. Makes this
    /// node one validator of a BFT network.
    #[arg(long)]
    peers: Option<PathBuf>,
    /// p2p listen address (default: this validator's entry in the peers file).
    #[arg(long)]
    p2p: Option<SocketAddr>,
    /// Minimum milliseconds between blocks.
    #[arg(long, default_value_t = 250)]
    block_ms: u64,
    #[command(flatten)]
    audit: AuditArgs,
}

/// `peers.toml`: `[[validator]]` tables with `address` and `p2p`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PeersFile {
    validator: Vec<PeerEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEntry {
    address: String,
    p2p: SocketAddr,
}

fn read_peers(path: &Path) -> Result<Vec<(Address, SocketAddr)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read peers file {}", path.display()))?;
    let file: PeersFile = toml::from_str(&text)
        .with_context(|| format!("peers file {} is not valid", path.display()))?;
    let mut peers = Vec::new();
    for (i, p) in file.validator.into_iter().enumerate() {
        let address: Address = p.address.parse().map_err(|e| {
            anyhow::anyhow!(
                "peers file {}: validator {} has a bad address: {e}",
                path.display(),
                i + 1
            )
        })?;
        peers.push((address, p.p2p));
    }
    if peers.is_empty() {
        bail!("peers file {} lists no validators", path.display());
    }
    Ok(peers)
}

fn peer_line(address: &Address, p2p: &SocketAddr) -> String {
    format!("[[validator]]\naddress = \"{address}\"\np2p = \"{p2p}\"\n")
}

pub async fn node(cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Init(args) => node_init(args),
        NodeCmd::Run(args) => node_run(args).await,
    }
}

fn node_init(args: NodeInitArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let key_path = args.dir.join("validator.key");
    if key_path.exists() {
        bail!(
            "{} already exists: this directory is initialised (delete it to start over)",
            key_path.display()
        );
    }
    let key = Keypair::generate();
    write_secret(&key_path, &hex::encode(key.seed()))?;
    let line = peer_line(&key.address(), &args.p2p);
    std::fs::write(args.dir.join("peer.toml"), &line)
        .with_context(|| format!("cannot write {}", args.dir.join("peer.toml").display()))?;
    println!("validator {}", key.address());
    println!("key       {}", key_path.display());
    println!(
        "add to the network's peers file (also in {}):",
        args.dir.join("peer.toml").display()
    );
    print!("{line}");
    println!("and give the address a validator stake in the genesis.");
    Ok(())
}

/// Writes a new file only its owner can read: created with mode 0600 (never readable by
/// others, not even for an instant), and never over an existing file.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn read_genesis(path: Option<&Path>) -> Result<Genesis> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read genesis {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("genesis {} is not valid", p.display()))
        }
        None => Ok(devnet::genesis()),
    }
}

async fn node_run(args: NodeCmdArgs) -> Result<()> {
    let genesis = read_genesis(args.genesis.as_deref())?;
    let key = match &args.key {
        Some(k) => resolve_key(k)?,
        None if args.dir.join("validator.key").is_file() => {
            read_key_file(&args.dir.join("validator.key"))?
        }
        // The dev validator key is public: a node signing with it outside the devnet's own
        // genesis could be impersonated by anyone.
        None if args.genesis.is_none() => devnet::dev_key("validator"),
        None => bail!(
            "no validator key: pass --key, or run `verity node init --dir {}` first (the public \
             devnet key is used only with the devnet genesis)",
            args.dir.display()
        ),
    };
    let mut config = NodeConfig::new(args.dir.clone(), genesis);
    config.block_interval_ms = args.block_ms;
    // Flags are checked before anything starts.
    let audit = args.audit.config(key.clone(), false)?;
    let running = match &args.peers {
        None => verity_node::start(config, args.listen, key).await?,
        Some(peers_path) => {
            let peers = read_peers(peers_path)?;
            let listen = match args.p2p {
                Some(a) => a,
                None => peers
                    .iter()
                    .find(|(a, _)| *a == key.address())
                    .map(|(_, p)| *p)
                    .with_context(|| {
                        format!(
                            "{} is not in the peers file {}; pass --p2p",
                            key.address(),
                            peers_path.display()
                        )
                    })?,
            };
            let network = verity_consensus::NetworkConfig {
                listen,
                peers,
                storage_dir: args.dir.join("consensus"),
                worker_threads: 2,
            };
            verity_node::start_validator(config, args.listen, key, network).await?
        }
    };
    let mut running = running;
    if let Some(cfg) = audit {
        running.spawn_auditor(cfg);
    }
    println!(
        "verity node: API {} (height {}){}",
        running.url(),
        running.node.state().height,
        if args.peers.is_some() {
            ", BFT validator"
        } else {
            ""
        }
    );
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProviderArgs {
    #[command(subcommand)]
    cmd: Option<ProviderCmd>,
    #[command(flatten)]
    node: NodeArgs,
    /// The provider's key (name or file); it must be staked as a provider.
    #[arg(long, default_value = "provider")]
    key: String,
    /// The least accepted, per million cycles of proof trace.
    #[arg(long, default_value_t = 100)]
    price_per_mcycle: u64,
    /// Most jobs held at once.
    #[arg(long, default_value_t = 4)]
    max_queue: usize,
    /// Answer validators' liveness probes on this address (announced on the ledger).
    #[arg(long)]
    probe_listen: Option<SocketAddr>,
    /// The public URL of the probe endpoint, if not `http://PROBE_LISTEN`.
    #[arg(long, requires = "probe_listen")]
    endpoint: Option<String>,
    /// A committed-weights model this provider owns (`model import --private-weights`; the
    /// `.vmodel` with its weights): it proves jobs that name the weights' commitment, and the
    /// weights never leave this machine. Repeatable.
    #[arg(long = "model", value_name = "FILE")]
    models: Vec<PathBuf>,
}

/// The weights of committed-weights models, by commitment, for a provider to prove with.
fn held_weights(models: &[PathBuf]) -> Result<verity_node::HeldData> {
    let mut held = Vec::new();
    for path in models {
        let loaded = LoadedModel::load(path)?;
        let (Some(commitment), Some(weights), false) = (
            loaded.weights_commitment()?,
            loaded.compiled.weights.clone(),
            loaded.is_card(),
        ) else {
            bail!(
                "{} is not a committed-weights model with its weights (import it with --private-weights)",
                path.display()
            );
        };
        held.push(verity_node::CommittedData {
            commitment,
            values: weights,
            program: loaded.id()?,
        });
    }
    Ok(std::sync::Arc::new(held))
}

#[derive(Subcommand)]
pub enum ProviderCmd {
    /// A provider's trust profile: record, fulfilment rate, latency, score.
    Show {
        /// Address or key name.
        who: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

fn print_profile(p: &verity_ledger::TrustProfile) {
    println!("provider   {}", p.provider);
    println!("score      {} / 1000", p.score);
    println!("stake      {}", p.stake);
    println!(
        "jobs       {} locked, {} fulfilled, {} rescued, {} slashed, {} overturned ({} self-dealt, not counted)",
        p.locked, p.fulfilled, p.rescued, p.slashed, p.overturned, p.self_dealt
    );
    match p.fulfilment_rate_bp {
        Some(r) => println!("fulfilled  {}.{:02}% of ended locks", r / 100, r % 100),
        None => println!("fulfilled  - (no lock has ended)"),
    }
    match p.uptime_bp {
        Some(u) => println!(
            "uptime     {}.{:02}% of audit probes answered ({} audits, stake-weighted; last median {} ms)",
            u / 100,
            u % 100,
            p.audits,
            p.probe_latency_ms.unwrap_or(0)
        ),
        None => println!("uptime     - (not audited yet)"),
    }
    println!(
        "endpoint   {}",
        p.endpoint.as_deref().unwrap_or("- (none announced)")
    );
    match (p.latency_p50_blocks, p.latency_p95_blocks) {
        (Some(a), Some(b)) => {
            println!("latency    p50 {a} blocks, p95 {b} blocks (lock to fulfil)")
        }
        _ => println!("latency    - (nothing fulfilled yet)"),
    }
    match p.canary_pass_bp {
        Some(r) => println!(
            "canaries   {} passed, {} failed ({}.{:02}% passed; revealed known-answer jobs)",
            p.canaries_passed,
            p.canaries_failed,
            r / 100,
            r % 100
        ),
        None => println!("canaries   - (none revealed yet)"),
    }
}

/// `verity auditors`: every validator's record as an auditor.
pub async fn auditors(node: NodeArgs) -> Result<()> {
    let list = Client::new(&node.node).auditors().await?;
    println!(
        "{:<14} {:>10} {:>8} {:>8} {:>7} {:>8} {:>8} {:>10} {:>12} {:>8}",
        "validator",
        "stake",
        "liveness",
        "commits",
        "reveals",
        "judged",
        "unpicked",
        "unrevealed",
        "contradicted",
        "slashed"
    );
    for a in list {
        let r = &a.record;
        println!(
            "{:<14} {:>10} {:>8} {:>8} {:>7} {:>8} {:>8} {:>10} {:>12} {:>8}",
            a.validator.short(),
            a.stake,
            r.liveness_audits,
            r.canary_commitments,
            r.canary_reveals,
            r.canaries_judged,
            r.canaries_unpicked,
            a.unrevealed,
            r.contradicted,
            r.slashed
        );
    }
    Ok(())
}

/// `verity providers`: every provider, best score first.
pub async fn providers(node: NodeArgs) -> Result<()> {
    let list = Client::new(&node.node).providers().await?;
    println!(
        "{:<14} {:>5} {:>10} {:>7} {:>9} {:>7} {:>10} {:>8} {:>7} {:>8} {:>6}",
        "provider",
        "score",
        "stake",
        "locked",
        "fulfilled",
        "slashed",
        "overturned",
        "p50 blk",
        "uptime",
        "canaries",
        "online"
    );
    for p in list {
        println!(
            "{:<14} {:>5} {:>10} {:>7} {:>9} {:>7} {:>10} {:>8} {:>7} {:>8} {:>6}",
            p.address.short(),
            p.profile.score,
            p.profile.stake,
            p.profile.locked,
            p.profile.fulfilled,
            p.profile.slashed,
            p.profile.overturned,
            p.profile
                .latency_p50_blocks
                .map_or("-".into(), |l| l.to_string()),
            p.profile
                .uptime_bp
                .map_or("-".into(), |u| format!("{}%", u / 100)),
            match p.profile.canaries_passed + p.profile.canaries_failed {
                0 => "-".to_string(),
                n => format!("{}/{n}", p.profile.canaries_passed),
            },
            if p.online { "yes" } else { "no" }
        );
    }
    Ok(())
}

pub async fn provider(args: ProviderArgs) -> Result<()> {
    if let Some(ProviderCmd::Show { who, node }) = args.cmd {
        let view = Client::new(&node.node)
            .provider(&resolve_address(&who)?)
            .await?;
        print_profile(&view.profile);
        println!("online     {}", if view.online { "yes" } else { "no" });
        return Ok(());
    }
    let mut cfg = ProviderConfig::new(&args.node.node, resolve_key(&args.key)?);
    cfg.price_per_mcycle = args.price_per_mcycle;
    cfg.max_queue = args.max_queue.max(1);
    cfg.probe_listen = args.probe_listen;
    cfg.endpoint = args.endpoint;
    cfg.held_data = held_weights(&args.models)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(verity_node::Provider::new(cfg).run(rx));
    tokio::signal::ctrl_c().await?;
    let _ = tx.send(true);
    let _ = worker.await;
    Ok(())
}

// ------------------------------------------------------------------------ jobs

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Proof,
    Optimistic,
}

#[derive(Args, Clone)]
pub struct OfferArgs {
    /// Highest price paid (escrowed at submission).
    #[arg(long, default_value_t = verity_client::DEFAULT_MAX_PRICE)]
    max_price: u64,
    /// Starting price of the auction (default: a tenth of the max price).
    #[arg(long)]
    min_price: Option<u64>,
    /// Blocks before the price starts to rise.
    #[arg(long, default_value_t = DEFAULT_OFFER.ramp_start)]
    ramp_start: u64,
    /// Blocks over which the price rises from min to max.
    #[arg(long, default_value_t = DEFAULT_OFFER.ramp_period)]
    ramp_period: u64,
    /// Blocks a provider has to lock and deliver the job before anyone may rescue it
    /// (default: sized from the program's trace length, at least 40).
    #[arg(long)]
    lock_timeout: Option<u64>,
    /// Blocks until the job must be fulfilled (default: twice the lock timeout, at least 400).
    #[arg(long)]
    timeout: Option<u64>,
    /// Collateral the locking provider puts up (default: the max price).
    #[arg(long)]
    collateral: Option<u64>,
    /// Minimum provider trust score (0–1000).
    #[arg(long)]
    min_trust: Option<u32>,
}

/// The SDK's default offer, which validators' canary jobs share.
const DEFAULT_OFFER: Offer = verity_client::default_offer(verity_client::DEFAULT_MAX_PRICE);

impl Default for OfferArgs {
    fn default() -> Self {
        OfferArgs {
            max_price: DEFAULT_OFFER.max_price,
            min_price: None,
            ramp_start: DEFAULT_OFFER.ramp_start,
            ramp_period: DEFAULT_OFFER.ramp_period,
            lock_timeout: None,
            timeout: None,
            collateral: None,
            min_trust: None,
        }
    }
}

#[derive(Subcommand)]
pub enum JobCmd {
    /// Submit a job: the program runs locally first (to catch errors and size the cycle cap).
    Submit(Box<SubmitArgs>),
    /// A job's state, price, provider and (with --timeline) every transition.
    Status {
        id: String,
        #[arg(long)]
        timeline: bool,
        /// Decode a prediction with this model (default: a model this machine imported or
        /// submitted whose id is the job's program).
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Fetch a job's receipt, verify it, and write it to a file.
    Receipt {
        id: String,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Args)]
pub struct SubmitArgs {
    /// Miden Assembly source file (`.masm`), or give `--model`.
    #[arg(required_unless_present = "model")]
    program: Option<PathBuf>,
    /// Submit one prediction of this model (a `.vmodel` from `verity model import`) on
    /// `--input FILE` (JSON floats), which stays private: the job carries its commitment.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["program", "inputs_file", "private", "max_cycles"])]
    model: Option<PathBuf>,
    #[command(flatten)]
    inputs: InputArgs,
    #[arg(long, value_enum, default_value = "proof")]
    mode: ModeArg,
    #[command(flatten)]
    offer: OfferArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Follow the job until it ends, printing its timeline and outputs.
    #[arg(long)]
    wait: bool,
}

/// What `job submit` sends: a program with its inputs, or one prediction of a model.
struct JobSpec {
    job: LoadedProgram,
    /// The cycle cap asked for (default: twice what the local run needs).
    max_cycles: Option<u32>,
    /// The model, for a prediction: it decodes the outputs.
    model: Option<LoadedModel>,
    /// Cycles, when the job cannot run here (a committed-weights model's card: the weights
    /// are the provider's): the compiler's upper bound sizes the job instead of a run.
    cannot_run: Option<u64>,
}

impl JobSpec {
    fn program(args: &ProgramArgs) -> Result<JobSpec> {
        Ok(JobSpec {
            job: load(&args.program, &args.inputs)?,
            max_cycles: args.inputs.max_cycles,
            model: None,
            cannot_run: None,
        })
    }

    /// One prediction of `model` on the input in `input`.
    fn of_model(model: LoadedModel, input: &Path) -> Result<JobSpec> {
        let mut job = model.job(&model_cmds::read_input(input)?)?;
        // A committed-weights model: the weights never leave their owner; a provider that
        // holds them (`verity provider --model`) proves the job.
        let cannot_run = model.is_card().then_some(model.compiled.estimated_cycles);
        job.given.advice = Default::default();
        Ok(JobSpec {
            job,
            max_cycles: None,
            model: Some(model),
            cannot_run,
        })
    }

    fn prediction(model: &Path, input: &Path) -> Result<JobSpec> {
        let spec = JobSpec::of_model(LoadedModel::load(model)?, input)?;
        // So that `job status` can decode this job's outputs later.
        if let Some(m) = &spec.model {
            model_cmds::remember(m, &spec.job.program.hash());
        }
        Ok(spec)
    }

    fn from_args(args: &SubmitArgs) -> Result<JobSpec> {
        match (&args.model, &args.program) {
            (Some(model), _) => {
                let Some(input) = &args.inputs.input else {
                    bail!("--model needs --input FILE: the model's input as JSON");
                };
                JobSpec::prediction(model, Path::new(input))
            }
            (None, Some(program)) => JobSpec::program(&ProgramArgs {
                program: program.clone(),
                inputs: args.inputs.clone(),
            }),
            (None, None) => bail!("give a program file or --model"),
        }
    }
}

async fn submit_job(
    client: &Client,
    key: &Keypair,
    spec: &JobSpec,
    mode: Mode,
    offer: &OfferArgs,
) -> Result<(Digest, u64)> {
    let LoadedProgram {
        source,
        program,
        inputs,
        given,
    } = &spec.job;
    if !given.advice.is_empty() {
        bail!(
            "network jobs take no raw advice (advice_stack, advice_map, merkle_store): pass \
             private data as `private_inputs` (or --private), which the proof is bound to"
        );
    }
    // Run locally first, exactly as the job will be proven: a failing program is caught
    // here, and the cycle cap defaults to twice what the program needs.
    let cap = spec.max_cycles.unwrap_or(verity_vm::DEFAULT_MAX_CYCLES);
    let (trace_len, max_cycles) = match spec.cannot_run {
        None => {
            let run =
                verity_vm::execute(program, inputs, cap).context("the program fails locally")?;
            let max = spec
                .max_cycles
                .unwrap_or_else(|| verity_client::suggested_max_cycles(run.trace_len, cap));
            (run.trace_len, max)
        }
        Some(bound) => {
            let max = spec.max_cycles.unwrap_or(bound.clamp(
                u64::from(verity_vm::MIN_MAX_CYCLES),
                u64::from(verity_vm::MAX_MAX_CYCLES),
            ) as u32);
            (u64::from(max).next_power_of_two(), max)
        }
    };
    // Offers that fit the job: unless told otherwise, give an honest provider time to prove
    // this trace length (the network's defaults once slashed honest provers of big jobs).
    // A provider cannot run a job with private inputs before it holds the lock, so it plans
    // for the cycle cap: size those from the cap too.
    let head = client.head().await?;
    let planned = if given.private.is_empty() {
        trace_len
    } else {
        u64::from(max_cycles).next_power_of_two()
    };
    let (lock_timeout, timeout) = verity_client::default_timeouts(planned, head.block_interval_ms);
    let lock_timeout = offer.lock_timeout.unwrap_or(lock_timeout);
    let timeout = offer.timeout.unwrap_or(timeout.max(lock_timeout));
    let private_inputs = if given.private.is_empty() {
        None
    } else {
        Some(verity_vm::commit_private(&given.private)?)
    };
    let terms = Offer {
        min_price: offer.min_price.unwrap_or(offer.max_price / 10),
        max_price: offer.max_price,
        ramp_start: offer.ramp_start,
        ramp_period: offer.ramp_period,
        lock_timeout,
        timeout,
        collateral: offer.collateral.unwrap_or(offer.max_price),
    };
    // Checked before anything is published: a publication is paid for.
    terms
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid offer: {e}"))?;
    let program = job_program_source(client, key, source).await?;
    let req = JobRequest {
        program,
        stack_inputs: given.stack.clone(),
        private_inputs,
        mode,
        offer: terms,
        max_cycles,
        min_trust: offer.min_trust,
    };
    let tx = client.send(key, TxBody::SubmitJob(req)).await?;
    client
        .wait_tx(&tx, Duration::from_secs(30))
        .await
        .context("the ledger refused the job")?;
    // The data goes on the ledger only once a provider holds the lock, sealed to its key:
    // every node relays it, only the locker can read it, and the locker's delivery clock
    // starts then.
    if !given.private.is_empty() {
        let window =
            Duration::from_millis(head.block_interval_ms * lock_timeout) + Duration::from_secs(30);
        eprintln!(
            "job {}: waiting for a provider to lock it, to hand it the private inputs (sealed to its key)",
            tx.short()
        );
        let locker = client
            .provide_private(&tx, &given.private, key, window)
            .await
            .context("cannot provide the private inputs")?;
        eprintln!("private inputs provided to {}", locker.short());
    }
    Ok((tx, trace_len))
}

/// How a job names its program: by hash when the ledger already holds it; inline when it is
/// small enough to travel in the job; otherwise published first (once, for every job after),
/// then named by hash.
async fn job_program_source(
    client: &Client,
    key: &Keypair,
    source: &str,
) -> anyhow::Result<ProgramSource> {
    let hash = verity_vm::Program::assemble(source, "job.masm")?.hash();
    if client.program(&hash).await?.is_some() {
        return Ok(ProgramSource::Published(hash));
    }
    let params = verity_ledger::Params::default();
    if source.len() <= params.max_program_bytes as usize {
        return Ok(ProgramSource::Inline(source.to_string()));
    }
    if source.len() > params.max_published_program_bytes as usize {
        bail!(
            "the program is {} KiB, more than the ledger publishes ({} KiB): prove it locally \
             (`verity prove`, or `verity infer --prove` for a model)",
            source.len() / 1024,
            params.max_published_program_bytes / 1024
        );
    }
    eprintln!(
        "publishing program {} ({} KiB, too large to travel in a job): once on the ledger, \
         every job names it by hash",
        hash.short(),
        source.len().div_ceil(1024)
    );
    let tx = client
        .send(
            key,
            TxBody::PublishProgram {
                source: source.to_string(),
            },
        )
        .await
        .context("the node refused the program")?;
    if let Err(e) = client.wait_tx(&tx, Duration::from_secs(60)).await {
        // Someone may have published the same program first (our publication then paid its
        // fee for nothing): it is there all the same.
        if client.program(&hash).await?.is_none() {
            return Err(anyhow::Error::new(e).context("publishing the program failed"));
        }
        eprintln!(
            "program {} was published by someone else first",
            hash.short()
        );
    }
    Ok(ProgramSource::Published(hash))
}

fn print_entry(e: &TimelineEntry) {
    let tx =
        e.tx.map(|t| format!(" tx {}", t.short()))
            .unwrap_or_default();
    println!(
        "  block {:>6}  {}  {:<10} {}{tx}",
        e.height,
        utc_time(e.timestamp_ms),
        e.state.to_string(),
        e.note
    );
}

/// `HH:MM:SS.mmm` UTC of a block timestamp (the block's time, not this machine's).
fn utc_time(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

/// Follows a job to its end: prints each timeline entry as it happens, and below them a live
/// line with the state, the auction price, the time since submission and the expected
/// proving time. Waits until the ledger ends the job (its deadline bounds that).
async fn follow(client: &Client, id: &Digest, mode: Mode, trace_len: u64) -> Result<Job> {
    let expected = match mode {
        Mode::Proof => {
            verity_client::expected_prove_time(trace_len, verity_client::REFERENCE_PROVE_RATE)
        }
        Mode::Optimistic => Duration::ZERO,
    };
    let live = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    live.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    live.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    let mut seen = 0;
    loop {
        let view = client.job(id).await?;
        for entry in &view.job.timeline[seen.min(view.job.timeline.len())..] {
            live.suspend(|| print_entry(entry));
        }
        seen = view.job.timeline.len();
        if view.job.state.is_terminal() {
            live.finish_and_clear();
            return Ok(view.job);
        }
        let price = if view.job.state == JobState::Submitted {
            format!("price now {}", view.current_price)
        } else {
            format!("price {}", view.job.lock_price)
        };
        live.set_message(format!(
            "{} · {price} · {:.0?} since submission · proving expected ~{:.0?} (trace 2^{}) · deliver by block {}",
            view.job.state,
            started.elapsed(),
            expected,
            trace_len.max(1).trailing_zeros(),
            view.lock_deadline
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn job(cmd: JobCmd) -> Result<()> {
    match cmd {
        JobCmd::Submit(args) => {
            let client = Client::new(&args.node.node);
            let key = resolve_key(&args.key.key)?;
            let mode = match args.mode {
                ModeArg::Proof => Mode::Proof,
                ModeArg::Optimistic => Mode::Optimistic,
            };
            let spec = JobSpec::from_args(&args)?;
            let (id, trace_len) = submit_job(&client, &key, &spec, mode, &args.offer).await?;
            println!("job {id}");
            if args.wait {
                let job = follow(&client, &id, mode, trace_len).await?;
                match (&job.outputs, job.state) {
                    (Some(o), JobState::Finalized) => {
                        println!("outputs: {}", format_felts(o));
                        if let Some(model) = &spec.model {
                            println!("prediction: {}", model.describe(o)?);
                        }
                    }
                    _ => bail!("job ended {}", job.state),
                }
                if mode == Mode::Proof {
                    client.receipt(&id).await?;
                    println!(
                        "receipt verified locally (get it with `verity job receipt {id} -o FILE`)"
                    );
                }
            }
            Ok(())
        }
        JobCmd::Status {
            id,
            timeline,
            model,
            node,
        } => {
            let client = Client::new(&node.node);
            let view = client.job(&parse_digest(&id)?).await?;
            let j = &view.job;
            println!("job      {}", j.id);
            println!("state    {}", j.state);
            println!("program  {}", j.program_hash);
            println!("mode     {}", mode_name(j.request.mode));
            println!("client   {}", j.client);
            println!(
                "price    {} (auction now {}, max {})",
                j.lock_price, view.current_price, j.request.offer.max_price
            );
            println!(
                "provider {}",
                j.locker
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            println!(
                "deadlines lock by block {}, deliver by block {}",
                view.lock_deadline, view.deadline
            );
            if let Some(o) = &j.outputs {
                println!("outputs  {}", format_felts(o));
                let model = match &model {
                    Some(path) => Some(LoadedModel::load(path)?),
                    None => model_cmds::recall(&j.program_hash),
                };
                if let Some(m) = model {
                    let id = m.id()?;
                    if id != j.program_hash {
                        bail!(
                            "job {} ran program {}, not model {} (id {id})",
                            j.id,
                            j.program_hash,
                            m.model.name
                        );
                    }
                    // The architecture's program alone says nothing about whose weights ran:
                    // the job's first public inputs are their commitment.
                    if let Some(w) = m.weights_commitment()?
                        && j.request.stack_inputs.get(..4) != Some(&w.commitment[..])
                    {
                        bail!(
                            "job {} ran model {}'s architecture with other weights",
                            j.id,
                            m.model.name
                        );
                    }
                    let claimed = if j.state == JobState::Finalized {
                        ""
                    } else {
                        " (claimed, not final)"
                    };
                    println!("predicts {}{claimed}", m.describe(o)?);
                }
            }
            if let Some(f) = &view.failure {
                println!("failure  {f}");
            }
            if timeline {
                println!("timeline");
                for e in &j.timeline {
                    print_entry(e);
                }
            }
            Ok(())
        }
        JobCmd::Receipt { id, output, node } => {
            let client = Client::new(&node.node);
            let receipt = client.receipt(&parse_digest(&id)?).await?;
            std::fs::write(&output, receipt.to_json())
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!("receipt verified and written to {}", output.display());
            Ok(())
        }
    }
}

#[derive(Args)]
pub struct JobsArgs {
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    client: Option<String>,
    #[arg(long)]
    provider: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    node: NodeArgs,
}

pub async fn jobs(args: JobsArgs) -> Result<()> {
    let client = Client::new(&args.node.node);
    let q = JobQuery {
        state: args
            .state
            .as_deref()
            .map(|s| s.parse::<JobState>().map_err(anyhow::Error::msg))
            .transpose()?,
        client: args.client.as_deref().map(resolve_address).transpose()?,
        provider: args.provider.as_deref().map(resolve_address).transpose()?,
        after: None,
        limit: Some(args.limit),
    };
    let page = client.jobs(&q).await?;
    println!(
        "{:<14} {:<10} {:<11} {:>8} {:>7} {:<13}",
        "job", "state", "mode", "submitted", "price", "provider"
    );
    for j in &page.jobs {
        println!(
            "{:<14} {:<10} {:<11} {:>8} {:>7} {:<13}",
            j.id.short(),
            j.state.to_string(),
            mode_name(j.mode),
            j.submitted_height,
            j.lock_price,
            j.locker.map(|a| a.short()).unwrap_or_else(|| "-".into())
        );
    }
    if page.next.is_some() {
        println!("(more: raise --limit)");
    }
    Ok(())
}

pub async fn status(node: NodeArgs) -> Result<()> {
    let client = Client::new(&node.node);
    let head = client.head().await?;
    println!("node      {} (reachable)", client.url());
    println!("chain     {}", head.chain_id);
    println!("height    {}", head.height);
    println!(
        "block time {} ms since epoch (every {} ms)",
        head.timestamp_ms, head.block_interval_ms
    );
    println!("state root {}", head.state_root);
    println!("mempool   {}", head.mempool);
    println!("providers online {}", head.providers_online);
    match head.consensus {
        Some(c) => {
            println!(
                "consensus BFT (simplex): finalized height {}, view {} (current {})",
                c.finalized_height, c.finalized_view, c.current_view
            );
            println!(
                "validators {} in the set, {} seen voting recently",
                c.validators, c.validators_seen
            );
            println!(
                "blocks    {} proposed here, {} rejected, {} views skipped, {} faults seen",
                c.blocks_proposed, c.blocks_rejected, c.nullified_views, c.faults_seen
            );
        }
        None => println!("consensus single block producer"),
    }
    if let Some(a) = head.auditor {
        println!(
            "auditor   re-executes {}/10,000 optimistic results: {} sampled, {} correct, {} challenged, {} not checkable here",
            a.sample_per_10k, a.sampled, a.matched, a.challenged, a.unverifiable
        );
        println!(
            "liveness  {} probes, {} answered, {} audits filed",
            a.probes, a.probes_answered, a.audits_filed
        );
        println!(
            "canaries  {} commitments, {} sent, {} answered wrong and challenged, {} reveals",
            a.canary_commits, a.canaries_sent, a.canaries_challenged, a.canary_reveals
        );
    }
    Ok(())
}

pub async fn account(who: String, node: NodeArgs) -> Result<()> {
    let client = Client::new(&node.node);
    let a = client.account(&resolve_address(&who)?).await?;
    println!("address  {}", a.address);
    println!("balance  {}", a.balance);
    println!("nonce    {} (next {})", a.nonce, a.next_nonce);
    println!(
        "stake    provider {} ({} locked), validator {}, unbonding {}",
        a.stake.provider,
        a.stake.provider_locked,
        a.stake.validator,
        a.stake.unbonding.iter().map(|u| u.amount).sum::<u64>()
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Create a new random key in $VERITY_HOME/keys.
    New { name: String },
    /// List keys in $VERITY_HOME/keys, and the devnet accounts.
    List,
}

pub fn keys(cmd: KeysCmd) -> Result<()> {
    let dir = verity_home().join("keys");
    match cmd {
        KeysCmd::New { name } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!("key names use letters, digits, - and _");
            }
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{name}.key"));
            if path.exists() {
                bail!("{} already exists", path.display());
            }
            let key = Keypair::generate();
            write_secret(&path, &hex::encode(key.seed()))?;
            println!("{name} {} ({})", key.address(), path.display());
        }
        KeysCmd::List => {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut names: Vec<_> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "key"))
                    .collect();
                names.sort();
                for p in names {
                    let k = read_key_file(&p)?;
                    println!(
                        "{:<12} {}",
                        p.file_stem().unwrap_or_default().to_string_lossy(),
                        k.address()
                    );
                }
            }
            for name in devnet::DEV_ACCOUNTS {
                println!("{name:<12} {} (devnet)", devnet::dev_key(name).address());
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Provider,
    Validator,
}

#[derive(Args)]
pub struct StakeArgs {
    #[arg(long, value_enum)]
    role: RoleArg,
    #[arg(long)]
    amount: u64,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    node: NodeArgs,
}

pub async fn stake(args: StakeArgs, unstake: bool) -> Result<()> {
    let role = match args.role {
        RoleArg::Provider => Role::Provider,
        RoleArg::Validator => Role::Validator,
    };
    let body = if unstake {
        TxBody::Unstake {
            role,
            amount: args.amount,
        }
    } else {
        TxBody::Stake {
            role,
            amount: args.amount,
        }
    };
    send_and_wait(&args.node, &args.key, body).await
}

#[derive(Args)]
pub struct TransferArgs {
    /// Recipient address or key name.
    #[arg(long)]
    to: String,
    #[arg(long)]
    amount: u64,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    node: NodeArgs,
}

pub async fn transfer(args: TransferArgs) -> Result<()> {
    let to = resolve_address(&args.to)?;
    send_and_wait(
        &args.node,
        &args.key,
        TxBody::Transfer {
            to,
            amount: args.amount,
        },
    )
    .await
}

async fn send_and_wait(node: &NodeArgs, key: &KeyArgs, body: TxBody) -> Result<()> {
    let client = Client::new(&node.node);
    let key = resolve_key(&key.key)?;
    let tx = client.send(&key, body).await?;
    let h = client.wait_tx(&tx, Duration::from_secs(30)).await?;
    println!("transaction {} included at height {h}", tx.short());
    Ok(())
}
