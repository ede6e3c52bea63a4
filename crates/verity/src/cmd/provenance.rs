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
use verity_ledger::Block;
use verity_types::{Address, BlockId, Digest};

#[derive(Subcommand)]
pub enum ProvenanceCmd {
    /// Check a job's provenance record (program, input and output hashes, proof hash, prover,
    /// price, heights) against a block finalized by the genesis validators, trusting no node.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The job: its id, or a unique prefix.
    job: String,
    /// The network's genesis file: its chain id and validator set are all the check trusts
    /// (default: the devnet's).
    #[arg(long)]
    genesis: Option<PathBuf>,
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
struct Checked {
    record: verity_ledger::Provenance,
    state_root: Digest,
    /// The block whose header names the state root.
    block: BlockId,
    block_height: u64,
    /// The certified block (this block or a descendant) and who certified it.
    certified_height: u64,
    certified_view: u64,
    signers: usize,
    validators: usize,
}

async fn verify(args: VerifyArgs) -> Result<()> {
    let genesis = super::node::read_genesis(args.genesis.as_deref())?;
    let validators: Vec<Address> = genesis.validators().into_iter().collect();
    let client = Client::new(&args.read.node.node);
    let id = super::job_id(&client, &args.job).await?;
    let view = client.provenance(&id).await?;
    ensure!(
        view.record.job_id == id,
        "the node answered with the record of another job"
    );
    ensure!(
        view.record.verify_inclusion(&view.state_root, &view.proof),
        "the record is not in the state root the node gave: its inclusion proof fails"
    );
    let named_by = view.height + 1;
    let block = wait_block(&client, named_by).await?;
    let (block_id, decoded) = decode(&block)?;
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
        finality(&client, &genesis.chain_id, &validators, block, block_id).await?;
    let checked = Checked {
        record: view.record,
        state_root: view.state_root,
        block: block_id,
        block_height: named_by,
        certified_height,
        certified_view: certified.view,
        signers: certified.signers,
        validators: validators.len(),
    };
    if args.read.json {
        println!("{}", serde_json::to_string_pretty(&checked)?);
    } else {
        print(&checked);
    }
    Ok(())
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
    loop {
        if let Some(encoded) = &block.certificate {
            let bytes = BASE64
                .decode(encoded)
                .context("the certificate is not base64")?;
            let certified = certificate::verify(chain_id, validators, &bytes, id)
                .with_context(|| format!("block {}'s certificate", block.height))?;
            return Ok((block.height, certified));
        }
        ensure!(
            block.height < first + SEARCH_BLOCKS,
            "no finalization certificate on blocks {first}..={}: this node did not keep one; \
             ask another node",
            block.height
        );
        let next = wait_block(client, block.height + 1).await?;
        let (next_id, decoded) = decode(&next)?;
        ensure!(
            decoded.parent_id == id,
            "block {} does not extend block {}",
            next.height,
            block.height
        );
        (block, id) = (next, next_id);
    }
}

/// The block and its id, computed here from its bytes (the node's `id` is not trusted).
fn decode(block: &CertifiedBlock) -> Result<(BlockId, Block)> {
    let bytes = BASE64
        .decode(&block.block)
        .context("the block is not base64")?;
    let decoded = Block::from_bytes(&bytes)?;
    let id = decoded.id();
    ensure!(
        decoded.header.height == block.height,
        "the node sent block {} for height {}",
        decoded.header.height,
        block.height
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
