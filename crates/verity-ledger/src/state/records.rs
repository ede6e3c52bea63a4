//! Per-account records: balances, stakes, provider statistics, audit and canary records.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use verity_types::{Digest, Role};

#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Account {
    pub balance: u64,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Unbonding {
    pub role: Role,
    pub amount: u64,
    /// Height at which the amount returns to the balance.
    pub release_height: u64,
}

/// Distinct pending unbonding releases one address may have: an `Unstake` that would add
/// another is refused (one at the same release height merges into it).
pub const MAX_PENDING_UNBONDINGS: usize = 32;

/// An account's stake. Job collateral and optimistic bonds are the `provider_locked` part of
/// `provider`: staked money that cannot be unstaked while a job depends on it.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct StakeInfo {
    pub provider: u64,
    pub provider_locked: u64,
    pub validator: u64,
    pub unbonding: Vec<Unbonding>,
}

impl StakeInfo {
    pub fn provider_free(&self) -> u64 {
        self.provider - self.provider_locked
    }

    pub fn total(&self) -> u64 {
        self.provider + self.validator + self.unbonding.iter().map(|u| u.amount).sum::<u64>()
    }
}

/// What a provider has done, as recorded by the ledger (the raw material of trust profiles).
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct ProviderStats {
    pub locked: u64,
    pub fulfilled: u64,
    pub rescued: u64,
    pub slashed: u64,
    pub overturned: u64,
    /// Sum of lock-to-fulfil latencies, in blocks, over fulfilled jobs.
    pub total_latency_blocks: u64,
    /// Jobs it fulfilled that it had submitted itself (not counted as `fulfilled`).
    pub self_dealt: u64,
    /// Locks of jobs with private inputs released without a verdict: the client never provided
    /// them, or the locker gave the job up saying they were unusable.
    pub released: u64,
    /// The last [`crate::trust::LATENCY_WINDOW`] lock-to-fulfil latencies, oldest first.
    pub recent_latencies: Vec<u64>,
}

/// A validator's commitment to the seed of its canaries in one epoch.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CanaryCommitment {
    pub commitment: Digest,
    pub count: u32,
    pub committed_height: u64,
    pub revealed: bool,
}

/// Revealed canaries a provider answered.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct CanaryRecord {
    /// Delivered in time with the right outputs.
    pub passed: u64,
    /// Proven wrong, or locked and not delivered.
    pub failed: u64,
}

/// A validator's record as an auditor.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct AuditorRecord {
    /// Liveness audits filed.
    pub liveness_audits: u64,
    pub canary_commitments: u64,
    pub canary_reveals: u64,
    /// Canaries revealed that gave a verdict (passed or failed).
    pub canaries_judged: u64,
    /// Canaries nobody locked (no verdict on anyone).
    pub canaries_unpicked: u64,
    /// Canaries whose optimistic result finalized unchallenged while the auditor claimed other
    /// outputs: it neither proved its claim in the window nor was proven wrong. No verdict.
    pub canaries_disputed: u64,
    /// Claims a proof on the ledger contradicted: each reveal with one costs stake.
    pub contradicted: u64,
    /// Validator stake slashed for contradicted audits.
    pub slashed: u64,
}

/// What audits say about one provider's liveness, each probe weighted by the stake of the
/// validator that made it.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct LivenessRecord {
    pub weighted_probes: u128,
    pub weighted_answered: u128,
    /// Audits that covered this provider.
    pub reports: u64,
    /// Median response time in the latest audit that had answers.
    pub last_median_latency_ms: u32,
}
