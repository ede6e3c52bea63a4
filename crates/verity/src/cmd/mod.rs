//! One module per command group, each with its `Args` and what runs them (as in reth), and
//! the flags several groups share.

use anyhow::{Result, anyhow};
use clap::Args;
use verity_client::{Client, IdKind};
use verity_types::{Address, Digest, IdPrefix, JobId};

pub mod chain;
pub mod devnet;
pub mod genesis;
pub mod infer;
pub mod job;
pub mod keys;
pub mod model;
pub mod node;
pub mod proof;
pub mod provenance;
pub mod provider;

/// Where to find the node.
#[derive(Args, Clone)]
pub struct NodeArgs {
    /// The node's API URL.
    #[arg(long, env = "VERITY_NODE", default_value = "http://127.0.0.1:8545")]
    pub node: String,
}

/// A read command's flags: the node, and `--json` for scripts.
#[derive(Args, Clone)]
pub struct ReadArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Print the API's answer as JSON (the shape docs/API.md gives) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Which key signs.
#[derive(Args, Clone)]
pub struct KeyArgs {
    /// A key name (in $VERITY_HOME/keys, default ~/.verity/keys), a key file, or a devnet
    /// account name (client, provider, provider2, validator).
    #[arg(long, default_value = "client")]
    pub key: String,
}

/// A job id, whole or as a unique prefix (as tables print it: `0x48ed607f…`).
pub async fn job_id(client: &Client, s: &str) -> Result<JobId> {
    let prefix: IdPrefix = s
        .parse()
        .map_err(|e| anyhow!("`{s}` is not a job id: {e}"))?;
    if let Some(whole) = prefix.full() {
        return Ok(JobId(Digest(whole)));
    }
    resolve(client, &prefix, IdKind::Job).await
}

/// An address: whole, a unique prefix starting with `0x` (as tables print it), or a key name
/// (see [`crate::keystore::resolve_address`]).
pub async fn address(client: &Client, s: &str) -> Result<Address> {
    if !s.starts_with("0x") && !s.starts_with("0X") {
        return crate::keystore::resolve_address(s);
    }
    let prefix: IdPrefix = s
        .parse()
        .map_err(|e| anyhow!("`{s}` is not an address: {e}"))?;
    if let Some(whole) = prefix.full() {
        return Ok(Address(whole));
    }
    resolve(client, &prefix, IdKind::Account).await
}

/// The one id of `kind` the node says `prefix` names; an answer that does not start with the
/// prefix (a node lying or broken) is refused rather than used.
async fn resolve<T>(client: &Client, prefix: &IdPrefix, kind: IdKind) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let resolution = client.resolve(prefix).await?;
    let id = resolution.one(kind).map_err(|e| anyhow!(e))?;
    if !id.to_ascii_lowercase().starts_with(&prefix.to_string()) {
        anyhow::bail!("the node answered {id} for the prefix {prefix}");
    }
    id.parse()
        .map_err(|e| anyhow!("the node answered `{id}`, not an id: {e}"))
}
