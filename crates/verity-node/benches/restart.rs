//! What a node's restart costs as the state grows, and what its blocks cost after it: genesis
//! with N accounts written by a first start, one block, then the node opened again from its
//! directory (the state store reopened and checked against the tip; the state is read from
//! the database as blocks need it, not loaded). Then, on the restarted node, a block of one
//! transfer and a block of 1,000 transfers from 1,000 senders, each produced and committed
//! as the node does (apply, state store, database), with what the node then holds in memory.
//!
//! Run: `cargo bench --workspace --profile dev --bench restart` (`-- --max 100000` to stop
//! earlier).

use std::time::Instant;

use verity_ledger::{Genesis, GenesisAccount, Params};
use verity_node::{Node, NodeConfig, SoloProducer, produce_block};
use verity_types::{Address, Digest, Keypair, TxBody};

const SENDERS: u64 = 1_000;

fn sender(i: u64) -> Keypair {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    Keypair::from_seed(seed)
}

fn address(i: u64) -> Address {
    Address(Digest::blake3(&i.to_le_bytes()).0)
}

/// `accounts` accounts, the first 1,000 of them senders with keys.
fn genesis(accounts: u64) -> Genesis {
    Genesis {
        chain_id: "bench".into(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: (0..accounts)
            .map(|i| GenesisAccount {
                address: if i < SENDERS {
                    sender(i).address()
                } else {
                    address(i)
                },
                balance: 1_000_000,
            })
            .collect(),
        stakes: vec![],
    }
}

/// Submits a transfer from each of `senders` to an account spread over the state, then
/// times the block that includes them.
fn timed_block(
    node: &Node,
    producer: &mut SoloProducer,
    senders: std::ops::Range<u64>,
    accounts: u64,
) -> f64 {
    for i in senders.clone() {
        let to = address((i * 7_919 + node.state().height) % accounts);
        node.sign_and_submit(&sender(i), TxBody::Transfer { to, amount: 1 })
            .unwrap();
    }
    let t = Instant::now();
    let outcome = produce_block(node, producer).unwrap();
    let took = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(outcome.tx_results.len(), senders.count());
    assert!(outcome.tx_results.iter().all(Result::is_ok));
    took
}

fn main() {
    let max: u64 = std::env::args()
        .skip_while(|a| a != "--max")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!(
        "| accounts | first start (genesis written) | restart | of which the state store | then a block of 1 transfer | a block of 1,000 transfers | entries in memory after |"
    );
    println!("|---|---|---|---|---|---|---|");
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
        assert_eq!(node.state().held_in_memory(), 0);
        let one = timed_block(&node, &mut producer, 0..1, accounts);
        let full = timed_block(&node, &mut producer, 0..SENDERS, accounts);
        let held = node.state().held_in_memory();
        drop(node);
        let t = Instant::now();
        drop(verity_store::StateStore::open(&dir.path().join("state")).unwrap());
        let store = t.elapsed();
        println!(
            "| {accounts} | {:.2} s | {:.2} s | {:.2} s | {one:.1} ms | {full:.0} ms ({:.0} tx/s) | {held} |",
            first.as_secs_f64(),
            restart.as_secs_f64(),
            store.as_secs_f64(),
            SENDERS as f64 / (full / 1e3),
        );
        accounts *= 10;
    }
}
