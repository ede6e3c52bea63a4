use verity_types::{Address, Digest};

use crate::state::JobState;

/// Why a transaction was rejected. A rejected transaction changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("signature does not match the signer")]
    BadSignature,
    #[error("transaction is for chain `{got}`, this is `{expected}`")]
    WrongChain { expected: String, got: String },
    #[error("nonce {got} is wrong: the account's next nonce is {expected}")]
    BadNonce { expected: u64, got: u64 },
    #[error("insufficient funds: {needed} needed, {available} available")]
    InsufficientFunds { needed: u64, available: u64 },
    #[error("insufficient free {role} stake: {needed} needed, {available} free")]
    InsufficientStake {
        role: &'static str,
        needed: u64,
        available: u64,
    },
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("unknown job {0}")]
    UnknownJob(Digest),
    #[error("job {job} is {state}; this needs it to be {expected}")]
    WrongState {
        job: Digest,
        state: JobState,
        expected: &'static str,
    },
    #[error("invalid offer: {0}")]
    BadOffer(String),
    #[error("{what} is too large: {size} (limit {limit})")]
    Oversized {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("program does not assemble: {0}")]
    BadProgram(String),
    #[error("invalid inputs: {0}")]
    BadInputs(String),
    #[error("invalid audit: {0}")]
    BadAudit(String),
    #[error("invalid endpoint: {0}")]
    BadEndpoint(String),
    #[error("not eligible to lock: {0}")]
    NotEligible(String),
    #[error(
        "only the locking provider {locker} may fulfil before the lock deadline (block {lock_deadline})"
    )]
    NotLocker { locker: Address, lock_deadline: u64 },
    #[error("deadline passed: {0}")]
    DeadlinePassed(String),
    #[error("a proof is required in proof mode")]
    ProofRequired,
    #[error("optimistic fulfilments carry no proof (challenges do)")]
    ProofNotAllowed,
    #[error("proof rejected: {0}")]
    BadProof(String),
    #[error("the challenge proves the same outputs as the fulfilment")]
    SameOutputs,
    #[error("amount overflows")]
    Overflow,
}

/// Why a whole block was refused (as opposed to one of its transactions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is for chain `{got}`, this is `{expected}`")]
    WrongChain { expected: String, got: String },
    #[error("block height {got} does not follow {current}")]
    WrongHeight { current: u64, got: u64 },
    #[error("block timestamp {got} is before the previous block's {previous}")]
    TimeWentBackwards { previous: u64, got: u64 },
    #[error("block has {got} transactions, more than the limit of {limit}")]
    TooManyTxs { got: usize, limit: usize },
}
