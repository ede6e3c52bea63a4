//! Ledger state: accounts, stakes, jobs, provider statistics and provenance records, all in
//! ordered maps so that iteration (and therefore the state root) is deterministic.

mod job;
mod params;
mod records;
mod root;

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use verity_types::{Address, AuditReport, DecodeError, JobId, ProgramHash, Role};

use crate::error::GenesisError;

use root::enc;
pub use root::{EntryKind, verify_entry};

pub use job::{
    Correction, Delivery, Job, JobPhase, JobState, Lock, Provenance, ProvidedInputs,
    PublishedProgram, TimelineEntry,
};
pub use params::{Genesis, GenesisAccount, GenesisStake, Params};
pub use records::{
    Account, AuditorRecord, CanaryCommitment, CanaryRecord, LivenessRecord, ProviderStats,
    StakeInfo, Unbonding,
};

/// Scheduled deadline checks: `(height, job)` pairs the state machine visits at the start of
/// that block. Stale entries (the job moved on) are simply skipped.
pub type Schedule = BTreeSet<(u64, JobId)>;

/// The whole ledger state.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct State {
    pub chain_id: String,
    pub params: Params,
    /// Height of the last applied block (0 = genesis).
    pub height: u64,
    pub timestamp_ms: u64,
    /// Supply at genesis. Invariant: `total_held() + burned == genesis_supply`.
    pub genesis_supply: u64,
    /// Everything burned: slashes, challenge burns, fees (fees also counted in `fees_burned`).
    pub burned: u64,
    pub fees_burned: u64,
    /// The consensus validator set, fixed at genesis: only these audit, commit to canaries or
    /// hold validator stake.
    pub validators: BTreeSet<Address>,
    pub accounts: BTreeMap<Address, Account>,
    pub stakes: BTreeMap<Address, StakeInfo>,
    pub jobs: BTreeMap<JobId, Job>,
    pub providers: BTreeMap<Address, ProviderStats>,
    pub provenance: BTreeMap<JobId, Provenance>,
    pub schedule: Schedule,
    /// Where each provider can be probed (its latest `Announce`).
    pub endpoints: BTreeMap<Address, String>,
    /// Stake-weighted liveness per provider, summed over every audit.
    pub liveness: BTreeMap<Address, LivenessRecord>,
    /// Every audit filed, by (epoch, auditor): the history behind `liveness`.
    pub audits: BTreeMap<(u64, Address), AuditReport>,
    /// Canary commitments, by (epoch, auditor), and whether each was revealed.
    pub canary_commits: BTreeMap<(u64, Address), CanaryCommitment>,
    /// Canary verdicts per provider, from revealed canaries.
    pub canaries: BTreeMap<Address, CanaryRecord>,
    /// What each validator's audits amounted to, including audits proofs contradicted.
    pub auditors: BTreeMap<Address, AuditorRecord>,
    /// Published programs, by the hash of the source as written.
    pub programs: BTreeMap<ProgramHash, PublishedProgram>,
}

impl State {
    /// Builds the genesis state, checking the config.
    pub fn from_genesis(g: &Genesis) -> Result<State, GenesisError> {
        if g.chain_id.is_empty() || g.chain_id.len() > 64 {
            return Err(GenesisError("chain_id must be 1 to 64 characters".into()));
        }
        let mut s = State {
            chain_id: g.chain_id.clone(),
            params: g.params.clone(),
            height: 0,
            timestamp_ms: g.genesis_time_ms,
            genesis_supply: 0,
            burned: 0,
            fees_burned: 0,
            validators: g.validators(),
            accounts: BTreeMap::new(),
            stakes: BTreeMap::new(),
            jobs: BTreeMap::new(),
            providers: BTreeMap::new(),
            provenance: BTreeMap::new(),
            schedule: BTreeSet::new(),
            endpoints: BTreeMap::new(),
            liveness: BTreeMap::new(),
            audits: BTreeMap::new(),
            canary_commits: BTreeMap::new(),
            canaries: BTreeMap::new(),
            auditors: BTreeMap::new(),
            programs: BTreeMap::new(),
        };
        let mut supply: u64 = 0;
        for a in &g.accounts {
            let acct = s.accounts.entry(a.address).or_default();
            acct.balance = acct
                .balance
                .checked_add(a.balance)
                .ok_or_else(|| GenesisError("balances overflow".into()))?;
            supply = supply
                .checked_add(a.balance)
                .ok_or_else(|| GenesisError("supply overflows".into()))?;
        }
        for st in &g.stakes {
            let stake = s.stakes.entry(st.address).or_default();
            let slot = match st.role {
                Role::Provider => &mut stake.provider,
                Role::Validator => &mut stake.validator,
            };
            *slot = slot
                .checked_add(st.amount)
                .ok_or_else(|| GenesisError("stake overflows".into()))?;
            supply = supply
                .checked_add(st.amount)
                .ok_or_else(|| GenesisError("supply overflows".into()))?;
            s.accounts.entry(st.address).or_default();
        }
        s.genesis_supply = supply;
        let p = &s.params;
        let largest = u64::from(p.max_published_program_nodes)
            .saturating_mul(2)
            .max(u64::from(p.max_program_nodes))
            .saturating_add(crate::admission::ASSEMBLY_BASE_OPS);
        if largest > p.max_block_assembly_ops {
            return Err(GenesisError(format!(
                "the largest admissible program takes {largest} operations to assemble, more than a block's max_block_assembly_ops ({})",
                p.max_block_assembly_ops
            )));
        }
        Ok(s)
    }

    /// Everything the ledger holds for someone: balances, stakes (including locked collateral
    /// and unbonding), and job escrows.
    pub fn total_held(&self) -> u128 {
        let balances: u128 = self.accounts.values().map(|a| u128::from(a.balance)).sum();
        let stakes: u128 = self.stakes.values().map(|s| u128::from(s.total())).sum();
        let escrows: u128 = self.jobs.values().map(|j| u128::from(j.escrow)).sum();
        balances + stakes + escrows
    }

    /// Canonical encoding of the whole state (for snapshots and determinism checks).
    pub fn to_bytes(&self) -> Vec<u8> {
        enc(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<State, DecodeError> {
        borsh::from_slice(bytes).map_err(|e| DecodeError::new("state", e))
    }
}
