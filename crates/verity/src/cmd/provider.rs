//! `verity provider` (run a provider worker, or `provider show`), `verity providers` and
//! `verity auditors`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use verity_client::Client;
use verity_provider::ProviderConfig;

use super::ReadArgs;
use crate::keystore::resolve_key;
use crate::model_file::LoadedModel;
use crate::render::print_profile;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProviderArgs {
    #[command(subcommand)]
    pub(crate) cmd: Option<ProviderCmd>,
    /// A node's API URL. Repeat it (or separate URLs with commas) to name other nodes of the
    /// same network: when the node in use stops answering, the worker carries on through
    /// the next.
    #[arg(
        long = "node",
        env = "VERITY_NODE",
        default_value = "http://127.0.0.1:8545",
        value_delimiter = ','
    )]
    nodes: Vec<String>,
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
pub fn held_weights(models: &[PathBuf]) -> Result<verity_provider::HeldData> {
    let mut held = Vec::new();
    for path in models {
        let loaded = LoadedModel::load(path)?;
        let (Some(committed), Some(_), false) = (
            loaded.committed()?,
            loaded.compiled.weights.as_ref(),
            loaded.is_card(),
        ) else {
            bail!(
                "{} is not a committed-weights model with its weights (import it with --private-weights)",
                path.display()
            );
        };
        let program = loaded.id()?;
        let job_hints = loaded.compiled.hints_from_prover.then(|| {
            std::sync::Arc::new(ModelHints {
                model: loaded,
                commitment: committed.commitment,
            }) as std::sync::Arc<dyn verity_provider::JobHints>
        });
        held.push(verity_provider::CommittedData {
            commitment: committed.commitment,
            entries: committed.entries,
            program,
            job_hints,
        });
    }
    Ok(std::sync::Arc::new(held))
}

/// A committed-weights model whose program checks layers from accumulators its prover
/// supplies: they are computed per job, from the job's private input, with the weights.
struct ModelHints {
    model: LoadedModel,
    /// The model commitment, hashed from the weights once, at start.
    commitment: [u64; 4],
}

impl std::fmt::Debug for ModelHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelHints({})", self.model.model.name)
    }
}

impl verity_provider::JobHints for ModelHints {
    fn hints(&self, private: &[u64]) -> Result<Vec<(verity_types::Digest, Vec<u64>)>, String> {
        self.model
            .prover_hints(self.commitment, private)
            .map(|entry| entry.into_iter().collect())
            .map_err(|e| format!("{e:#}"))
    }
}

#[derive(Subcommand)]
pub enum ProviderCmd {
    /// A provider's trust profile: record, fulfilment rate, latency, score.
    Show {
        /// Address (whole, or a unique prefix as tables print it) or key name.
        who: String,
        #[command(flatten)]
        read: ReadArgs,
    },
}

/// `verity auditors`: every validator's record as an auditor.
pub async fn auditors(args: ReadArgs) -> Result<()> {
    let list = Client::new(&args.node.node).auditors().await?;
    if args.json {
        return crate::render::print_json(&list);
    }
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
pub async fn list(args: ReadArgs) -> Result<()> {
    let list = Client::new(&args.node.node).providers().await?;
    if args.json {
        return crate::render::print_json(&list);
    }
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

pub async fn run(args: ProviderArgs) -> Result<()> {
    if let Some(ProviderCmd::Show { who, read }) = args.cmd {
        let client = Client::new(&read.node.node);
        let view = client
            .provider(&super::address(&client, &who).await?)
            .await?;
        if read.json {
            return crate::render::print_json(&view);
        }
        print_profile(&view.profile);
        println!("online     {}", if view.online { "yes" } else { "no" });
        return Ok(());
    }
    let (first, others) = args.nodes.split_first().expect("clap gives a default node");
    let mut cfg = ProviderConfig::new(first, resolve_key(&args.key)?);
    cfg.fallback_nodes = others.to_vec();
    cfg.price_per_mcycle = args.price_per_mcycle;
    cfg.max_queue = args.max_queue.max(1);
    cfg.probe_listen = args.probe_listen;
    cfg.endpoint = args.endpoint;
    cfg.held_data = held_weights(&args.models)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(verity_provider::Provider::new(cfg).run(rx));
    tokio::signal::ctrl_c().await?;
    let _ = tx.send(true);
    let _ = worker.await;
    Ok(())
}
