//! `verity provenance verify`: a job's provenance record checked against the ledger while
//! trusting no node. The record must be in a state root; that root must be named by the next
//! block's header; and that block (or one built on it) must carry a finalization certificate
//! signed by a quorum of the validator set the genesis file names.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, Subcommand};
use verity_client::{CertifiedBlock, Client};
use verity_consensus::certificate::{self, Certified};
use verity_ledger::{Block, Genesis};
use verity_types::{Address, BlockId, Digest, JobId};

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

/// Blocks past the one naming the root to look through for a certificate: a BFT node keeps
/// one per finalized view, and may have finalized some blocks only as ancestors of another.
const SEARCH_BLOCKS: u64 = 32;
/// How long to wait for the block that names the root (the next one) to be made.
const NEXT_BLOCK_WAIT: Duration = Duration::from_secs(30);

pub async fn run(cmd: ProvenanceCmd) -> Result<()> {
    match cmd {
        ProvenanceCmd::Verify(args) => verify(args).await,
    }
}

/// What was checked, for `--json`.
#[derive(serde::Serialize)]
pub(crate) struct Checked {
    /// The chain and validator set the check trusted (from the genesis file).
    chain_id: String,
    /// Whether a validator's key is a public devnet key (whose signatures prove nothing).
    devnet: bool,
    record: verity_ledger::Provenance,
    state_root: Digest,
    /// The block whose header names the state root.
    block: BlockId,
    pub(crate) block_height: u64,
    /// The certified block (this block or a descendant) and who certified it.
    pub(crate) certified_height: u64,
    certified_view: u64,
    pub(crate) signers: usize,
    pub(crate) validators: usize,
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
    let view = client.provenance(&id).await?;
    ensure!(
        view.record.job_id == id,
        "the node answered with the record of another job"
    );
    ensure!(
        verity_client::verify_provenance(&view),
        "the record is not in the state root the node gave: its proof fails"
    );
    let (block, block_id, decoded) = block_after(client, view.height).await?;
    let named_by = block.height;
    ensure!(
        decoded.header.chain_id == genesis.chain_id,
        "block {named_by} is for chain `{}`, not `{}`",
        decoded.header.chain_id,
        genesis.chain_id
    );
    ensure!(
        decoded.header.height == named_by && decoded.header.parent == view.state_root,
        "block {named_by} does not name the record's state root {}",
        view.state_root
    );
    let (certified_height, certified) =
        finality(client, &genesis.chain_id, &validators, block, block_id).await?;
    Ok(Checked {
        chain_id: genesis.chain_id.clone(),
        devnet: dev_key.is_some(),
        record: view.record,
        state_root: view.state_root,
        block: block_id,
        block_height: named_by,
        certified_height,
        certified_view: certified.view,
        signers: certified.signers,
        validators: validators.len(),
    })
}

/// The first certificate on `block` or the blocks built on it, each linked to the one before
/// by its parent id; returns its height and what it establishes.
async fn finality(
    client: &Client,
    chain_id: &str,
    validators: &[Address],
    mut block: CertifiedBlock,
    mut id: BlockId,
) -> Result<(u64, Certified)> {
    let first = block.height;
    // Counted here, not read from the node's heights: a node serving an endless chain of
    // uncertified blocks cannot keep the check going.
    for _ in 0..SEARCH_BLOCKS {
        if let Some(encoded) = &block.certificate {
            let bytes = BASE64
                .decode(encoded)
                .context("the certificate is not base64")?;
            let certified = certificate::verify(chain_id, validators, &bytes, id)
                .with_context(|| format!("block {}'s certificate", block.height))?;
            return Ok((block.height, certified));
        }
        let (next, next_id, decoded) = block_after(client, block.height).await?;
        ensure!(
            decoded.parent_id == id,
            "block {} does not extend block {}",
            next.height,
            block.height
        );
        (block, id) = (next, next_id);
    }
    Err(anyhow!(
        "no finalization certificate on blocks {first}..{}: this node did not keep one; ask \
         another node",
        first.saturating_add(SEARCH_BLOCKS)
    ))
}

/// The block after `height` from the node (waiting for it to be made), decoded, with its id
/// computed here (the node's `id` and `height` are not trusted).
async fn block_after(client: &Client, height: u64) -> Result<(CertifiedBlock, BlockId, Block)> {
    let height = height
        .checked_add(1)
        .ok_or_else(|| anyhow!("the node gave an impossible height"))?;
    let block = wait_block(client, height).await?;
    let (id, decoded) = decode(&block, height)?;
    Ok((block, id, decoded))
}

/// The block at `height` and its id, computed here from its bytes.
fn decode(block: &CertifiedBlock, height: u64) -> Result<(BlockId, Block)> {
    let bytes = BASE64
        .decode(&block.block)
        .context("the block is not base64")?;
    let decoded = Block::from_bytes(&bytes)?;
    let id = decoded.id();
    ensure!(
        decoded.header.height == height && block.height == height,
        "the node sent block {} for height {height}",
        decoded.header.height
    );
    Ok((id, decoded))
}

/// Block `height` from the node, waiting for it to be made (the next block usually is).
async fn wait_block(client: &Client, height: u64) -> Result<CertifiedBlock> {
    let deadline = Instant::now() + NEXT_BLOCK_WAIT;
    loop {
        match client.certified_block(height).await {
            Ok(block) => return Ok(block),
            Err(e) if Instant::now() > deadline => {
                return Err(anyhow!(e).context(format!("block {height}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn print(c: &Checked) {
    let r = &c.record;
    println!(
        "chain        {}{}",
        c.chain_id,
        if c.devnet {
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
