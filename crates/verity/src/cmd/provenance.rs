//! `verity provenance verify`: a job's provenance record checked against the ledger while
//! trusting no node, by the SDK's [`Client::certified_provenance`], against the validator set
//! the genesis file names.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use verity_client::{CertifiedProvenance, Client, TrustedValidators};
use verity_ledger::Genesis;
use verity_types::{Address, Digest, JobId};

#[derive(Subcommand)]
pub enum ProvenanceCmd {
    /// Check a job's provenance record (program, input and output hashes, proof hash, prover,
    /// price, heights) against a block finalized by the genesis validators, trusting no node.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The job's whole id (`0x` and 64 hex digits): a prefix would be resolved by the node,
    /// which this check does not trust.
    job: String,
    /// The network's genesis file: its chain id and validator set are all the check trusts.
    #[arg(long, required_unless_present = "devnet")]
    genesis: Option<PathBuf>,
    /// Check against a devnet (the built-in genesis, or a `--genesis` naming the public dev
    /// keys). Anyone can sign for those keys, so this shows a record consistent with the
    /// chain, not that a network of independent validators finalized it.
    #[arg(long)]
    devnet: bool,
    #[command(flatten)]
    read: super::ReadArgs,
}

pub async fn run(cmd: ProvenanceCmd) -> Result<()> {
    match cmd {
        ProvenanceCmd::Verify(args) => verify(args).await,
    }
}

/// What was checked, for `--json`: the SDK's certified record and whether the trusted
/// validator set holds a public devnet key.
#[derive(serde::Serialize)]
pub(crate) struct Checked {
    #[serde(flatten)]
    pub(crate) certified: CertifiedProvenance,
    /// Whether a validator's key is a public devnet key (whose signatures prove nothing).
    devnet: bool,
}

async fn verify(args: VerifyArgs) -> Result<()> {
    let genesis = super::node::read_genesis(args.genesis.as_deref())?;
    let client = Client::new(&args.read.node.node);
    let id: JobId = args.job.parse().map_err(|e| {
        anyhow!(
            "`{}` is not a whole job id ({e}); a prefix would be resolved by the node",
            args.job
        )
    })?;
    let checked = check(&client, &genesis, args.devnet, id).await?;
    if args.read.json {
        println!("{}", serde_json::to_string_pretty(&checked)?);
    } else {
        print(&checked);
    }
    Ok(())
}

/// Checks job `id`'s provenance record through `client`, trusting only `genesis` (its public
/// dev keys only if `devnet`).
pub(crate) async fn check(
    client: &Client,
    genesis: &Genesis,
    devnet: bool,
    id: JobId,
) -> Result<Checked> {
    let validators: Vec<Address> = genesis.validators().into_iter().collect();
    let dev_key = validators
        .iter()
        .find_map(|a| super::genesis::public_dev_key(a).map(|n| (*a, n)));
    if !devnet && let Some((address, name)) = &dev_key {
        anyhow::bail!(
            "validator {address} is the public devnet key `{name}`: anyone can sign blocks for \
             it, so its signatures prove nothing. Pass --devnet to check a devnet anyway"
        );
    }
    let trusted = TrustedValidators {
        chain_id: genesis.chain_id.clone(),
        validators,
    };
    let certified = client.certified_provenance(&id, &trusted).await?;
    Ok(Checked {
        certified,
        devnet: dev_key.is_some(),
    })
}

fn print(checked: &Checked) {
    let c = &checked.certified;
    let r = &c.record;
    println!(
        "chain        {}{}",
        c.chain_id,
        if checked.devnet {
            " (devnet: public validator keys)"
        } else {
            ""
        }
    );
    let opt = |d: Option<Digest>| d.map_or("–".to_string(), |d| d.to_string());
    println!("job          {}", r.job_id);
    println!("state        {}", r.state);
    println!("program      {}", r.program_hash);
    println!("input hash   {}", r.input_hash);
    println!("output hash  {}", opt(r.output_hash));
    println!("proof hash   {}", opt(r.proof_hash));
    println!(
        "prover       {}",
        r.prover.map_or("–".to_string(), |p| p.to_string())
    );
    println!("price        {}", r.price);
    println!(
        "heights      submitted {}, fulfilled {}, finished {}",
        r.submitted_height,
        r.fulfilled_height
            .map_or("–".to_string(), |h| h.to_string()),
        r.finished_height
    );
    println!(
        "in state     {} (named by block {} {})",
        c.state_root,
        c.block_height,
        c.block.short()
    );
    println!(
        "final        block {} certified by {} of {} genesis validators (view {})",
        c.certified_height, c.signers, c.validators, c.certified_view
    );
}
