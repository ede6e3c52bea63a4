//! Ledger state: accounts, stakes, jobs, provider statistics and provenance records, all in
//! ordered maps so that iteration (and therefore the state root) is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use verity_types::merkle::{InclusionProof, leaf_hash, root};
use verity_types::{Address, AuditReport, Digest, JobRequest, Mode, Role, StackOutputs};

/// Chain parameters, fixed at genesis. A genesis file may name only some; the rest default.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(default)]
pub struct Params {
    /// Blocks an optimistic fulfilment waits for a challenge before it finalizes.
    pub challenge_window: u64,
    /// Blocks unstaked funds wait before they return to the balance.
    pub unbonding_period: u64,
    /// Largest program source a job may carry inline, in bytes.
    pub max_program_bytes: u32,
    /// Largest program source that may be published (`PublishProgram`), in bytes.
    pub max_published_program_bytes: u32,
    /// Largest program that may be published, in MAST nodes once unrolled (see
    /// `max_program_nodes`). Publishing assembles it twice (as written and behind the
    /// private-input loader), so twice this must fit `max_block_assembly_ops`.
    pub max_published_program_nodes: u32,
    /// Largest proof accepted, in bytes.
    pub max_proof_bytes: u32,
    /// Highest cycle cap a job may ask for.
    pub max_job_cycles: u32,
    /// Longest a job may run (`offer.timeout`), in blocks.
    pub max_job_timeout: u64,
    /// Most transactions per block.
    pub max_block_txs: u32,
    /// Most bytes of encoded transactions per block.
    pub max_block_bytes: u32,
    /// Fee every included transaction pays, accepted or rejected (burned).
    pub fee_base: u64,
    /// Fee per started KiB of the encoded transaction (pays for gossip, storage, assembly).
    pub fee_per_kib: u64,
    /// Fee for a transaction that makes every validator verify a STARK proof.
    pub fee_per_proof: u64,
    /// Largest program a job may expand to after assembly, in MAST nodes (`repeat.N` copies
    /// its body N times): bounds what one `SubmitJob` costs every validator to assemble.
    pub max_program_nodes: u32,
    /// Blocks a locker waits for a job's private inputs; then the lock is released and the
    /// client pays the locker the offer's `min_price` for the wasted lock.
    pub private_inputs_timeout: u64,
    /// Most assembly work per block, in operations (`admission::assembly_ops` summed over its
    /// `SubmitJob`s): bounds the time every validator spends assembling one block's programs.
    pub max_block_assembly_ops: u64,
}

impl Params {
    /// The fee of a transaction of `size` encoded bytes doing `body`. Integer arithmetic;
    /// saturates rather than wraps (a fee above every balance simply cannot be paid).
    pub fn fee(&self, body: &verity_types::TxBody, size: usize) -> u64 {
        use verity_types::TxBody;
        let kib = (size as u64).div_ceil(1024);
        let proofs = match body {
            TxBody::Fulfil { proof: Some(_), .. } | TxBody::Challenge { .. } => 1,
            _ => 0,
        };
        self.fee_base
            .saturating_add(self.fee_per_kib.saturating_mul(kib))
            .saturating_add(self.fee_per_proof.saturating_mul(proofs))
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            challenge_window: 20,
            unbonding_period: 100,
            max_program_bytes: 64 * 1024,
            // A compiled CNN is ~210 KiB, ~360 KiB with committed weights; base64 in an API
            // request adds a third, under the API's 2 MiB body limit.
            max_published_program_bytes: 512 * 1024,
            // Twice this plus the base cost fits `max_block_assembly_ops`: a publication that
            // could never fit a block would block the mempool's queue behind it.
            max_published_program_nodes: (1 << 17) - 1024,
            max_proof_bytes: 512 * 1024,
            max_job_cycles: 1 << 22,
            max_job_timeout: 100_000,
            max_block_txs: 10_000,
            max_block_bytes: 4 * 1024 * 1024,
            // A transfer costs 2, a fulfilment with a ~100 KiB proof ~111: small next to job
            // prices, large next to the free spam they replace.
            fee_base: 1,
            fee_per_kib: 1,
            fee_per_proof: 10,
            max_program_nodes: 1 << 16,
            private_inputs_timeout: 40,
            max_block_assembly_ops: 1 << 18,
        }
    }
}

#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Account {
    pub balance: u64,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Unbonding {
    pub role: Role,
    pub amount: u64,
    /// Height at which the amount returns to the balance.
    pub release_height: u64,
}

/// An account's stake. Job collateral and optimistic bonds are the `provider_locked` part of
/// `provider`: staked money that cannot be unstaked while a job depends on it.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
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

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Submitted,
    Locked,
    /// Optimistic mode: outputs posted with a bond, inside the challenge window.
    Fulfilled,
    Finalized,
    Expired,
    Slashed,
    Overturned,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Finalized | JobState::Expired | JobState::Slashed | JobState::Overturned
        )
    }

    pub const ALL: [JobState; 7] = [
        JobState::Submitted,
        JobState::Locked,
        JobState::Fulfilled,
        JobState::Finalized,
        JobState::Expired,
        JobState::Slashed,
        JobState::Overturned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobState::Submitted => "submitted",
            JobState::Locked => "locked",
            JobState::Fulfilled => "fulfilled",
            JobState::Finalized => "finalized",
            JobState::Expired => "expired",
            JobState::Slashed => "slashed",
            JobState::Overturned => "overturned",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        JobState::ALL
            .into_iter()
            .find(|j| j.name() == s)
            .ok_or_else(|| format!("unknown job state `{s}`"))
    }
}

/// One step of a job's history: what happened, when, and which transaction caused it (none
/// for deadline transitions, which the state machine makes by itself).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub height: u64,
    pub timestamp_ms: u64,
    pub state: JobState,
    pub tx: Option<Digest>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Job {
    pub id: Digest,
    pub client: Address,
    /// The MAST root of what is proven: the program, wrapped with Verity's loader when the job
    /// has private inputs.
    pub program_hash: Digest,
    /// The program reads raw advice (unverified hints): only proof mode is allowed, and its
    /// result is proven for *some* hints, not for particular ones.
    pub unverified_hints: bool,
    pub request: JobRequest,
    pub submitted_height: u64,
    pub state: JobState,
    /// The client's escrow: `max_price` at submission, paid out exactly once.
    pub escrow: u64,
    pub locker: Option<Address>,
    pub lock_price: u64,
    pub locked_height: Option<u64>,
    /// Who posted the outputs (the locker, or a rescuer).
    pub fulfiller: Option<Address>,
    pub fulfilled_height: Option<u64>,
    pub outputs: Option<StackOutputs>,
    pub proof_hash: Option<Digest>,
    /// Optimistic mode: the fulfiller's bond, held in its provider stake.
    pub bond: u64,
    /// Private inputs: the height the client provided them to the locker (sealed to its key),
    /// and the hash of what it sent; `None` while the locker waits for them.
    pub inputs_provided_height: Option<u64>,
    pub sealed_inputs_hash: Option<Digest>,
    /// Blocks the locker waited for the private inputs: its lock and final deadlines move by
    /// this much, so the delivery clock starts when the data is there.
    pub inputs_delay: u64,
    pub timeline: Vec<TimelineEntry>,
}

impl Job {
    pub fn lock_deadline(&self) -> u64 {
        self.submitted_height + self.request.offer.lock_timeout + self.inputs_delay
    }

    pub fn deadline(&self) -> u64 {
        self.submitted_height + self.request.offer.timeout + self.inputs_delay
    }

    /// Locked, with private inputs the client has not provided yet.
    pub fn awaiting_inputs(&self) -> bool {
        self.state == JobState::Locked
            && self.request.private_inputs.is_some()
            && self.inputs_provided_height.is_none()
    }

    /// Blake3 of the public inputs' canonical encoding (and the private-input commitment).
    pub fn input_hash(&self) -> Digest {
        let bytes = borsh::to_vec(&(&self.request.stack_inputs, &self.request.private_inputs))
            .expect("encoding to a Vec cannot fail");
        Digest::blake3(&bytes)
    }

    /// The public stack inputs a proof of this job is checked against: the private-input
    /// commitment first (when there is one), then the job's own public inputs.
    pub fn proof_inputs(&self) -> Vec<u64> {
        verity_vm::job_stack_inputs(
            &self.request.stack_inputs,
            self.request.private_inputs.as_ref(),
        )
    }
}

/// A program published on the ledger (`PublishProgram`), named by its hash in jobs.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct PublishedProgram {
    /// The MAST root of the source as written (the key it is stored under).
    pub program_hash: Digest,
    /// The MAST root behind Verity's private-input loader: what a job with private inputs
    /// that names this program proves. `None` if the program cannot take private inputs.
    pub wrapped_hash: Option<Digest>,
    /// The first raw advice read (unverified hint) in the source, as "`instruction` on line
    /// N", if it has any: jobs naming it run in proof mode only.
    pub advice_read: Option<String>,
    pub expanded_ops: u64,
    pub publisher: Address,
    pub published_height: u64,
    pub source: String,
}

/// What a provider has done, as recorded by the ledger (the raw material of trust profiles).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
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

/// A finished job's provenance: enough to say which program ran on which inputs, what it
/// output, who proved it, at what price and when — provable against the state root.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Provenance {
    pub job_id: Digest,
    pub state: JobState,
    pub mode: Mode,
    pub client: Address,
    pub program_hash: Digest,
    pub input_hash: Digest,
    pub output_hash: Option<Digest>,
    pub proof_hash: Option<Digest>,
    pub prover: Option<Address>,
    pub price: u64,
    pub submitted_height: u64,
    pub fulfilled_height: Option<u64>,
    pub finished_height: u64,
}

/// Scheduled deadline checks: `(height, job)` pairs the state machine visits at the start of
/// that block. Stale entries (the job moved on) are simply skipped.
pub type Schedule = BTreeSet<(u64, Digest)>;

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
    pub jobs: BTreeMap<Digest, Job>,
    pub providers: BTreeMap<Address, ProviderStats>,
    pub provenance: BTreeMap<Digest, Provenance>,
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
    pub programs: BTreeMap<Digest, PublishedProgram>,
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
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    pub address: Address,
    pub balance: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisStake {
    pub address: Address,
    pub role: Role,
    pub amount: u64,
}

/// The initial state, as a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    #[serde(default)]
    pub genesis_time_ms: u64,
    #[serde(default)]
    pub params: Params,
    pub accounts: Vec<GenesisAccount>,
    #[serde(default)]
    pub stakes: Vec<GenesisStake>,
}

impl Genesis {
    /// The consensus validator set: every address staked as a validator at genesis.
    pub fn validators(&self) -> BTreeSet<Address> {
        self.stakes
            .iter()
            .filter(|s| s.role == Role::Validator && s.amount > 0)
            .map(|s| s.address)
            .collect()
    }
}

// Table tags in state keys: a proof for one table cannot stand for another.
const TAG_META: u8 = 0;
const TAG_ACCOUNT: u8 = 1;
const TAG_STAKE: u8 = 2;
const TAG_JOB: u8 = 3;
const TAG_PROVIDER: u8 = 4;
const TAG_PROVENANCE: u8 = 5;
const TAG_SCHEDULE: u8 = 6;
const TAG_ENDPOINT: u8 = 7;
const TAG_LIVENESS: u8 = 8;
const TAG_AUDIT: u8 = 9;
const TAG_CANARY_COMMIT: u8 = 10;
const TAG_CANARY: u8 = 11;
const TAG_AUDITOR: u8 = 12;
const TAG_PROGRAM: u8 = 13;

fn key(tag: u8, id: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(tag);
    k.extend_from_slice(id);
    k
}

fn enc<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("encoding to a Vec cannot fail")
}

impl State {
    /// Builds the genesis state, checking the config.
    pub fn from_genesis(g: &Genesis) -> Result<State, String> {
        if g.chain_id.is_empty() || g.chain_id.len() > 64 {
            return Err("chain_id must be 1 to 64 characters".into());
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
                .ok_or("balances overflow")?;
            supply = supply.checked_add(a.balance).ok_or("supply overflows")?;
        }
        for st in &g.stakes {
            let stake = s.stakes.entry(st.address).or_default();
            let slot = match st.role {
                Role::Provider => &mut stake.provider,
                Role::Validator => &mut stake.validator,
            };
            *slot = slot.checked_add(st.amount).ok_or("stake overflows")?;
            supply = supply.checked_add(st.amount).ok_or("supply overflows")?;
            s.accounts.entry(st.address).or_default();
        }
        s.genesis_supply = supply;
        let p = &s.params;
        let largest = u64::from(p.max_published_program_nodes)
            .saturating_mul(2)
            .max(u64::from(p.max_program_nodes))
            .saturating_add(crate::admission::ASSEMBLY_BASE_OPS);
        if largest > p.max_block_assembly_ops {
            return Err(format!(
                "the largest admissible program takes {largest} operations to assemble, more than a block's max_block_assembly_ops ({})",
                p.max_block_assembly_ops
            ));
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

    pub fn from_bytes(bytes: &[u8]) -> Result<State, String> {
        borsh::from_slice(bytes).map_err(|e| format!("not a valid state encoding: {e}"))
    }

    fn meta_value(&self) -> Vec<u8> {
        enc(&(
            &self.chain_id,
            &self.params,
            self.height,
            self.timestamp_ms,
            self.genesis_supply,
            self.burned,
            self.fees_burned,
            &self.validators,
        ))
    }

    /// All state entries as `(key, value)` in canonical order.
    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(
            1 + self.accounts.len()
                + self.stakes.len()
                + self.jobs.len()
                + self.providers.len()
                + self.provenance.len()
                + 1,
        );
        out.push((vec![TAG_META], self.meta_value()));
        out.extend(
            self.accounts
                .iter()
                .map(|(a, v)| (key(TAG_ACCOUNT, &a.0), enc(v))),
        );
        out.extend(
            self.stakes
                .iter()
                .map(|(a, v)| (key(TAG_STAKE, &a.0), enc(v))),
        );
        out.extend(
            self.jobs
                .iter()
                .map(|(id, v)| (key(TAG_JOB, &id.0), enc(v))),
        );
        out.extend(
            self.providers
                .iter()
                .map(|(a, v)| (key(TAG_PROVIDER, &a.0), enc(v))),
        );
        out.extend(
            self.provenance
                .iter()
                .map(|(id, v)| (key(TAG_PROVENANCE, &id.0), enc(v))),
        );
        out.push((vec![TAG_SCHEDULE], enc(&self.schedule)));
        out.extend(
            self.endpoints
                .iter()
                .map(|(a, v)| (key(TAG_ENDPOINT, &a.0), enc(v))),
        );
        out.extend(
            self.liveness
                .iter()
                .map(|(a, v)| (key(TAG_LIVENESS, &a.0), enc(v))),
        );
        out.extend(self.audits.iter().map(|((epoch, auditor), v)| {
            let mut k = vec![TAG_AUDIT];
            k.extend_from_slice(&epoch.to_be_bytes());
            k.extend_from_slice(&auditor.0);
            (k, enc(v))
        }));
        out.extend(self.canary_commits.iter().map(|((epoch, auditor), v)| {
            let mut k = vec![TAG_CANARY_COMMIT];
            k.extend_from_slice(&epoch.to_be_bytes());
            k.extend_from_slice(&auditor.0);
            (k, enc(v))
        }));
        out.extend(
            self.canaries
                .iter()
                .map(|(a, v)| (key(TAG_CANARY, &a.0), enc(v))),
        );
        out.extend(
            self.auditors
                .iter()
                .map(|(a, v)| (key(TAG_AUDITOR, &a.0), enc(v))),
        );
        out.extend(
            self.programs
                .iter()
                .map(|(h, v)| (key(TAG_PROGRAM, &h.0), enc(v))),
        );
        out
    }

    fn leaves(&self) -> Vec<[u8; 32]> {
        self.entries()
            .iter()
            .map(|(k, v)| leaf_hash(k, v))
            .collect()
    }

    /// The Merkle root over every state entry.
    pub fn state_root(&self) -> Digest {
        root(&self.leaves())
    }

    /// A provenance record with its inclusion proof against [`State::state_root`].
    pub fn provenance_proof(&self, job_id: &Digest) -> Option<(Provenance, InclusionProof)> {
        let record = self.provenance.get(job_id)?.clone();
        let index = 1
            + self.accounts.len()
            + self.stakes.len()
            + self.jobs.len()
            + self.providers.len()
            + self.provenance.range(..*job_id).count();
        Some((record, InclusionProof::build(&self.leaves(), index)))
    }
}

impl Provenance {
    /// Checks this record against a state root (a light client's whole job).
    pub fn verify_inclusion(&self, state_root: &Digest, proof: &InclusionProof) -> bool {
        proof.verify(state_root, &key(TAG_PROVENANCE, &self.job_id.0), &enc(self))
    }
}
