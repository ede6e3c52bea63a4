//! State sync against a real node on loopback: a new node starts from its certified state and
//! follows its blocks; a peer that lies about any part of the state is caught before anything
//! is written.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State as UrlState};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use verity_api::StateSnapshot;
use verity_client::{Client, ProvenanceError};
use verity_ledger::Genesis;
use verity_node::{Node, NodeConfig, RunningNode, SyncError, devnet, sync_from};
use verity_types::{Address, Digest, Keypair, TxBody};

async fn start(dir: &std::path::Path) -> RunningNode {
    devnet::start_single(dir, devnet::genesis(), "127.0.0.1:0".parse().unwrap(), 20)
        .await
        .unwrap()
}

fn config(dir: &std::path::Path, genesis: Genesis) -> NodeConfig {
    NodeConfig::new(dir.to_path_buf(), genesis)
}

async fn wait_height(node: &Node, at_least: u64) {
    let t = std::time::Instant::now();
    while node.state().height < at_least {
        assert!(t.elapsed() < Duration::from_secs(30), "no block {at_least}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a lying peer changes in what the honest node serves.
#[derive(Clone, Copy, Debug)]
enum Lie {
    None,
    AlterEntry,
    DropEntry,
    AddEntry,
    OtherRoot,
    OtherBlock,
    AlterOperations,
    /// Claims four billion entries in a few bytes: to be refused, not allocated for.
    ClaimMany,
    /// Lists one entry twice in place of another: the count matches, every listed entry is
    /// the store's, yet one is missing.
    DuplicateForMissing,
    /// Names a log of its own (another log root) under the certified state root.
    OtherLog,
    /// Honest, but its log is pruned past the first snapshot before the sync fetches it
    /// (answers `410 Gone` to that sync's first request).
    PrunedOnce,
    /// Its log is always pruned past the snapshot it serves.
    AlwaysPruned,
}

struct Proxy {
    to: String,
    lie: Lie,
    http: reqwest::Client,
    snapshots: std::sync::atomic::AtomicU32,
    gone: std::sync::atomic::AtomicU32,
}

/// A peer at `to`'s URL that tells `lie`, and what it served.
async fn lying_peer(to: String, lie: Lie) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        to,
        lie,
        http: reqwest::Client::new(),
        snapshots: Default::default(),
        gone: Default::default(),
    });
    let app = axum::Router::new()
        .fallback(
            |UrlState(p): UrlState<Arc<Proxy>>, req: Request| async move {
                let path = req.uri().path_and_query().unwrap().to_string();
                let log_request = path.starts_with("/v1/sync/operations")
                    || path.starts_with("/v1/sync/boundary");
                let count = |n: &std::sync::atomic::AtomicU32| {
                    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                };
                if path.starts_with("/v1/sync/snapshot") {
                    count(&p.snapshots);
                }
                let pruned = match p.lie {
                    Lie::PrunedOnce => {
                        log_request && p.snapshots.load(std::sync::atomic::Ordering::SeqCst) == 1
                    }
                    Lie::AlwaysPruned => log_request,
                    _ => false,
                };
                if pruned {
                    count(&p.gone);
                    return (StatusCode::GONE, Bytes::from_static(b"pruned")).into_response();
                }
                let resp = p.http.get(format!("{}{path}", p.to)).send().await.unwrap();
                let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
                let mut body = resp.bytes().await.unwrap().to_vec();
                if status.is_success() {
                    if path.starts_with("/v1/sync/snapshot") {
                        let mut s: StateSnapshot = borsh::from_slice(&body).unwrap();
                        tell(p.lie, &mut s);
                        body = borsh::to_vec(&s).unwrap();
                    } else if path.starts_with("/v1/sync/operations")
                        && matches!(p.lie, Lie::AlterOperations)
                    {
                        let last = body.len() - 1;
                        body[last] ^= 1;
                    }
                }
                (status, Bytes::from(body)).into_response()
            },
        )
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), proxy)
}

fn tell(lie: Lie, snapshot: &mut StateSnapshot) {
    if let Lie::ClaimMany = lie {
        snapshot.entries = u32::MAX.to_le_bytes().to_vec();
        return;
    }
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = borsh::from_slice(&snapshot.entries).unwrap();
    tell_entries(lie, snapshot, &mut entries);
    snapshot.entries = borsh::to_vec(&entries).unwrap();
}

fn tell_entries(lie: Lie, s: &mut StateSnapshot, entries: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    let account = entries.len() / 2;
    match lie {
        Lie::None | Lie::AlterOperations | Lie::ClaimMany | Lie::PrunedOnce | Lie::AlwaysPruned => {
        }
        Lie::AlterEntry => {
            let v = &mut entries[account].1;
            let last = v.len() - 1;
            v[last] ^= 1;
        }
        Lie::DropEntry => {
            entries.remove(account);
        }
        Lie::AddEntry => {
            let mut extra = entries[account].clone();
            extra.0.push(0);
            entries.push(extra);
        }
        Lie::DuplicateForMissing => {
            let copy = entries[account].clone();
            entries[account + 1] = copy;
        }
        Lie::OtherRoot => s.state_root = Digest([7; 32]),
        Lie::OtherLog => s.ops_root = Digest([7; 32]),
        Lie::OtherBlock => {
            // A well-formed block of this chain at this height, but not the one the chain
            // built on.
            let mut block = verity_ledger::Block::from_bytes(&s.block).unwrap();
            block.header.timestamp_ms += 1;
            s.block = block.to_bytes();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_synced_from_a_peer_has_its_state_and_follows_its_blocks() {
    let dirs = tempfile::tempdir().unwrap();
    let a = start(&dirs.path().join("a")).await;
    let client = Client::new(&a.url());
    // Something to sync: a transfer to a new account.
    let to = Address([0xab; 32]);
    let tx = client
        .send(
            &devnet::dev_key("client"),
            TxBody::Transfer { to, amount: 12_345 },
        )
        .await
        .unwrap();
    client.wait_tx(&tx, Duration::from_secs(10)).await.unwrap();
    wait_height(&a.node, 5).await;

    let b_dir = dirs.path().join("b");
    let synced = sync_from(&config(&b_dir, devnet::genesis()), &a.url())
        .await
        .unwrap();
    assert!(synced.height >= 5, "{synced:?}");
    assert_eq!((synced.signers, synced.validators), (1, 1));
    assert!(synced.operations > 0, "{synced:?}");

    // The synced node holds the peer's state at that height, without any block before it.
    let b = Node::open(config(&b_dir, devnet::genesis())).unwrap();
    let (state, tip, root) = b.head();
    assert_eq!(state.height, synced.height);
    assert_eq!(root, synced.state_root);
    let theirs = a.node.storage().block(synced.height).unwrap().unwrap();
    assert_eq!((tip, root), (theirs.to_block().id(), theirs.state_root));
    assert_eq!(state.accounts.get(&to).map(|a| a.balance), Some(12_345));
    assert_eq!(state.entries().len(), synced.entries);
    assert!(b.storage().block(1).unwrap().is_none(), "nothing replayed");
    assert_eq!(b.storage().synced_from().unwrap(), Some(synced.height));

    // It follows: the peer's next blocks commit on it with the peer's roots.
    let until = synced.height + 5;
    wait_height(&a.node, until).await;
    for h in synced.height + 1..=until {
        let block = a.node.storage().block(h).unwrap().unwrap();
        b.commit(&block.to_block().seal()).unwrap();
        assert_eq!(b.head().2, block.state_root, "block {h}");
    }
    drop(b);
    // And it restarts from its own directory.
    let b = Node::open(config(&b_dir, devnet::genesis())).unwrap();
    assert_eq!(b.state().height, until);
    drop(b);

    // A directory that holds a chain is not synced over.
    match sync_from(&config(&b_dir, devnet::genesis()), &a.url()).await {
        Err(SyncError::NotEmpty { .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_lies_about_the_state_is_caught_before_anything_is_written() {
    let dirs = tempfile::tempdir().unwrap();
    let a = start(&dirs.path().join("a")).await;
    wait_height(&a.node, 3).await;

    let mut n = 0;
    let mut sync_via = |lie: Lie, genesis: Genesis| {
        n += 1;
        let dir = dirs.path().join(format!("b{n}"));
        let url = a.url();
        async move {
            let (peer, _) = lying_peer(url, lie).await;
            let result = sync_from(&config(&dir, genesis.clone()), &peer).await;
            // Whatever failed, the node's database holds nothing: it can start over.
            if result.is_err() {
                let storage = verity_node::storage::Storage::open(&dir).unwrap();
                assert!(!storage.has_state().unwrap(), "{lie:?} left a state behind");
                assert!(!dir.join("state").exists(), "{lie:?} left a store behind");
            }
            result
        }
    };

    // The honest path through the same proxy works.
    assert!(sync_via(Lie::None, devnet::genesis()).await.is_ok());

    for lie in [
        Lie::AlterEntry,
        Lie::DropEntry,
        Lie::AddEntry,
        Lie::ClaimMany,
        Lie::DuplicateForMissing,
    ] {
        match sync_via(lie, devnet::genesis()).await {
            Err(SyncError::BadSnapshot(why)) => {
                assert!(
                    why.contains("entries are not the store's"),
                    "{lie:?}: {why}"
                )
            }
            other => panic!("{lie:?}: expected bad entries, got {other:?}"),
        }
    }
    match sync_via(Lie::OtherRoot, devnet::genesis()).await {
        Err(SyncError::NotCertified(ProvenanceError::RootNotNamed { .. })) => {}
        other => panic!("expected an uncertified root, got {other:?}"),
    }
    match sync_via(Lie::OtherLog, devnet::genesis()).await {
        Err(SyncError::BadSnapshot(why)) => assert!(why.contains("log root"), "{why}"),
        other => panic!("expected another log refused before fetching, got {other:?}"),
    }
    match sync_via(Lie::OtherBlock, devnet::genesis()).await {
        Err(SyncError::BadSnapshot(why)) => assert!(why.contains("not the parent"), "{why}"),
        other => panic!("expected the wrong tip block refused, got {other:?}"),
    }
    match sync_via(Lie::AlterOperations, devnet::genesis()).await {
        Err(SyncError::Store(verity_store::StoreError::Sync(_))) => {}
        other => panic!("expected altered operations refused, got {other:?}"),
    }
    // An honest peer of a chain whose validators are not the ones this node trusts.
    let impostor = Keypair::from_seed([12; 32]);
    let mut other = devnet::genesis();
    for s in &mut other.stakes {
        if s.role == verity_types::Role::Validator {
            s.address = impostor.address();
        }
    }
    match sync_via(Lie::None, other).await {
        Err(SyncError::NotCertified(ProvenanceError::BadCertificate { .. })) => {}
        other => panic!("expected another validator set refused, got {other:?}"),
    }
}

/// A peer that prunes its log (every 256 blocks) can overtake a sync: the log the snapshot
/// named is gone before the sync fetched it. The sync starts over from a new snapshot rather
/// than fail; a peer that keeps doing it ends the sync after `SYNC_ATTEMPTS` snapshots, with
/// nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_overtaken_by_the_peers_pruning_starts_over_from_a_new_snapshot() {
    use std::sync::atomic::Ordering::SeqCst;
    let dirs = tempfile::tempdir().unwrap();
    let a = start(&dirs.path().join("a")).await;
    wait_height(&a.node, 3).await;

    let (peer, proxy) = lying_peer(a.url(), Lie::PrunedOnce).await;
    let dir = dirs.path().join("b");
    let synced = sync_from(&config(&dir, devnet::genesis()), &peer)
        .await
        .expect("a sync overtaken once starts over and succeeds");
    assert_eq!(proxy.snapshots.load(SeqCst), 2, "a second snapshot");
    assert!(proxy.gone.load(SeqCst) >= 1);
    let node = Node::open(config(&dir, devnet::genesis())).unwrap();
    assert_eq!(node.state().height, synced.height);

    let (peer, proxy) = lying_peer(a.url(), Lie::AlwaysPruned).await;
    let dir = dirs.path().join("c");
    match sync_from(&config(&dir, devnet::genesis()), &peer).await {
        Err(SyncError::Overtaken(n)) => assert_eq!(n, verity_node::sync::SYNC_ATTEMPTS),
        other => panic!("expected the sync to give up, got {other:?}"),
    }
    assert_eq!(
        proxy.snapshots.load(SeqCst),
        verity_node::sync::SYNC_ATTEMPTS
    );
    let storage = verity_node::storage::Storage::open(&dir).unwrap();
    assert!(!storage.has_state().unwrap());
    assert!(!dir.join("state").exists());
}

/// A sync killed after its store was written but before the database was leaves a store no
/// block refers to: a start from genesis (or a new sync) removes it instead of refusing the
/// directory.
#[test]
fn a_store_left_by_a_killed_sync_does_not_block_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = verity_store::StateStore::open(&dir.path().join("state")).unwrap();
        let changes = verity_ledger::ChangeSet::from([(vec![1, 2, 3], Some(vec![4; 8]))]);
        store.write(42, &changes).unwrap();
    }
    let node = Node::open(config(dir.path(), devnet::genesis())).unwrap();
    assert_eq!(node.state().height, 0);
    assert_eq!(node.state_store().committed().unwrap().height, Some(0));
}
