//! The state store on real files: roots, restarts, proofs, forks and rollback.

use std::collections::BTreeMap;

use verity_store::{
    Fetch, MAX_VALUE_BYTES, Parent, StateStore, StoreError, SyncTarget, verify, verify_ops_root,
};
use verity_types::Digest;

type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

fn key(table: u8, i: u32) -> Vec<u8> {
    let mut k = vec![table];
    k.extend_from_slice(&[0; 28]);
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// Stages on whatever the store has committed now.
fn on_tip(store: &StateStore) -> Parent {
    Parent::committed(store.committed().unwrap().root)
}

/// Block `b`: sets ten keys (some new, some rewritten) and deletes one written earlier.
fn block(b: u32) -> Changes {
    let mut c: Changes = (0..10)
        .map(|i| (key(1, b * 5 + i), Some(format!("v{b}-{i}").into_bytes())))
        .collect();
    if b > 1 {
        c.insert(key(1, (b - 1) * 5), None);
    }
    c
}

#[test]
fn stores_fed_the_same_blocks_agree_on_every_root_and_a_restart_keeps_it() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut roots = Vec::new();
    {
        let (sa, sb) = (
            StateStore::open(a.path()).unwrap(),
            StateStore::open(b.path()).unwrap(),
        );
        let empty = sa.committed().unwrap();
        assert_eq!(empty.height, None);
        for h in 1..=6 {
            let (ca, cb) = (
                sa.write(h, &block(h as u32)).unwrap(),
                sb.write(h, &block(h as u32)).unwrap(),
            );
            assert_eq!(ca, cb, "block {h}");
            assert_eq!(ca.height, Some(h));
            assert!(
                !roots.contains(&ca.root),
                "block {h} left the root as it was"
            );
            roots.push(ca.root);
        }
        // Another value for one key: another root.
        let mut other = block(7);
        let mut same = block(7);
        other.insert(key(1, 1), Some(b"else".to_vec()));
        same.insert(key(1, 1), Some(b"v0".to_vec()));
        assert_ne!(
            sa.stage(on_tip(&sa), 7, &other).unwrap().root,
            sb.stage(on_tip(&sb), 7, &same).unwrap().root
        );
    }
    let reopened = StateStore::open(a.path()).unwrap();
    let committed = reopened.committed().unwrap();
    assert_eq!(committed.root, *roots.last().unwrap());
    assert_eq!(committed.height, Some(6));
    assert_eq!(
        reopened.get(&key(1, 30)).unwrap(),
        Some(b"v6-0".to_vec()),
        "written by block 6"
    );
    assert_eq!(
        reopened.get(&key(1, 25)).unwrap(),
        None,
        "deleted by block 6"
    );
    assert_eq!(reopened.get(&key(2, 30)).unwrap(), None, "another table");
}

#[test]
fn a_proof_shows_the_current_value_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.write(1, &block(1)).unwrap();
    let (k, _) = block(1).into_iter().nth(3).unwrap();
    let proved = store.prove(&k).unwrap().unwrap();
    let (value, proof, root) = (proved.value, proved.proof, proved.at.root);
    assert_eq!(proved.at, store.committed().unwrap());
    assert!(verify(&k, &value, &proof, &root));

    // Another value, key, table or root; a damaged proof: all refused.
    assert!(!verify(&k, b"forged", &proof, &root));
    assert!(!verify(&key(1, 999), &value, &proof, &root));
    let mut other_table = k.clone();
    other_table[0] = 2;
    assert!(!verify(&other_table, &value, &proof, &root));
    assert!(!verify(&k, &value, &proof, &Digest([7; 32])));
    for cut in [0, 1, proof.len() / 2, proof.len() - 1] {
        assert!(!verify(&k, &value, &proof[..cut], &root), "cut at {cut}");
    }
    for i in (0..proof.len()).step_by(7) {
        let mut bent = proof.clone();
        bent[i] ^= 0x20;
        assert!(!verify(&k, &value, &bent, &root), "byte {i} flipped");
    }

    // Once the key is rewritten, the old value's proof holds only for the old root, and the
    // old value does not verify against the new one.
    let mut next = Changes::new();
    next.insert(k.clone(), Some(b"rewritten".to_vec()));
    let new_root = store.write(2, &next).unwrap().root;
    assert!(!verify(&k, &value, &proof, &new_root));
    let fresh = store.prove(&k).unwrap().unwrap();
    assert_eq!(fresh.at.root, new_root);
    let (now, fresh) = (fresh.value, fresh.proof);
    assert_eq!(now, b"rewritten");
    assert!(verify(&k, &now, &fresh, &new_root));
    assert!(!verify(&k, &value, &fresh, &new_root));
    // A deleted key has no value to prove.
    next.insert(k.clone(), None);
    store.write(3, &next).unwrap();
    assert_eq!(store.prove(&k).unwrap(), None);
}

#[test]
fn staged_blocks_fork_and_only_the_committed_branch_survives() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.write(1, &block(1)).unwrap();
    let base = store.committed().unwrap();

    // Two competing blocks at height 2, and a block 3 on the first.
    let first = store.stage(on_tip(&store), 2, &block(2)).unwrap();
    let rival = store.stage(on_tip(&store), 2, &block(20)).unwrap();
    let child = store.stage(first.into(), 3, &block(3)).unwrap();
    assert_ne!(first.root, rival.root);
    assert_eq!(store.committed().unwrap(), base, "staging writes nothing");
    assert_eq!(store.get(&key(1, 24)).unwrap(), None, "block 3's alone");

    // Committing the child commits its parent too; the rival is gone.
    let committed = store.commit(child.id).unwrap();
    assert_eq!(committed.root, child.root);
    assert_eq!(committed.height, Some(3));
    assert!(matches!(
        store.commit(rival.id),
        Err(StoreError::NoSuchBatch(_))
    ));
    assert!(matches!(
        store.commit(first.id),
        Err(StoreError::NoSuchBatch(_))
    ));
    assert_eq!(store.get(&key(1, 24)).unwrap(), Some(b"v3-9".to_vec()));
    assert_eq!(store.get(&key(1, 19)).unwrap(), Some(b"v3-4".to_vec()));

    // A block staged on the block just committed stages on the store itself; so does one
    // staged on a twin of it (the same writes staged twice, the other one committed).
    let next = store.stage(child.into(), 4, &block(4)).unwrap();
    let other_next = store.stage(on_tip(&store), 4, &block(4)).unwrap();
    assert_eq!(next.root, other_next.root);
    let twin = store.stage(on_tip(&store), 4, &block(4)).unwrap();
    store.commit(next.id).unwrap();
    let on_twin = store.stage(twin.into(), 5, &block(5)).unwrap();
    assert_eq!(
        on_twin.root,
        store.stage(on_tip(&store), 5, &block(5)).unwrap().root
    );
    // A block staged on a batch whose twin was committed instead commits on the twin.
    let a = store.stage(on_tip(&store), 6, &block(6)).unwrap();
    let child_of_a = store.stage(a.into(), 7, &block(7)).unwrap();
    let twin_of_a = store.stage(on_tip(&store), 6, &block(6)).unwrap();
    store.commit(twin_of_a.id).unwrap();
    let committed = store.commit(child_of_a.id).unwrap();
    assert_eq!(committed.root, child_of_a.root);
    assert_eq!(committed.height, Some(7));
    // Staging on a committed state the store has moved past is refused, not computed on
    // the wrong base.
    assert!(matches!(
        store.stage(Parent::committed(base.root), 9, &block(9)),
        Err(StoreError::BaseMoved { .. })
    ));
    // A parent whose root is not the store's is refused.
    assert!(matches!(
        store.stage(rival.into(), 5, &block(5)),
        Err(StoreError::NoSuchBatch(_))
    ));

    // The same blocks committed one by one in another store give the same roots.
    let other_dir = tempfile::tempdir().unwrap();
    let other = StateStore::open(other_dir.path()).unwrap();
    other.write(1, &block(1)).unwrap();
    assert_eq!(other.write(2, &block(2)).unwrap().root, first.root);
    assert_eq!(other.write(3, &block(3)).unwrap().root, child.root);
}

#[test]
fn a_store_reopens_rolled_back_to_an_earlier_commit() {
    let dir = tempfile::tempdir().unwrap();
    let at_two = {
        let store = StateStore::open(dir.path()).unwrap();
        store.write(1, &block(1)).unwrap();
        let at_two = store.write(2, &block(2)).unwrap();
        store.write(3, &block(3)).unwrap();
        at_two
    };
    let store = StateStore::open_at(dir.path(), Some(at_two.size)).unwrap();
    assert_eq!(store.committed().unwrap(), at_two);
    assert_eq!(
        store.get(&key(1, 15)).unwrap(),
        Some(b"v2-5".to_vec()),
        "block 3's write (v3-0) is gone, block 2's is back"
    );
    assert_eq!(
        store.get(&key(1, 24)).unwrap(),
        None,
        "written by block 3 only"
    );
    // And the chain goes on from there as if block 3 had never been.
    let again = store.write(3, &block(3)).unwrap();
    assert_eq!(again.height, Some(3));
}

#[test]
fn an_entry_larger_than_the_ledger_writes_is_refused_before_anything_is_staged() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut huge = Changes::new();
    huge.insert(key(3, 1), Some(vec![0; MAX_VALUE_BYTES + 1]));
    assert!(matches!(
        store.stage(on_tip(&store), 1, &huge),
        Err(StoreError::TooLarge(_))
    ));
    // The store still works.
    assert_eq!(store.write(1, &block(1)).unwrap().height, Some(1));
}

/// Set in a child process: the directory to write blocks into before dying.
const CRASH_DIR: &str = "VERITY_STORE_CRASH_DIR";

/// In the child: commits blocks 1 to 12, printing each root, then aborts (no drop, no sync:
/// what `kill -9` leaves). In the parent: the reopened store holds the last printed commit.
#[test]
fn a_store_killed_after_a_commit_reopens_at_that_commit_with_its_root() {
    if let Some(dir) = std::env::var_os(CRASH_DIR) {
        let store = StateStore::open(std::path::Path::new(&dir)).unwrap();
        for h in 1..=12u64 {
            let c = store.write(h, &block(h as u32)).unwrap();
            println!("ROOT {h} {} {}", c.root, c.size);
        }
        use std::io::Write as _;
        std::io::stdout().flush().unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_store_killed_after_a_commit_reopens_at_that_commit_with_its_root",
            "--nocapture",
        ])
        .env(CRASH_DIR, dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child was to abort");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let roots: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ROOT "))
        .collect();
    assert_eq!(roots.len(), 12, "{stdout}");
    let field = |h: usize, i: usize| roots[h - 1].split(' ').nth(i).unwrap().to_string();
    let last = field(12, 1);
    // Rolled back to block 10 after the crash (what a node whose database holds only block
    // 10 does), then forward again.
    {
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.committed().unwrap().height, Some(12));
    }
    {
        let size: u64 = field(10, 2).parse().unwrap();
        let store = StateStore::open_at(dir.path(), Some(size)).unwrap();
        let committed = store.committed().unwrap();
        assert_eq!(committed.height, Some(10));
        assert_eq!(committed.root.to_string(), field(10, 1));
        for h in 11..=12u64 {
            let c = store.write(h, &block(h as u32)).unwrap();
            assert_eq!(c.root.to_string(), field(h as usize, 1), "block {h} again");
        }
    }
    let store = StateStore::open(dir.path()).unwrap();
    let committed = store.committed().unwrap();
    assert_eq!(committed.height, Some(12));
    assert_eq!(committed.root.to_string(), last);
    // And it goes on exactly as a store that never crashed.
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = StateStore::open(clean_dir.path()).unwrap();
    for h in 1..=12u64 {
        clean.write(h, &block(h as u32)).unwrap();
    }
    assert_eq!(
        store.write(13, &block(13)).unwrap().root,
        clean.write(13, &block(13)).unwrap().root
    );
}

#[test]
fn pruning_drops_old_operations_and_keeps_the_root_every_value_and_the_last_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    // The same 300 keys rewritten by every block: most of the log is soon inactive.
    let rewrite = |h: u64| -> Changes {
        (0..300)
            .map(|i| (key(1, i), Some(format!("v{h}-{i}").into_bytes())))
            .collect()
    };
    let mut at = Vec::new();
    let mut shrank = false;
    for h in 1..=60u64 {
        at.push(store.write(h, &rewrite(h)).unwrap());
        if h % 20 == 0 {
            let (before, size) = (store.committed().unwrap(), dir_bytes(dir.path()));
            store.prune().unwrap();
            assert_eq!(
                store.committed().unwrap(),
                before,
                "pruning changes nothing seen"
            );
            shrank |= dir_bytes(dir.path()) < size;
        }
    }
    assert!(shrank, "no prune removed anything");
    let k = key(1, 7);
    let proved = store.prove(&k).unwrap().unwrap();
    assert_eq!(proved.value, b"v60-7");
    assert!(verify(&k, &proved.value, &proved.proof, &proved.at.root));
    drop(store);
    // The commit before the last is still there to roll back to.
    let back = &at[58];
    let store = StateStore::open_at(dir.path(), Some(back.size)).unwrap();
    assert_eq!(store.committed().unwrap(), *back);
    assert_eq!(store.write(60, &rewrite(60)).unwrap().root, at[59].root);
}

/// Syncs a new store in `dir` to `target`, each request answered by `answer` (on another
/// thread, as a node fetching from a peer would).
fn sync_with(
    dir: &std::path::Path,
    target: SyncTarget,
    answer: impl Fn(verity_store::SyncRequest) -> Result<Vec<u8>, String> + Send + 'static,
) -> Result<StateStore, StoreError> {
    let (fetch, mut requests) = tokio::sync::mpsc::unbounded_channel::<Fetch>();
    let fetcher = std::thread::spawn(move || {
        while let Some(Fetch { request, reply }) = requests.blocking_recv() {
            let _ = reply.send(answer(request));
        }
    });
    let synced = StateStore::sync(dir, target, fetch);
    fetcher.join().unwrap();
    synced
}

#[test]
fn a_store_synced_from_another_has_its_root_and_state_and_a_liar_cannot_feed_it() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = std::sync::Arc::new(StateStore::open(a.path()).unwrap());
    // Blocks that write, rewrite and delete, with prunes between them: the synced log starts
    // past the source's first operations.
    let mut live: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for h in 1..=40u64 {
        let changes = block(h as u32);
        for (k, v) in &changes {
            match v {
                Some(v) => live.insert(k.clone(), v.clone()),
                None => live.remove(k),
            };
        }
        source.write(h, &changes).unwrap();
        if h % 10 == 0 {
            source.prune().unwrap();
        }
    }
    let point = source.sync_point().unwrap();
    assert!(point.target.lower > 0, "the source was pruned: {point:?}");
    // The state root commits to the log root: a sync can check the target before fetching.
    let root = point.committed.root;
    assert!(verify_ops_root(
        &point.target.ops_root,
        &point.witness,
        &root
    ));
    assert!(!verify_ops_root(&Digest([7; 32]), &point.witness, &root));
    assert!(!verify_ops_root(
        &point.target.ops_root,
        &point.witness,
        &Digest([7; 32])
    ));
    assert!(!verify_ops_root(&point.target.ops_root, b"garbage", &root));
    assert!(source.holds_exactly(&live).is_ok());

    // A liar: every answer altered in one byte. The sync fails; nothing is believed.
    let liar = tempfile::tempdir().unwrap();
    let s = source.clone();
    let lied = sync_with(liar.path(), point.target, move |r| {
        let mut bytes = s.serve_sync(r).map_err(|e| e.to_string())?;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        Ok(bytes)
    });
    assert!(matches!(lied, Err(StoreError::Sync(_))), "{:?}", lied.err());

    // An honest peer: the synced store has the source's root, height and size, and exactly
    // its entries.
    let s = source.clone();
    let synced = sync_with(b.path(), point.target, move |r| {
        s.serve_sync(r).map_err(|e| e.to_string())
    })
    .unwrap();
    assert_eq!(synced.committed().unwrap(), point.committed);
    assert_eq!(synced.active_keys().unwrap(), live.len() as u64);
    assert!(synced.holds_exactly(&live).is_ok());
    // Plain entries that differ from the store's are caught: one missing, one extra, one
    // altered.
    let mut missing = live.clone();
    missing.pop_first();
    assert!(matches!(
        synced.holds_exactly(&missing),
        Err(StoreError::Mismatch(_))
    ));
    let mut extra = live.clone();
    extra.insert(key(9, 1), b"made up".to_vec());
    assert!(matches!(
        synced.holds_exactly(&extra),
        Err(StoreError::Mismatch(_))
    ));
    let mut altered = live.clone();
    *altered.values_mut().next().unwrap() = b"altered".to_vec();
    assert!(matches!(
        synced.holds_exactly(&altered),
        Err(StoreError::Mismatch(_))
    ));
    // A proof from the synced store checks against the source's root.
    let k = live.keys().next().unwrap().clone();
    let proved = synced.prove(&k).unwrap().unwrap();
    assert!(verify(&k, &live[&k], &proved.proof, &point.committed.root));

    // It carries on as the source does, and reopens where it was.
    let next = block(41);
    assert_eq!(
        synced.write(41, &next).unwrap(),
        source.write(41, &next).unwrap()
    );
    let root = synced.committed().unwrap();
    drop(synced);
    assert_eq!(
        StateStore::open(b.path()).unwrap().committed().unwrap(),
        root
    );

    // A request outside the log is refused, not answered.
    let size = source.committed().unwrap().size;
    let beyond = verity_store::SyncRequest::Operations {
        size: size + 10,
        start: 0,
        max_ops: 5,
    };
    assert!(matches!(
        source.serve_sync(beyond),
        Err(StoreError::Unavailable(_))
    ));
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// Large entries (a published program is up to 512 KiB; here 3 MiB each) make a batch of
/// operations large: the server answers with fewer, under its byte budget, and a sync still
/// completes from such answers.
#[test]
fn a_sync_answer_stays_under_its_byte_budget_with_large_entries() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = std::sync::Arc::new(StateStore::open(a.path()).unwrap());
    let big: Changes = (0..8)
        .map(|i| (key(3, i), Some(vec![i as u8; 3 << 20])))
        .collect();
    source.write(1, &big).unwrap();
    let point = source.sync_point().unwrap();
    let answer = source
        .serve_sync(verity_store::SyncRequest::Operations {
            size: point.target.size,
            start: point.target.lower,
            max_ops: 1024,
        })
        .unwrap();
    assert!(
        answer.len() <= verity_store::MAX_SYNC_ANSWER_BYTES,
        "{} bytes",
        answer.len()
    );
    let s = source.clone();
    let synced = sync_with(b.path(), point.target, move |r| {
        s.serve_sync(r).map_err(|e| e.to_string())
    })
    .unwrap();
    assert_eq!(synced.committed().unwrap().root, point.committed.root);
    let live: BTreeMap<Vec<u8>, Vec<u8>> = big.into_iter().map(|(k, v)| (k, v.unwrap())).collect();
    assert!(synced.holds_exactly(&live).is_ok());
}
