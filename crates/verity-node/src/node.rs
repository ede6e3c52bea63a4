//! The node core: the current state, the mempool, storage and the event stream, and
//! `commit`, the one door through which blocks enter.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::broadcast;
use tracing::{info, warn};
use verity_ledger::{BlockHeader, BlockOutcome, Event, Genesis, State};
use verity_types::{Address, Digest, SignedTx, TxBody};

use crate::mempool::{AdmitError, Mempool};
use crate::storage::{Storage, StoredBlock, TxOutcome};

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub genesis: Genesis,
    pub block_interval_ms: u64,
    pub mempool_limit: usize,
    pub max_tx_bytes: usize,
}

impl NodeConfig {
    pub fn new(data_dir: PathBuf, genesis: Genesis) -> NodeConfig {
        NodeConfig {
            data_dir,
            genesis,
            block_interval_ms: 250,
            mempool_limit: 10_000,
            max_tx_bytes: 1024 * 1024,
        }
    }
}

pub struct Node {
    pub config: NodeConfig,
    storage: Storage,
    state: RwLock<Arc<State>>,
    mempool: Mutex<Mempool>,
    events: broadcast::Sender<Event>,
    heartbeats: Mutex<BTreeMap<Address, u64>>,
    /// Transactions taken from the mempool for a block that is not committed yet; they still
    /// count as pending for anyone asking.
    inflight: Mutex<std::collections::BTreeSet<Digest>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data itself is still consistent because
    // every mutation here is a single assignment or a bounded queue operation.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Opens the node's database, resuming from the last committed block, or starting from
    /// genesis on first run.
    pub fn open(config: NodeConfig) -> anyhow::Result<Arc<Node>> {
        let storage = Storage::open(&config.data_dir)?;
        let state = match storage.load_state()? {
            Some(state) => {
                if state.chain_id != config.genesis.chain_id {
                    anyhow::bail!(
                        "the database in {} is for chain `{}`, not `{}`",
                        config.data_dir.display(),
                        state.chain_id,
                        config.genesis.chain_id
                    );
                }
                info!(
                    height = state.height,
                    "resuming from the last committed block"
                );
                state
            }
            None => State::from_genesis(&config.genesis)
                .map_err(|e| anyhow::anyhow!("invalid genesis: {e}"))?,
        };
        let (events, _) = broadcast::channel(4096);
        Ok(Arc::new(Node {
            mempool: Mutex::new(Mempool::new(config.mempool_limit, config.max_tx_bytes)),
            config,
            storage,
            state: RwLock::new(Arc::new(state)),
            events,
            heartbeats: Mutex::new(BTreeMap::new()),
            inflight: Mutex::new(Default::default()),
        }))
    }

    /// A snapshot of the current state (cheap: shared, immutable).
    pub fn state(&self) -> Arc<State> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn submit(&self, tx: SignedTx) -> Result<Digest, AdmitError> {
        let state = self.state();
        lock(&self.mempool).admit(tx, &state)
    }

    pub fn mempool_len(&self) -> usize {
        lock(&self.mempool).len()
    }

    pub fn mempool_contains(&self, id: &Digest) -> bool {
        lock(&self.inflight).contains(id) || lock(&self.mempool).contains(id)
    }

    pub fn next_nonce(&self, who: &Address) -> u64 {
        let state = self.state();
        lock(&self.mempool).next_nonce(&state, who)
    }

    /// Takes transactions for the next block, oldest first.
    pub fn take_txs(&self, max: usize) -> Vec<SignedTx> {
        let mut inflight = lock(&self.inflight);
        let txs = lock(&self.mempool).take(max);
        inflight.extend(txs.iter().map(SignedTx::id));
        txs
    }

    pub fn record_heartbeat(&self, who: Address, height: u64) {
        lock(&self.heartbeats).insert(who, height);
    }

    /// The height a provider last announced itself at.
    pub fn last_seen(&self, who: &Address) -> Option<u64> {
        lock(&self.heartbeats).get(who).copied()
    }

    /// Providers seen within the last `window` blocks.
    pub fn providers_online(&self, window: u64) -> usize {
        let h = self.state().height;
        lock(&self.heartbeats)
            .values()
            .filter(|seen| h.saturating_sub(**seen) <= window)
            .count()
    }

    /// Applies an ordered block and makes it durable before anyone can see it. This is the seam
    /// between ordering (a block producer, later consensus) and execution (the ledger).
    /// CPU-heavy (it verifies proofs): call it from a blocking thread.
    pub fn commit(&self, header: BlockHeader, txs: Vec<SignedTx>) -> anyhow::Result<BlockOutcome> {
        let result = self.commit_inner(header, txs);
        // Only now, with the block durable and the state swapped (or the block abandoned), do
        // its transactions stop counting as pending.
        lock(&self.inflight).clear();
        result
    }

    fn commit_inner(
        &self,
        header: BlockHeader,
        txs: Vec<SignedTx>,
    ) -> anyhow::Result<BlockOutcome> {
        let mut next = (*self.state()).clone();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let outcome = verity_ledger::apply_block_parallel(&mut next, &header, &txs, threads)?;

        let mut outcomes = Vec::with_capacity(txs.len());
        let mut blobs = Vec::new();
        for (tx, result) in txs.iter().zip(&outcome.tx_results) {
            let error = result.as_ref().err().map(|e| e.to_string());
            if let Some(e) = &error {
                warn!(tx = %tx.id().short(), signer = %tx.tx.signer.short(), "transaction rejected: {e}");
            }
            if result.is_ok() {
                // Keep accepted proofs addressable by hash, for receipts.
                match &tx.tx.body {
                    TxBody::Fulfil { proof: Some(p), .. } | TxBody::Challenge { proof: p, .. } => {
                        blobs.push((Digest::blake3(p), p.clone()));
                    }
                    _ => {}
                }
            }
            outcomes.push((
                tx.id(),
                TxOutcome {
                    height: header.height,
                    error,
                },
            ));
        }
        let block = StoredBlock {
            header: header.clone(),
            txs,
            state_root: outcome.state_root,
        };
        self.storage
            .commit_block(&block, &next, &outcomes, &blobs)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        for event in &outcome.events {
            info!(height = event.height, job = %event.job_id.short(), state = %event.state, "{}", event.note);
            let _ = self.events.send(event.clone());
        }
        Ok(outcome)
    }
}
