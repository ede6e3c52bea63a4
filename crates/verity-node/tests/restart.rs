//! A node reopened on its data directory has exactly the state and state root it had: the
//! database's entries (genesis, then each block's changes) and the state store agree.

use std::sync::Arc;

use verity_node::{Node, NodeConfig, SoloProducer, devnet, produce_block};
use verity_types::{Keypair, TxBody};

fn open(dir: &std::path::Path) -> Arc<Node> {
    Node::open(NodeConfig::new(dir.to_path_buf(), devnet::genesis())).unwrap()
}

#[test]
fn a_reopened_node_has_the_state_and_root_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let (before, root, id) = {
        let node = open(dir.path());
        let mut producer = SoloProducer::new(Keypair::dev("validator"));
        let client = Keypair::dev("client");
        for i in 0..3u64 {
            node.sign_and_submit(
                &client,
                TxBody::Transfer {
                    to: Keypair::dev("provider").address(),
                    amount: 10 + i,
                },
            )
            .unwrap();
            produce_block(&node, &mut producer).unwrap();
        }
        let (state, id, root) = node.head();
        assert_eq!(state.height, 3);
        (state.to_bytes(), root, id)
    };
    let node = open(dir.path());
    let (state, reopened_id, reopened_root) = node.head();
    assert_eq!(reopened_id, id);
    assert_eq!(reopened_root, root);
    // Every entry, the untouched genesis accounts included.
    assert!(
        state.to_bytes() == before,
        "the reopened state differs from the state before"
    );
    // And the chain goes on from there.
    let mut producer = SoloProducer::new(Keypair::dev("validator"));
    produce_block(&node, &mut producer).unwrap();
    assert_eq!(node.state().height, 4);
}

/// The node's state is its database's, read as needed: a restart loads none of it, and
/// between blocks the node keeps at most `hot_entries` entries of a table in memory. Reads
/// see every entry either way, and the chain goes on.
#[test]
fn a_node_reads_its_state_from_its_database_and_holds_only_what_blocks_touched() {
    let dir = tempfile::tempdir().unwrap();
    let mut genesis = devnet::genesis();
    let extra: Vec<verity_types::Address> = (0..2_000u32)
        .map(|i| {
            let mut a = [9u8; 32];
            a[..4].copy_from_slice(&i.to_be_bytes());
            verity_types::Address(a)
        })
        .collect();
    for (i, address) in extra.iter().enumerate() {
        genesis.accounts.push(verity_ledger::GenesisAccount {
            address: *address,
            balance: 1_000 + i as u64,
        });
    }
    let config = |hot_entries| NodeConfig {
        hot_entries,
        ..NodeConfig::new(dir.path().to_path_buf(), genesis.clone())
    };
    let client = Keypair::dev("client");
    let mut producer = SoloProducer::new(Keypair::dev("validator"));
    let check = |state: &verity_ledger::State, paid: u64| {
        for (i, address) in extra.iter().enumerate() {
            let bonus = if i < 3 { paid } else { 0 };
            assert_eq!(state.accounts[address].balance, 1_000 + i as u64 + bonus);
        }
        assert_eq!(
            state.total_held() + u128::from(state.burned),
            u128::from(state.genesis_supply),
            "every entry, read from the database or memory, adds up to the supply"
        );
    };
    let before = {
        let node = Node::open(config(100)).unwrap();
        for round in 0..2u64 {
            for to in &extra[..3] {
                node.sign_and_submit(&client, TxBody::Transfer { to: *to, amount: 5 })
                    .unwrap();
            }
            produce_block(&node, &mut producer).unwrap();
            let state = node.state();
            assert!(state.is_over_source());
            assert!(
                state.held_in_memory() < 100,
                "round {round}: {} entries in memory, more than blocks touched",
                state.held_in_memory()
            );
        }
        check(&node.state(), 10);
        node.state().to_bytes()
    };
    let node = Node::open(config(usize::MAX)).unwrap();
    let state = node.state();
    assert_eq!(state.held_in_memory(), 0, "a restart loads no entry");
    assert!(state.to_bytes() == before);
    check(&state, 10);
    // Kept in memory now (no bound): the next block's state holds what it touched, and the
    // chain goes on over the database.
    for to in &extra[..3] {
        node.sign_and_submit(&client, TxBody::Transfer { to: *to, amount: 5 })
            .unwrap();
    }
    produce_block(&node, &mut producer).unwrap();
    check(&node.state(), 15);
}

/// A state store at the database's height but holding another state (here a stray commit
/// named after the tip's height) is refused at start, naming both, rather than served.
#[test]
fn a_state_store_that_disagrees_with_the_tip_block_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = open(dir.path());
        let mut producer = SoloProducer::new(Keypair::dev("validator"));
        produce_block(&node, &mut producer).unwrap();
        produce_block(&node, &mut producer).unwrap();
    }
    {
        let store = verity_store::StateStore::open(&dir.path().join("state")).unwrap();
        let stray = std::collections::BTreeMap::from([(vec![1u8; 33], Some(vec![7u8]))]);
        assert_eq!(store.write(2, &stray).unwrap().height, Some(2));
    }
    let err = Node::open(NodeConfig::new(dir.path().to_path_buf(), devnet::genesis()))
        .err()
        .expect("a node on a store that disagrees with its blocks")
        .to_string();
    assert!(
        err.contains("state store") && err.contains("height 2"),
        "{err}"
    );
}

/// A restart reuses the genesis id the directory computed for its genesis file (hashing a
/// genesis of a million accounts takes seconds), so what identifies the file must cover all
/// of it: a genesis that differs in any field (here one balance, the validator's stake, a
/// parameter, the time) is still recognised as another genesis and refused.
#[test]
fn a_restart_with_a_genesis_that_differs_anywhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = open(dir.path());
        let mut producer = SoloProducer::new(Keypair::dev("validator"));
        produce_block(&node, &mut producer).unwrap();
    }
    let variants: [fn(&mut verity_ledger::Genesis); 4] = [
        |g| g.accounts[0].balance += 1,
        |g| g.stakes[0].amount += 1,
        |g| g.params.challenge_window += 1,
        |g| g.genesis_time_ms += 1,
    ];
    for (i, change) in variants.iter().enumerate() {
        let mut genesis = devnet::genesis();
        change(&mut genesis);
        match Node::open(NodeConfig::new(dir.path().to_path_buf(), genesis)) {
            Err(verity_node::NodeError::WrongGenesis { .. }) => {}
            Err(e) => panic!("variant {i}: expected another genesis, got {e}"),
            Ok(_) => panic!("variant {i}: a different genesis was taken"),
        }
        // The right one still opens, with the id it had.
        assert_eq!(open(dir.path()).state().height, 1);
    }
}
