//! Why consensus could not start, commit or accept a block.

use verity_types::Address;

/// Why a validator could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// A validator or peer address that is not an ed25519 public key.
    #[error("{address} is not an ed25519 key: {reason}")]
    BadKey { address: Address, reason: String },
    #[error("bad validator key: {0}")]
    BadSigner(String),
    #[error("{0} is not in the validator set")]
    NotAValidator(Address),
    /// The runtime, the network or the engine failed to start (the reason says which).
    #[error("{0}")]
    Start(String),
}

/// Why a finalized block could not be committed: consensus stops there (the committer retries),
/// since every later block builds on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("block {height} does not extend the committed tip")]
    NotOnTip { height: u64 },
    #[error("block {height} does not apply: {reason}")]
    Invalid { height: u64, reason: String },
    #[error("block {height} was verified to a different outcome")]
    Diverged { height: u64 },
    /// The node could not make the block durable.
    #[error("storage: {0}")]
    Storage(String),
    /// The block writes an entry larger than the store takes: the block's fault, not the
    /// store's (every node would refuse it alike).
    #[error("{0}")]
    Oversized(String),
}

/// The state store failed: the block is not durable.
impl From<verity_store::StoreError> for CommitError {
    fn from(e: verity_store::StoreError) -> CommitError {
        match e {
            verity_store::StoreError::TooLarge(_) => CommitError::Oversized(e.to_string()),
            e => CommitError::Storage(e.to_string()),
        }
    }
}

/// Why a proposed block is invalid (the validator does not vote for it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBlock(pub String);
