//! What a node's restart costs as the state grows: genesis with N accounts written by a first
//! start, one block, then the node opened again from its directory (the redb state read back
//! into memory, the state store reopened and checked against the tip).
//!
//! Run: `cargo bench --workspace --profile dev --bench restart` (`-- --max 100000` to stop
//! earlier).

use std::time::Instant;

use verity_ledger::{Genesis, GenesisAccount, Params};
use verity_node::{Node, NodeConfig, SoloProducer, produce_block};
use verity_types::{Address, Digest, Keypair};

fn genesis(accounts: u64) -> Genesis {
    Genesis {
        chain_id: "bench".into(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: (0..accounts)
            .map(|i| GenesisAccount {
                address: Address(Digest::blake3(&i.to_le_bytes()).0),
                balance: 1_000,
            })
            .collect(),
        stakes: vec![],
    }
}

fn main() {
    let max: u64 = std::env::args()
        .skip_while(|a| a != "--max")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("| accounts | first start (genesis written) | restart | of which the state store |");
    println!("|---|---|---|---|");
    let mut accounts = 10_000;
    while accounts <= max {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(dir.path().to_path_buf(), genesis(accounts));
        let t = Instant::now();
        let node = Node::open(config.clone()).unwrap();
        let first = t.elapsed();
        // A node past genesis (before its first block, a start also checks the genesis).
        let mut producer = SoloProducer::new(Keypair::from_seed([1; 32]));
        produce_block(&node, &mut producer).unwrap();
        drop(node);
        let t = Instant::now();
        let node = Node::open(config).unwrap();
        let restart = t.elapsed();
        assert_eq!(node.state().accounts.len() as u64, accounts);
        drop(node);
        let t = Instant::now();
        drop(verity_store::StateStore::open(&dir.path().join("state")).unwrap());
        let store = t.elapsed();
        println!(
            "| {accounts} | {:.2} s | {:.2} s | {:.2} s |",
            first.as_secs_f64(),
            restart.as_secs_f64(),
            store.as_secs_f64()
        );
        accounts *= 10;
    }
}
