//! `verity node init | run`: a validator's key and directory, and running a node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use verity_ledger::Genesis;
use verity_node::{AuditorConfig, NodeConfig, devnet};
use verity_types::{Address, Keypair};

use crate::keystore::{read_key_file, resolve_key, write_secret};

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
    pub fn config(&self, key: Keypair, local_network: bool) -> Result<Option<AuditorConfig>> {
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

#[derive(Subcommand)]
pub enum NodeCmd {
    /// Create a validator's directory and key; prints its line for the peers file.
    Init(NodeInitArgs),
    /// Run a node. With `--peers`, it is one validator of a BFT network; without, it
    /// produces every block itself (a one-validator chain).
    Run(RunArgs),
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
pub struct RunArgs {
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
    /// Start from the committed state of the node at this URL instead of replaying every
    /// block: the state is checked against a root the genesis validators finalized. Only
    /// for a validator of a BFT network (`--peers`) whose directory holds no chain yet; a
    /// restart resumes from the directory.
    #[arg(long, value_name = "URL", requires = "peers")]
    sync_from: Option<String>,
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

pub fn read_peers(path: &Path) -> Result<Vec<(Address, SocketAddr)>> {
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

pub async fn run(cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Init(args) => init(args),
        NodeCmd::Run(args) => run_node(args).await,
    }
}

fn init(args: NodeInitArgs) -> Result<()> {
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

/// A genesis file, or the devnet's without one.
pub(crate) fn read_genesis(path: Option<&Path>) -> Result<Genesis> {
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

async fn run_node(args: RunArgs) -> Result<()> {
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
    if let Some(url) = &args.sync_from {
        match verity_node::sync_from(&config, url).await {
            Ok(s) => println!(
                "verity node: synced the state at height {} from {url} ({} entries, {} log \
                 operations; root {} certified by {} of {} validators at height {})",
                s.height,
                s.entries,
                s.operations,
                s.state_root,
                s.signers,
                s.validators,
                s.certified_height
            ),
            Err(verity_node::SyncError::NotEmpty { .. }) => println!(
                "verity node: {} already holds the chain; resuming from it (--sync-from is for \
                 a first start)",
                args.dir.display()
            ),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("state sync from {url} failed")));
            }
        }
    }
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
    let stopped_itself = tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal?;
            false
        }
        () = running.node.state_store_stopped() => true,
    };
    running.stop().await;
    if stopped_itself {
        bail!(
            "the state store stopped (its error is in the log above): this node can commit no \
             more blocks. Restart it: it reopens the store at its last commit"
        );
    }
    Ok(())
}
