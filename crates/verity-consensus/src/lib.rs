//! BFT consensus glue: orders Verity blocks with commonware's simplex and feeds the ledger.
//!
//! Each validator runs a simplex engine (votes signed with its ed25519 key, the same key as its
//! ledger address) over authenticated p2p. When it leads a view it builds a block from its
//! mempool on the parent consensus names; otherwise it re-executes the proposed block
//! (signatures, Miden proofs, every ledger rule) before voting for it. Finalized blocks are
//! applied to the [`Chain`] in height order, fetching any the node missed from its peers.
//!
//! Nothing here knows about HTTP, storage engines or the auction rules: the node implements
//! [`Chain`], the ledger decides what a block does.

mod app;
/// Byzantine validators for tests (`mocks` feature only).
#[cfg(feature = "mocks")]
pub mod byzantine;
pub mod certificate;
mod chain;
mod error;
mod network;
mod status;
mod validator;

#[cfg(feature = "mocks")]
pub use app::Fault;
pub use app::{AppConfig, MAX_BLOCK_BYTES, address_of};
pub use chain::{Chain, Executed, MemoryChain, Tip};
pub use error::{CommitError, ConsensusError, InvalidBlock};
pub use network::{Gossip, NetworkConfig, RunningValidator, Share, spawn};
pub use status::{ConsensusStatus, RECENT_VIEWS, STALL_AFTER_MS, StatusHandle, Voter};
pub use validator::{
    Channels, MAX_MESSAGE_BYTES, MAX_NOTE_BYTES, Validator, ValidatorConfig, channel, public_key,
    start,
};
