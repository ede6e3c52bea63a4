//! The Verity daemon: crash-safe storage, mempool, block production, the HTTP API, and the
//! validator's auditor. (The provider worker is `verity-provider`: it talks to a node only over
//! the API.)
//!
//! Data flows one way: API → mempool → block producer → `Node::commit` (ledger + storage) →
//! events → API. The node knows nothing of auction rules (the ledger does); the ledger knows
//! nothing of networks or clocks (the node does).

pub mod api;
pub mod auditor;
pub mod canary;
mod chain;
pub mod clock;
pub mod devnet;
pub mod entropy;
mod error;
mod explorer;
pub mod handle;
pub mod heartbeat;
pub mod mempool;
pub mod metrics;
pub mod node;
pub mod prober;
pub mod producer;
pub mod storage;
pub mod sync;

#[cfg(feature = "mocks")]
pub use auditor::AuditorFault;
pub use auditor::{AuditorConfig, run_auditor};
pub use entropy::Entropy;
pub use error::{NodeError, StorageError};
pub use handle::NodeHandle;
pub use node::{Node, NodeConfig};
pub use producer::{BlockProducer, SoloProducer, produce_block, run_producer};
pub use sync::{SyncError, Synced, sync_from};

use std::net::SocketAddr;
use std::sync::Arc;

use verity_types::Keypair;

/// A running node: its API address and a way to stop it.
pub struct RunningNode {
    pub node: Arc<Node>,
    pub addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    consensus: Option<verity_consensus::RunningValidator>,
}

impl RunningNode {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A receiver that fires when the node stops (for workers tied to its lifetime).
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Runs a worker (a provider, say) for as long as this node: `worker` gets the node's
    /// shutdown signal, and the node waits for it when it stops.
    pub fn spawn_worker<W, F>(&mut self, worker: W)
    where
        W: FnOnce(tokio::sync::watch::Receiver<bool>) -> F,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let rx = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(worker(rx)));
    }

    /// Starts the auditor against this node (validators do): re-execution sampling and
    /// liveness probes (`auditor`), canary jobs (`canary`).
    pub fn spawn_auditor(&mut self, cfg: AuditorConfig) {
        let counters = std::sync::Arc::new(auditor::AuditorCounters::default());
        let (view, rate) = (counters.clone(), cfg.sample_per_10k);
        self.node.attach_auditor(move || view.view(rate));
        let rx = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(prober::run_prober(
            self.node.clone(),
            prober::HttpPinger::new(),
            cfg.clone(),
            counters.clone(),
            rx.clone(),
        )));
        self.tasks.push(tokio::spawn(canary::run_canaries(
            self.node.clone(),
            cfg.clone(),
            counters.clone(),
            rx.clone(),
        )));
        self.tasks.push(tokio::spawn(run_auditor(
            self.node.clone(),
            cfg,
            counters,
            rx,
        )));
    }

    pub async fn stop(mut self) {
        if let Some(consensus) = self.consensus.take() {
            // Joins the consensus threads: not on the async executor.
            let _ = tokio::task::spawn_blocking(move || consensus.stop()).await;
        }
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            // Long-lived connections (event streams) would hold a graceful shutdown open
            // forever: give tasks a moment to finish, then stop them.
            let abort = t.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

/// Opens the node, binds the API on `listen`, and starts producing blocks with `validator`
/// (a single-producer network: the devnet, or a one-validator chain).
pub async fn start(
    config: NodeConfig,
    listen: SocketAddr,
    validator: Keypair,
) -> Result<RunningNode, NodeError> {
    let node = Node::open(config)?;
    let mut running = serve(node.clone(), listen).await?;
    let rx = running.shutdown.subscribe();
    running.tasks.push(tokio::spawn(run_producer(
        node,
        SoloProducer::new(validator),
        rx,
    )));
    Ok(running)
}

/// Opens the node, binds the API on `listen`, and joins a BFT network as validator `key`:
/// the validator set is the genesis validators, reached at the addresses in `network`.
pub async fn start_validator(
    config: NodeConfig,
    listen: SocketAddr,
    key: Keypair,
    network: verity_consensus::NetworkConfig,
) -> Result<RunningNode, NodeError> {
    let validators = genesis_validators(&config.genesis);
    if !validators.contains(&key.address()) {
        let all: Vec<String> = validators.iter().map(|a| a.to_string()).collect();
        return Err(NodeError::NotAValidator(key.address(), all.join(", ")));
    }
    if let Some(v) = validators
        .iter()
        .find(|v| !network.peers.iter().any(|(a, _)| a == *v))
    {
        return Err(NodeError::MissingPeer(*v));
    }
    let chain_id = config.genesis.chain_id.clone();
    let block_interval = std::time::Duration::from_millis(config.block_interval_ms);
    let node = Node::open(config)?;
    let mut running = serve(node.clone(), listen).await?;
    let app = verity_consensus::AppConfig::new(key, block_interval);
    let cfg = verity_consensus::ValidatorConfig::new(app, validators, &chain_id);
    let chain = node.clone();
    let validator =
        tokio::task::spawn_blocking(move || verity_consensus::spawn(chain, cfg, network)).await??;
    node.attach_consensus(validator.status.clone(), validator.gossip());
    node.attach_share(validator.share());
    running.consensus = Some(validator);
    Ok(running)
}

/// The validator set: every genesis account staked as a validator.
pub fn genesis_validators(genesis: &verity_ledger::Genesis) -> Vec<verity_types::Address> {
    let set: std::collections::BTreeSet<_> = genesis
        .stakes
        .iter()
        .filter(|s| s.role == verity_types::Role::Validator && s.amount > 0)
        .map(|s| s.address)
        .collect();
    set.into_iter().collect()
}

async fn serve(node: Arc<Node>, listen: SocketAddr) -> Result<RunningNode, NodeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| NodeError::Listen {
        addr: listen,
        source,
    })?;
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let app = api::router(node.clone());
    let mut api_rx = rx.clone();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = api_rx.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!("API server failed: {e}");
        }
    }));
    Ok(RunningNode {
        node,
        addr,
        shutdown,
        tasks,
        consensus: None,
    })
}
