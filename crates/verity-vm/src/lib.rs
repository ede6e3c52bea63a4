//! Miden VM glue: assemble, execute, prove and verify programs; make and check receipts.
//!
//! Every call into Miden lives in this crate, behind plain non-generic functions with one
//! concrete host. Miden's processor and prover are generic and monomorphised where they are
//! called, so keeping the calls here means an edit anywhere else in Verity does not recompile
//! the prover, and a Miden upgrade touches one crate.
//!
//! Proving and execution sit behind the `prover` feature (on for the node, provider and CLI):
//! without it the crate assembles, inspects and verifies, which is all a ledger or an SDK
//! needs, and builds without Miden's prover.
//!
//! The API is synchronous: proving is CPU-bound and may take seconds to minutes. Async callers
//! must move it to a blocking thread (`tokio::task::spawn_blocking`).

mod error;
pub mod examples;
mod inputs;
mod job;
mod program;
#[cfg(feature = "prover")]
mod prove;
mod shape;
mod verify;

pub use error::{VerifyError, VmError};
pub use inputs::{AdviceData, Inputs, MerkleData};
pub use job::{
    JobProgram, MAX_PRIVATE_WORDS, PRIVATE_COMMITMENT_ADDR, PRIVATE_INPUT_SLOTS,
    PRIVATE_INPUTS_ADDR, Publication, assemble_job, assemble_publication, check_private,
    check_private_words, commit_private, commitment_in_stack, committed_entry, job_inputs,
    job_stack_inputs, merge_words, prepare,
};
pub use program::Program;
#[cfg(feature = "prover")]
pub use prove::{
    Execution, PROVABLE_HASHES, ProveOptions, ProveStage, TraceRows, baseline_miden_prove, execute,
    execute_outputs, prove, prove_with_progress,
};
pub use shape::{AdviceRead, ProgramShape, inspect};
pub use verify::{
    Verified, observe_verifications, receipt_from_proof, verify_proof, verify_receipt,
};

/// The VM that makes and checks proofs, as written into receipts.
pub const VM_VERSION: &str = "miden-vm 0.23.5";

/// Default cycle cap: 2^20 cycles. Proving 2^20 cycles needs ~10 GB of memory, so the cap keeps
/// one job within a 24 GB machine; a job may ask for more explicitly.
pub const DEFAULT_MAX_CYCLES: u32 = 1 << 20;
/// The smallest cycle cap Miden accepts (its minimum trace length).
pub const MIN_MAX_CYCLES: u32 = 64;
/// The largest cycle cap Miden accepts: 2^29.
pub const MAX_MAX_CYCLES: u32 = miden_processor::ExecutionOptions::MAX_CYCLES;
