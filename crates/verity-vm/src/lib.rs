//! Miden VM glue: assemble, execute, prove and verify programs; make and check receipts.
//!
//! Every call into Miden lives in this crate, behind plain non-generic functions with one
//! concrete host. Miden's processor and prover are generic and monomorphised where they are
//! called, so keeping the calls here means an edit anywhere else in Verity does not recompile
//! the prover, and a Miden upgrade touches one crate.
//!
//! The API is synchronous: proving is CPU-bound and may take seconds to minutes. Async callers
//! must move it to a blocking thread (`tokio::task::spawn_blocking`).

mod error;
pub mod examples;
mod inputs;
mod job;
mod program;
mod prove;
mod shape;

pub use error::{VerifyError, VmError};
pub use inputs::{AdviceData, Inputs, MerkleData};
pub use job::{
    JobProgram, MAX_PRIVATE_WORDS, PRIVATE_INPUT_SLOTS, PRIVATE_INPUTS_ADDR, Publication,
    assemble_job, assemble_publication, check_private, check_private_words, commit_private,
    commitment_in_stack, committed_entry, job_inputs, job_stack_inputs, prepare,
};
pub use program::Program;
pub use prove::{
    DEFAULT_MAX_CYCLES, Execution, MAX_MAX_CYCLES, MIN_MAX_CYCLES, PROVABLE_HASHES, ProveOptions,
    ProveStage, Verified, baseline_miden_prove, execute, execute_outputs, observe_verifications,
    prove, prove_with_progress, receipt_from_proof, verify_proof, verify_receipt,
};
pub use shape::{AdviceRead, ProgramShape, inspect};

/// The VM that makes and checks proofs, as written into receipts.
pub const VM_VERSION: &str = "miden-vm 0.23.5";
