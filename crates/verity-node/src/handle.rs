//! What the validator's background auditors (re-execution, liveness, canaries) need from a
//! node, as one trait. In production they run against the in-process [`Node`]; tests drive
//! the same code against a node whose blocks they produce by hand (see [`crate::producer`]),
//! so an audit epoch runs in milliseconds and the same seed gives the same run.

use std::sync::Arc;

use tokio::sync::broadcast;
use verity_ledger::{Event, State};
use verity_types::{BlockId, Keypair, SignedTx, TxBody, TxId};

use crate::error::StorageError;
use crate::mempool::AdmitError;
use crate::node::Node;

pub trait NodeHandle: Send + Sync + 'static {
    /// The committed state.
    fn state(&self) -> Arc<State>;
    /// The id of the committed block at `height`, if there is one.
    fn block_id(&self, height: u64) -> Result<Option<BlockId>, StorageError>;
    /// Job events of every block committed from now on.
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    fn submit(&self, tx: SignedTx) -> Result<TxId, AdmitError>;
    /// Signs `body` with `key` at the signer's next nonce (pending transactions counted) and
    /// admits it.
    fn sign_and_submit(&self, key: &Keypair, body: TxBody) -> Result<TxId, AdmitError>;
    fn mempool_contains(&self, id: &TxId) -> bool;
    /// A secret the node keeps for its operator (canary seeds), by name.
    fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;
    fn put_secret(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError>;
    /// The chain's target block interval (offers are sized from it).
    fn block_interval_ms(&self) -> u64;
}

impl NodeHandle for Node {
    fn state(&self) -> Arc<State> {
        Node::state(self)
    }

    fn block_id(&self, height: u64) -> Result<Option<BlockId>, StorageError> {
        Ok(self.storage().block(height)?.map(|b| b.to_block().id()))
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        Node::subscribe(self)
    }

    fn submit(&self, tx: SignedTx) -> Result<TxId, AdmitError> {
        Node::submit(self, tx)
    }

    fn sign_and_submit(&self, key: &Keypair, body: TxBody) -> Result<TxId, AdmitError> {
        Node::sign_and_submit(self, key, body)
    }

    fn mempool_contains(&self, id: &TxId) -> bool {
        Node::mempool_contains(self, id)
    }

    fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.storage().secret(name)
    }

    fn put_secret(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.storage().put_secret(name, bytes)
    }

    fn block_interval_ms(&self) -> u64 {
        self.config.block_interval_ms
    }
}
