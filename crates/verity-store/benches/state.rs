//! The state at scale: per-block cost of executing a block and committing its changes to the
//! state store (QMDB), for one transfer and for 1,000 transfers, at growing account counts;
//! bytes written per block; reopening the store; proof size and verification time.
//!
//! Run: `cargo bench --workspace --profile dev --bench state` (`-- --max 1000000` to stop
//! earlier, `-- --max 10000000` to go further).

use std::path::Path;
use std::time::{Duration, Instant};

use verity_ledger::{BlockHeader, EntryKind, Genesis, GenesisAccount, Params, State, apply_block};
use verity_store::{StateStore, verify};
use verity_types::{Address, Digest, Keypair, SignedTx, Tx, TxBody};

const CHAIN: &str = "bench";
/// Accounts that send (have keys); the rest only receive.
const SENDERS: usize = 1_000;
/// Blocks measured per figure (the median is reported).
const ROUNDS: usize = 9;

fn address(i: u64) -> Address {
    Address(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn genesis(accounts: u64, senders: &[Keypair]) -> Genesis {
    let mut list: Vec<GenesisAccount> = senders
        .iter()
        .map(|k| GenesisAccount {
            address: k.address(),
            balance: 1 << 50,
        })
        .collect();
    list.extend(
        (0..accounts.saturating_sub(senders.len() as u64)).map(|i| GenesisAccount {
            address: address(i),
            balance: 1_000,
        }),
    );
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: list,
        stakes: vec![],
    }
}

struct Chain {
    state: State,
    store: StateStore,
    senders: Vec<Keypair>,
    accounts: u64,
}

/// What one block cost.
struct Cost {
    apply: Duration,
    commit: Duration,
    entries: usize,
    /// The change set's keys and values: what the block asked the store to write.
    bytes: usize,
}

impl Chain {
    fn transfers(&self, n: usize, salt: u64) -> Vec<SignedTx> {
        (0..n)
            .map(|i| {
                let key = &self.senders[i % self.senders.len()];
                let nonce = self.state.accounts[&key.address()].nonce;
                let to = address((salt * 7919 + i as u64 * 104_729) % self.accounts);
                Tx {
                    chain_id: CHAIN.into(),
                    signer: key.address(),
                    nonce,
                    body: TxBody::Transfer { to, amount: 1 },
                }
                .sign(key)
            })
            .collect()
    }

    fn block(&mut self, txs: &[SignedTx]) -> Cost {
        let header = BlockHeader {
            chain_id: CHAIN.into(),
            height: self.state.height + 1,
            timestamp_ms: (self.state.height + 1) * 250,
            parent: Digest::default(),
            proposer: self.senders[0].address(),
        };
        let t = Instant::now();
        let out = apply_block(&mut self.state, &header, txs).unwrap();
        let apply = t.elapsed();
        assert!(out.tx_results.iter().all(Result::is_ok));
        let t = Instant::now();
        self.store.write(header.height, &out.changes).unwrap();
        let commit = t.elapsed();
        let bytes = out
            .changes
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        Cost {
            apply,
            commit,
            entries: out.changes.len(),
            bytes,
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<Cost>) -> Cost {
    v.sort_by_key(|c| c.apply + c.commit);
    v.swap_remove(v.len() / 2)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `disk`: how much the store's files grew per block over the rounds (its log, Merkle nodes
/// and metadata), once the runtime flushed them.
fn row(accounts: u64, what: &str, txs: usize, c: &Cost, disk: u64) {
    let total = c.apply + c.commit;
    println!(
        "| {accounts} | {what} | {} | {} | {} | {} | {} B | {} B | {:.0} |",
        ms(c.apply),
        ms(c.commit),
        ms(total),
        c.entries,
        c.bytes,
        disk,
        txs as f64 / total.as_secs_f64()
    );
}

fn run(accounts: u64, senders: &[Keypair]) {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut state = State::from_genesis(&genesis(accounts, senders)).unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let genesis_changes = state.drain_changes();
    store.write(0, &genesis_changes).unwrap();
    let genesis_time = t.elapsed();
    let mut chain = Chain {
        state,
        store,
        senders: senders.to_vec(),
        accounts,
    };

    let before = dir_bytes(dir.path());
    let one: Vec<Cost> = (0..ROUNDS)
        .map(|r| {
            let txs = chain.transfers(1, r as u64);
            chain.block(&txs)
        })
        .collect();
    let mid = dir_bytes(dir.path());
    let disk = mid.saturating_sub(before) / ROUNDS as u64;
    row(accounts, "1 transfer", 1, &median(one), disk);
    let full: Vec<Cost> = (0..ROUNDS)
        .map(|r| {
            let txs = chain.transfers(SENDERS, 1_000 + r as u64);
            chain.block(&txs)
        })
        .collect();
    let disk = dir_bytes(dir.path()).saturating_sub(mid) / ROUNDS as u64;
    row(accounts, "1,000 transfers", SENDERS, &median(full), disk);

    // What the node still does per block beyond this: the state is cloned to execute a
    // block on (consensus may execute several on one parent).
    let t = Instant::now();
    let copy = chain.state.clone();
    let clone = t.elapsed();
    drop(copy);

    // A proof, and its check, for an account.
    let who = address(accounts / 2);
    let key = EntryKind::Account.store_key(&who.0);
    let proved = chain.store.prove(&key).unwrap().unwrap();
    let t = Instant::now();
    for _ in 0..100 {
        assert!(verify(&key, &proved.value, &proved.proof, &proved.at.root));
    }
    let verify_time = t.elapsed() / 100;

    let size = dir_bytes(dir.path());
    let entries = chain.state.entries();
    drop(chain);
    let t = Instant::now();
    let reopened = StateStore::open(dir.path()).unwrap();
    let reopen = t.elapsed();
    assert!(reopened.get(&key).unwrap().is_some());

    // State sync: a new store rebuilt from this one by QMDB's sync (each batch checked
    // against the log root; answered in process, so this is the store's side of it, without
    // the network), then the plain entries checked against it, as a syncing node does.
    let (sync, operations, check) = sync_from(&reopened, &entries);
    println!(
        "|   | {accounts} accounts: genesis {}, store {:.1} MB, reopen {}, state clone {}, proof {} bytes verified in {} µs, state sync {} ({operations} operations), entries checked in {} |",
        ms(genesis_time),
        size as f64 / 1e6,
        ms(reopen),
        ms(clone),
        proved.proof.len(),
        verify_time.as_micros(),
        ms(sync),
        ms(check)
    );
}

/// Syncs a new store from `source`; how long the sync and the check of `entries` took.
fn sync_from(source: &StateStore, entries: &[(Vec<u8>, Vec<u8>)]) -> (Duration, u64, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let point = source.sync_point().unwrap();
    let t = Instant::now();
    let synced = std::thread::scope(|scope| {
        let (fetch, mut requests) = tokio::sync::mpsc::unbounded_channel::<verity_store::Fetch>();
        scope.spawn(move || {
            while let Some(verity_store::Fetch { request, reply }) = requests.blocking_recv() {
                let _ = reply.send(source.serve_sync(request).map_err(|e| e.to_string()));
            }
        });
        StateStore::sync(dir.path(), point.target, fetch).unwrap()
    });
    let sync = t.elapsed();
    assert_eq!(synced.committed().unwrap().root, point.committed.root);
    let t = Instant::now();
    synced
        .holds_exactly(entries.iter().map(|(k, v)| (k, v)))
        .unwrap();
    (sync, point.target.size - point.target.lower, t.elapsed())
}

fn main() {
    let max: u64 = std::env::args()
        .skip_while(|a| a != "--max")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let senders: Vec<Keypair> = (0..SENDERS)
        .map(|i| Keypair::dev(&format!("sender-{i}")))
        .collect();
    println!(
        "| accounts | block | apply | stage + commit | total | entries | change set | store growth | tx/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut accounts = 10_000;
    while accounts <= max {
        run(accounts, &senders);
        accounts *= 10;
    }
}
