//! Ledger state: accounts, stakes, jobs, provider statistics and provenance records, all in
//! ordered maps so that iteration (and therefore the state root) is deterministic.

mod entries;
mod job;
mod params;
mod records;
mod table;

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use verity_types::{
    Address, AuditReport, DecodeError, Digest, JobId, ProgramHash, ProgramSource, Role,
};

use crate::error::GenesisError;

use entries::enc;
pub use entries::{EntryKind, ReadWatch, RebaseError};
pub use table::{EntrySource, Faults, KeyBytes, MemorySource, SharedSource, Table, store_key};

pub use job::{
    Correction, Delivery, Job, JobPhase, JobState, Lock, Provenance, ProvidedInputs,
    PublishedProgram, TimelineEntry,
};
pub use params::{Genesis, GenesisAccount, GenesisStake, Params};
pub use records::{
    Account, AuditorRecord, CanaryCommitment, CanaryRecord, LivenessRecord, MAX_PENDING_UNBONDINGS,
    ProviderStats, StakeInfo, Unbonding,
};

/// Scheduled deadline checks: `(height, job)` pairs the state machine visits at the start of
/// that block. Stale entries (the job moved on) are simply skipped.
pub type Schedule = Table<{ entries::TAG_SCHEDULE }, (u64, JobId), ()>;

/// Scheduled unbonding releases: `(height, address)` pairs, so a block visits the stakes that
/// release at its height instead of every stake.
pub type Releases = Table<{ entries::TAG_RELEASE }, (u64, Address), ()>;

/// What a block changed, by store key: the new encoding of each entry, `None` for an entry
/// that is gone. Keys are tagged by table (see [`store_key`]); the meta entry is `[0]`.
pub type ChangeSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The version of what [`State::from_genesis`] checks and builds. Bump it with any change to
/// either: a node keeps its genesis id with a digest of the genesis file and this version, to
/// skip building a large genesis at each restart, so a restart under new rules builds (and
/// checks) the genesis again instead of trusting the id an older build computed.
pub const GENESIS_RULES: u32 = 1;

/// The shortest `Params::job_retention` a genesis may set: a validator reveals an epoch's
/// canaries up to `CANARY_REVEAL_EPOCHS` epochs after it ends, and its reveal is judged on the
/// canary jobs, which must still be in the state. Canaries look like any job, so no job may
/// retire sooner.
pub const MIN_JOB_RETENTION: u64 =
    (crate::trust::CANARY_REVEAL_EPOCHS + 1) * crate::trust::AUDIT_EPOCH_BLOCKS;

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
    pub accounts: Table<{ entries::TAG_ACCOUNT }, Address, Account>,
    pub stakes: Table<{ entries::TAG_STAKE }, Address, StakeInfo>,
    pub jobs: Table<{ entries::TAG_JOB }, JobId, Job>,
    pub providers: Table<{ entries::TAG_PROVIDER }, Address, ProviderStats>,
    pub provenance: Table<{ entries::TAG_PROVENANCE }, JobId, Provenance>,
    pub schedule: Schedule,
    pub releases: Releases,
    /// Where each provider can be probed (its latest `Announce`).
    pub endpoints: Table<{ entries::TAG_ENDPOINT }, Address, String>,
    /// Stake-weighted liveness per provider, summed over every audit.
    pub liveness: Table<{ entries::TAG_LIVENESS }, Address, LivenessRecord>,
    /// Every audit filed, by (epoch, auditor): the history behind `liveness`.
    pub audits: Table<{ entries::TAG_AUDIT }, (u64, Address), AuditReport>,
    /// Canary commitments, by (epoch, auditor), and whether each was revealed.
    pub canary_commits: Table<{ entries::TAG_CANARY_COMMIT }, (u64, Address), CanaryCommitment>,
    /// Canary verdicts per provider, from revealed canaries.
    pub canaries: Table<{ entries::TAG_CANARY }, Address, CanaryRecord>,
    /// What each validator's audits amounted to, including audits proofs contradicted.
    pub auditors: Table<{ entries::TAG_AUDITOR }, Address, AuditorRecord>,
    /// Published programs, by the hash of the source as written.
    pub programs: Table<{ entries::TAG_PROGRAM }, ProgramHash, PublishedProgram>,
    /// Inline program sources of the jobs in the state, once per source (by its BLAKE3
    /// digest): a thousand jobs of one program hold one copy.
    pub sources: Table<{ entries::TAG_SOURCE }, Digest, String>,
    /// How many jobs in the state name each stored source. Apart from the source, so that a
    /// job more or fewer rewrites a count, not the source.
    pub source_jobs: Table<{ entries::TAG_SOURCE_JOBS }, Digest, u64>,
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
            timestamp_ms: g.genesis_time_ms,
            validators: g.validators(),
            ..State::empty()
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
        if p.job_retention < MIN_JOB_RETENTION {
            return Err(GenesisError(format!(
                "job_retention must be at least {MIN_JOB_RETENTION} blocks: a canary reveal may come that long after its jobs were submitted, and must find them"
            )));
        }
        if largest > p.max_block_assembly_ops {
            return Err(GenesisError(format!(
                "the largest admissible program takes {largest} operations to assemble, more than a block's max_block_assembly_ops ({})",
                p.max_block_assembly_ops
            )));
        }
        Ok(s)
    }

    /// No chain, no entries: what genesis and stored entries fill in.
    fn empty() -> State {
        State {
            chain_id: String::new(),
            params: Params::default(),
            height: 0,
            timestamp_ms: 0,
            genesis_supply: 0,
            burned: 0,
            fees_burned: 0,
            validators: BTreeSet::new(),
            accounts: Table::new(),
            stakes: Table::new(),
            jobs: Table::new(),
            providers: Table::new(),
            provenance: Table::new(),
            schedule: Table::new(),
            releases: Table::new(),
            endpoints: Table::new(),
            liveness: Table::new(),
            audits: Table::new(),
            canary_commits: Table::new(),
            canaries: Table::new(),
            auditors: Table::new(),
            programs: Table::new(),
            sources: Table::new(),
            source_jobs: Table::new(),
        }
    }

    /// The source of a job request's program: inline, stored once for its jobs, or
    /// published. `None` if the ledger does not hold it (a program never published).
    pub fn program_source<'a>(&'a self, program: &'a ProgramSource) -> Option<&'a str> {
        match program {
            ProgramSource::Inline(source) => Some(source),
            ProgramSource::Stored(digest) => self.sources.get(digest).map(String::as_str),
            ProgramSource::Published(hash) => self.programs.get(hash).map(|p| p.source.as_str()),
        }
    }

    /// `job` as its client submitted it: an inline source the state holds once for all its
    /// jobs is put back in the request (what the API serves and a node archives).
    pub fn as_submitted(&self, job: &Job) -> Job {
        let mut job = job.clone();
        if let ProgramSource::Stored(digest) = &job.request.program
            && let Some(source) = self.sources.get(digest)
        {
            job.request.program = ProgramSource::Inline(source.clone());
        }
        job
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
