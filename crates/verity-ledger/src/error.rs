use verity_types::{Address, JobId, ProgramHash};

use crate::state::JobState;

/// Why a transaction was rejected.
///
/// The first group ([`TxError::invalidates_block`]) means the transaction could not be
/// included at all: it changes nothing, and a block carrying one is invalid. Any other error
/// is a rejection of what the transaction asked for: its fee is paid and its nonce consumed
/// (so it can never execute later), and nothing else changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("cannot pay the fee: {fee} needed, {available} available")]
    CannotPayFee { fee: u64, available: u64 },
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
    #[error("{limit} unbondings are already pending; wait for one to be released")]
    TooManyUnbondings { limit: usize },
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    #[error("job {job} is {state}; this needs it to be {expected}")]
    WrongState {
        job: JobId,
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
    #[error("no program {0} is published")]
    UnknownProgram(ProgramHash),
    #[error("program {0} is already published")]
    AlreadyPublished(ProgramHash),
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
    #[error("cycle count rejected: {0}")]
    BadCycles(String),
    #[error("the challenge proves the same outputs as the fulfilment")]
    SameOutputs,
    #[error("the fulfiller cannot challenge its own result")]
    SelfChallenge,
    #[error("only the consensus validator set may {0}")]
    NotValidator(&'static str),
    #[error("amount overflows")]
    Overflow,
}

impl TxError {
    /// A short, fixed name for the kind of failure (a metrics label: bounded, no data).
    pub fn reason(&self) -> &'static str {
        match self {
            TxError::CannotPayFee { .. } => "cannot_pay_fee",
            TxError::BadSignature => "bad_signature",
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::BadNonce { .. } => "bad_nonce",
            TxError::InsufficientFunds { .. } => "insufficient_funds",
            TxError::InsufficientStake { .. } => "insufficient_stake",
            TxError::ZeroAmount => "zero_amount",
            TxError::TooManyUnbondings { .. } => "too_many_unbondings",
            TxError::UnknownJob(_) => "unknown_job",
            TxError::WrongState { .. } => "wrong_state",
            TxError::BadOffer(_) => "bad_offer",
            TxError::Oversized { .. } => "oversized",
            TxError::UnknownProgram(_) => "unknown_program",
            TxError::AlreadyPublished(_) => "already_published",
            TxError::BadProgram(_) => "bad_program",
            TxError::BadInputs(_) => "bad_inputs",
            TxError::BadAudit(_) => "bad_audit",
            TxError::BadEndpoint(_) => "bad_endpoint",
            TxError::NotEligible(_) => "not_eligible",
            TxError::NotLocker { .. } => "not_locker",
            TxError::DeadlinePassed(_) => "deadline_passed",
            TxError::ProofRequired => "proof_required",
            TxError::ProofNotAllowed => "proof_not_allowed",
            TxError::BadProof(_) => "bad_proof",
            TxError::BadCycles(_) => "bad_cycles",
            TxError::SameOutputs => "same_outputs",
            TxError::SelfChallenge => "self_challenge",
            TxError::NotValidator(_) => "not_validator",
            TxError::Overflow => "overflow",
        }
    }

    /// Whether this failure means the transaction could never have been included (wrong
    /// chain, bad signature, wrong nonce, unpayable fee, over a size limit): including it is
    /// the proposer's fault, and validators refuse the block.
    pub fn invalidates_block(&self) -> bool {
        matches!(
            self,
            TxError::BadSignature
                | TxError::WrongChain { .. }
                | TxError::BadNonce { .. }
                | TxError::CannotPayFee { .. }
                | TxError::Oversized { .. }
        )
    }
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
    #[error("block's transactions take {got} bytes, more than the limit of {limit}")]
    TooManyBytes { got: usize, limit: usize },
    #[error("block's programs take {got} operations to assemble, more than the limit of {limit}")]
    TooMuchAssembly { got: u64, limit: u64 },
    /// The store the state reads from failed a read while the block was applied: the outcome
    /// is not to be trusted, whatever the block. This node's failure, not the block's: it
    /// says nothing of the block's validity, and the block may be executed again.
    #[error("the state could not be read to apply the block: {0}")]
    StateUnreadable(String),
}

impl BlockError {
    /// Whether this says the block is invalid (every node would refuse it), rather than that
    /// this node could not execute it.
    pub fn is_verdict(&self) -> bool {
        !matches!(self, BlockError::StateUnreadable(_))
    }
}

/// Why a genesis config cannot start a chain (the message names the entry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid genesis: {0}")]
pub struct GenesisError(pub String);
