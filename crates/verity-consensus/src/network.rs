//! Running a validator for real: commonware's tokio runtime on its own threads, authenticated
//! and encrypted p2p over TCP (`lookup`: every validator's address is known up front), and the
//! consensus journal on disk.
//!
//! The node keeps its own tokio runtime for HTTP; the two meet only through [`Chain`] (plain
//! method calls) and the gossip function returned here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use commonware_cryptography::ChaCha20Poly1305;
use commonware_cryptography::ed25519::PublicKey;
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address as PeerAddress, AddressableManager};
use commonware_runtime::{Quota, Runner, Supervisor};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZU32, NZUsize};
use verity_types::{Address, SignedTx};

use crate::chain::Chain;
use crate::error::ConsensusError;
use crate::status::StatusHandle;
use crate::validator::{Channels, MAX_MESSAGE_BYTES, ValidatorConfig, channel, public_key};

/// Where this validator listens and where the others are.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The p2p address to listen on.
    pub listen: SocketAddr,
    /// Every validator's ledger address and p2p address (this one included).
    pub peers: Vec<(Address, SocketAddr)>,
    /// Directory for the consensus journal.
    pub storage_dir: PathBuf,
    pub worker_threads: usize,
}

/// Sends a transaction to the other validators.
pub type Gossip = Arc<dyn Fn(&SignedTx) + Send + Sync>;
/// Sends a note (see `Chain::heard`) to the other validators.
pub type Share = Arc<dyn Fn(Vec<u8>) + Send + Sync>;

/// A validator running on its own runtime. Dropping it stops it.
pub struct RunningValidator {
    pub status: StatusHandle,
    gossip: Gossip,
    share: Share,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningValidator {
    pub fn gossip(&self) -> Gossip {
        self.gossip.clone()
    }

    pub fn share(&self) -> Share {
        self.share.clone()
    }

    /// Stops consensus and waits for its threads to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningValidator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts a validator over TCP. Returns once the p2p network is listening and consensus has
/// started (or with the reason it could not).
pub fn spawn<C: Chain>(
    chain: Arc<C>,
    config: ValidatorConfig,
    net: NetworkConfig,
) -> Result<RunningValidator, ConsensusError> {
    let signer = crate::validator::private_key(&config.app.key)?;
    let peers = peer_map(&net)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Started>();
    let runtime = commonware_runtime::tokio::Config::new()
        .with_storage_directory(net.storage_dir.clone())
        .with_worker_threads(net.worker_threads.max(1));
    let thread = std::thread::Builder::new()
        .name("consensus".into())
        .spawn(move || {
            commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
                let namespace = config.namespace.clone();
                let p2p = lookup::Config::local(
                    Cups::<_, ChaCha20Poly1305>::new(
                        Sake {
                            signer,
                            synchrony_bound: Duration::from_secs(5),
                            max_handshake_age: Duration::from_secs(10),
                            version: sake::Version::V1,
                        },
                        cups::Version::V1,
                    ),
                    &namespace,
                    net.listen,
                    NZUsize!(peers.len().max(1) + 1),
                    MAX_MESSAGE_BYTES,
                    NZUsize!(1024),
                );
                let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p);
                let _ = oracle.track(0, peers);
                let channels = register_channels(|ch, quota| network.register(ch, quota));
                network.start();
                match crate::validator::start(
                    context.child("consensus"),
                    config,
                    chain,
                    channels,
                    oracle,
                ) {
                    Ok((validator, _handle)) => {
                        let status = validator.status.clone();
                        let validator = Arc::new(validator);
                        let to_gossip = validator.clone();
                        let gossip: Gossip = Arc::new(move |tx: &SignedTx| to_gossip.gossip(tx));
                        let share: Share = Arc::new(move |note: Vec<u8>| validator.share(note));
                        let _ = ready_tx.send(Ok((status, gossip, share)));
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| ConsensusError::Start(format!("cannot start the consensus thread: {e}")))?;
    wait_started(&ready_rx, stop_tx, thread)
}

/// Every channel, registered with `register` at its rate limit per peer.
fn register_channels<S, R>(mut register: impl FnMut(u64, Quota) -> (S, R)) -> Channels<S, R> {
    let quota = Quota::per_second(NZU32!(10_000));
    // Notes cost a signature check each: fewer from any one peer.
    let notes_quota = Quota::per_second(NZU32!(256));
    let mut at = |ch: u64| {
        register(
            ch,
            if ch == channel::NOTES {
                notes_quota
            } else {
                quota
            },
        )
    };
    Channels {
        votes: at(channel::VOTES),
        certificates: at(channel::CERTIFICATES),
        resolver: at(channel::RESOLVER),
        blocks: at(channel::BLOCKS),
        sync: at(channel::SYNC),
        txs: at(channel::TXS),
        notes: at(channel::NOTES),
    }
}

/// The validators' p2p keys and addresses.
fn peer_map(net: &NetworkConfig) -> Result<Map<PublicKey, PeerAddress>, ConsensusError> {
    let mut peers = Vec::new();
    for (address, socket) in &net.peers {
        peers.push((public_key(address)?, PeerAddress::from(*socket)));
    }
    Ok(Map::from_iter_dedup(peers))
}

/// What the consensus thread reports once it runs (or why it could not start).
type Started = Result<(StatusHandle, Gossip, Share), ConsensusError>;

/// Waits for the consensus thread to report; joins it if it failed.
fn wait_started(
    ready: &std::sync::mpsc::Receiver<Started>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
) -> Result<RunningValidator, ConsensusError> {
    match ready.recv() {
        Ok(Ok((status, gossip, share))) => Ok(RunningValidator {
            status,
            gossip,
            share,
            stop: Some(stop),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(ConsensusError::Start(
                "consensus failed to start (see the log)".into(),
            ))
        }
    }
}
