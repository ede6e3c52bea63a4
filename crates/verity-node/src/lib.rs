//! The Verity daemon: crash-safe storage, mempool, block production, the HTTP API, and the
//! provider worker.
//!
//! Data flows one way: API → mempool → block producer → `Node::commit` (ledger + storage) →
//! events → API. The node knows nothing of auction rules (the ledger does); the ledger knows
//! nothing of networks or clocks (the node does).

pub mod api;
pub mod devnet;
pub mod mempool;
pub mod node;
pub mod producer;
pub mod provider;
pub mod storage;

pub use node::{Node, NodeConfig};
pub use producer::{BlockProducer, SoloProducer, run_producer};
pub use provider::{Provider, ProviderConfig};

use std::net::SocketAddr;
use std::sync::Arc;

use verity_types::Keypair;

/// A running node: its API address and a way to stop it.
pub struct RunningNode {
    pub node: Arc<Node>,
    pub addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningNode {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A receiver that fires when the node stops (for workers tied to its lifetime).
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Starts a provider worker against this node.
    pub fn spawn_provider(&mut self, cfg: ProviderConfig) {
        let rx = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(Provider::new(cfg).run(rx)));
    }

    pub async fn stop(self) {
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

/// Opens the node, binds the API on `listen`, and starts producing blocks with `validator`.
pub async fn start(
    config: NodeConfig,
    listen: SocketAddr,
    validator: Keypair,
) -> anyhow::Result<RunningNode> {
    let node = Node::open(config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
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
    tasks.push(tokio::spawn(run_producer(
        node.clone(),
        SoloProducer::new(validator),
        rx,
    )));
    Ok(RunningNode {
        node,
        addr,
        shutdown,
        tasks,
    })
}
