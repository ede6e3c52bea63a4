//! Verity's deterministic state machine.
//!
//! `apply_block(state, header, txs)` is a pure function of its arguments: no clocks (time is
//! the header's height and timestamp), no randomness, no floating point, no hash-map iteration
//! (every map is ordered: `BTreeMap`, or the tables' persistent ordered maps). Every node that
//! applies the same blocks reaches the same state and the same state root.
//!
//! The job lifecycle is `Submitted → Locked → Fulfilled → Finalized`, with `Expired`,
//! `Slashed` and `Overturned` as the other terminal states; see `docs/ARCHITECTURE.md`.

mod admission;
mod apply;
mod block;
mod error;
mod state;
pub mod trust;

pub use admission::{ASSEMBLY_BASE_OPS, Admissible, assembly_ops, fee_of, precheck};
pub use apply::{BlockHeader, BlockOutcome, Event, ProofCache, apply_block, apply_block_parallel};
pub use block::{Block, SealedBlock, genesis_block_id};
pub use error::{BlockError, GenesisError, TxError};
pub use state::{
    Account, AuditorRecord, CanaryCommitment, CanaryRecord, ChangeSet, Correction, Delivery,
    EntryKind, EntrySource, Faults, GENESIS_RULES, Genesis, GenesisAccount, GenesisStake, Job,
    JobPhase, JobState, KeyBytes, Lock, MAX_PENDING_UNBONDINGS, MIN_JOB_RETENTION, MemorySource,
    Params, Provenance, ProvidedInputs, ProviderStats, PublishedProgram, ReadWatch, RebaseError,
    SharedSource, StakeInfo, State, Table, TimelineEntry, Unbonding, store_key,
};
pub use trust::TrustProfile;
