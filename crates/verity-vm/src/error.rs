use verity_types::{FieldError, HashFunction, ProgramHash};

/// Why a program could not be assembled, run or proved.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// Assembly failed; the message shows the file, line and what was wrong.
    #[error("{0}")]
    Assembly(String),
    #[error("invalid inputs: {0}")]
    Inputs(String),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("program exceeded the cycle limit of {limit} cycles (raise it with --max-cycles)")]
    CycleLimit { limit: u32 },
    #[error("max cycles must be between {min} and {max}, got {got}")]
    BadCycleLimit { got: u32, min: u32, max: u32 },
    #[error("program execution failed: {0}")]
    Execution(String),
    #[error("proving failed: {0}")]
    Proving(String),
    #[error(
        "program expands to {ops} operations once its repeats are unrolled; the limit is {limit}"
    )]
    TooLarge { ops: u64, limit: u64 },
}

/// Why a proof or receipt did not check out. Each variant names the part that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("receipt was made by `{found}`, but this verifier is `{expected}`")]
    VmVersion { found: String, expected: String },
    #[error("proof bytes are malformed: {0}")]
    MalformedProof(String),
    #[error("receipt says the proof uses {claimed}, but the proof itself uses {actual}")]
    HashFunctionMismatch {
        claimed: HashFunction,
        actual: String,
    },
    #[error("receipt claims {claimed}-bit security, but the proof provides only {actual} bits")]
    SecurityMismatch { claimed: u32, actual: u32 },
    #[error("receipt claims a trace of {claimed} rows, but the proof is over {actual}")]
    TraceMismatch { claimed: u64, actual: u64 },
    #[error("receipt claims {cycles} cycles, more than the {trace_len} rows of its proof's trace")]
    CyclesExceedTrace { cycles: u64, trace_len: u64 },
    #[error("{what} is malformed: {why}")]
    PublicValues { what: &'static str, why: String },
    #[error(
        "proof does not verify: it does not attest to program {program_hash} with these stack \
         inputs and outputs (the proof, or one of them, was altered): {detail}"
    )]
    ProofRejected {
        program_hash: ProgramHash,
        detail: String,
    },
    #[error("receipt is for program {receipt}, but the given program assembles to {program}")]
    ProgramMismatch {
        receipt: ProgramHash,
        program: ProgramHash,
    },
    #[error("output stack {actual} does not start with the expected {expected}")]
    OutputMismatch { expected: String, actual: String },
}
