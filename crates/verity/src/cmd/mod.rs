//! One module per command group, each with its `Args` and what runs them (as in reth), and
//! the flags several groups share.

use anyhow::Result;
use clap::Args;
use verity_types::JobId;

pub mod chain;
pub mod devnet;
pub mod infer;
pub mod job;
pub mod keys;
pub mod model;
pub mod node;
pub mod proof;
pub mod provider;

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

pub fn parse_job_id(s: &str) -> Result<JobId> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("`{s}` is not a job id: {e}"))
}
