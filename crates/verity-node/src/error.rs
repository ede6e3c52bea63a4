//! The node's errors: what the binary reports when a node cannot start, and what a storage
//! failure is.

use std::path::PathBuf;

use verity_types::Address;

/// The database failed (the reason is redb's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

impl StorageError {
    pub(crate) fn of(e: impl std::fmt::Display) -> StorageError {
        StorageError(e.to_string())
    }
}

/// Why a node could not start or commit a block.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Genesis(#[from] verity_ledger::GenesisError),
    #[error(transparent)]
    StateStore(#[from] verity_store::StoreError),
    #[error(
        "the state store in {dir} is at height {store}, the blocks at {blocks}: start from a \
         fresh data directory"
    )]
    StoreMismatch {
        dir: PathBuf,
        store: String,
        blocks: u64,
    },
    #[error("the database in {dir} is for chain `{found}`, not `{expected}`")]
    WrongChain {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "the database in {dir} was started from another genesis (its first block follows \
         {found}; this genesis gives {expected}): pass the genesis file the network started \
         with, or use a new --dir"
    )]
    WrongGenesis {
        dir: PathBuf,
        found: verity_types::BlockId,
        expected: verity_types::BlockId,
    },
    #[error(transparent)]
    Commit(#[from] verity_consensus::CommitError),
    #[error("{0} is not a validator in the genesis (validators: {1})")]
    NotAValidator(Address, String),
    #[error("the peers file has no address for genesis validator {0}")]
    MissingPeer(Address),
    #[error("cannot start consensus: {0}")]
    Consensus(#[from] verity_consensus::ConsensusError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
