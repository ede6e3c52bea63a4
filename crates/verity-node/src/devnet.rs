//! The local development network: well-known dev keys, funded at genesis.

use verity_ledger::{Genesis, GenesisAccount, GenesisStake, Params};
use verity_types::{Keypair, Role};

pub const DEVNET_CHAIN_ID: &str = "verity-devnet";

/// Dev accounts: `client` (funds), `provider` (staked provider), `validator`.
pub const DEV_ACCOUNTS: [&str; 4] = ["client", "provider", "provider2", "validator"];

pub fn dev_key(name: &str) -> Keypair {
    Keypair::dev(name)
}

/// Genesis for the devnet: each dev account gets 10^9 units; providers stake 10^6, the
/// validator 10^6. Challenge window 20 blocks (5 s at 250 ms blocks).
pub fn genesis() -> Genesis {
    Genesis {
        chain_id: DEVNET_CHAIN_ID.into(),
        genesis_time_ms: 0,
        params: Params {
            challenge_window: 20,
            unbonding_period: 40,
            ..Params::default()
        },
        accounts: DEV_ACCOUNTS
            .iter()
            .map(|n| GenesisAccount {
                address: dev_key(n).address(),
                balance: 1_000_000_000,
            })
            .collect(),
        stakes: vec![
            GenesisStake {
                address: dev_key("provider").address(),
                role: Role::Provider,
                amount: 1_000_000,
            },
            GenesisStake {
                address: dev_key("provider2").address(),
                role: Role::Provider,
                amount: 1_000_000,
            },
            GenesisStake {
                address: dev_key("validator").address(),
                role: Role::Validator,
                amount: 1_000_000,
            },
        ],
    }
}

/// The dev key name of validator `i` of a multi-validator devnet (`validator`, `validator2`, …).
pub fn validator_name(i: usize) -> String {
    if i == 0 {
        "validator".into()
    } else {
        format!("validator{}", i + 1)
    }
}

/// The devnet genesis with `n` equally staked validators (the first is the usual `validator`).
pub fn genesis_with_validators(n: usize) -> Genesis {
    let mut g = genesis();
    for i in 1..n {
        let key = dev_key(&validator_name(i));
        g.accounts.push(GenesisAccount {
            address: key.address(),
            balance: 1_000_000_000,
        });
        g.stakes.push(GenesisStake {
            address: key.address(),
            role: Role::Validator,
            amount: 1_000_000,
        });
    }
    g
}

/// Starts a single-producer node on `genesis`: data in `dir`, the dev `validator` key sealing
/// a block at most every `block_ms`, the API on `listen`.
pub async fn start_single(
    dir: &std::path::Path,
    genesis: Genesis,
    listen: std::net::SocketAddr,
    block_ms: u64,
) -> Result<crate::RunningNode, crate::NodeError> {
    let mut config = crate::NodeConfig::new(dir.to_path_buf(), genesis);
    config.block_interval_ms = block_ms;
    crate::start(config, listen, dev_key("validator")).await
}

/// Starts `n` devnet validators on this machine, running BFT consensus over authenticated
/// p2p on free loopback ports. Validator `i` keeps its data in `dir/v{i}` and serves its API
/// on `listen` + i (or on a free port each, when `listen`'s port is 0).
pub async fn start_bft_network(
    dir: &std::path::Path,
    n: usize,
    listen: std::net::SocketAddr,
    block_ms: u64,
) -> Result<Vec<crate::RunningNode>, crate::NodeError> {
    let genesis = genesis_with_validators(n);
    let mut peers = Vec::new();
    for i in 0..n {
        // Ask the OS for a free port for each validator's p2p listener.
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        peers.push((dev_key(&validator_name(i)).address(), probe.local_addr()?));
    }
    let mut nodes = Vec::new();
    for (i, (_, p2p)) in peers.iter().enumerate() {
        let mut config = crate::NodeConfig::new(dir.join(format!("v{i}")), genesis.clone());
        config.block_interval_ms = block_ms;
        let port = if listen.port() == 0 {
            0
        } else {
            listen.port() + i as u16
        };
        let network = verity_consensus::NetworkConfig {
            listen: *p2p,
            peers: peers.clone(),
            storage_dir: dir.join(format!("v{i}")).join("consensus"),
            worker_threads: 1,
        };
        let api = std::net::SocketAddr::new(listen.ip(), port);
        let key = dev_key(&validator_name(i));
        nodes.push(crate::start_validator(config, api, key, network).await?);
    }
    Ok(nodes)
}
