//! Jobs, their states and timelines, published programs, and provenance records.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use verity_types::{Address, Digest, JobId, JobRequest, Mode, StackOutputs, TxId};

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
    pub tx: Option<TxId>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
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
    /// A job as a `SubmitJob` transaction creates it: its offer's maximum price in escrow,
    /// nobody on it yet.
    pub fn submitted(
        id: JobId,
        client: Address,
        program_hash: Digest,
        unverified_hints: bool,
        request: JobRequest,
        height: u64,
    ) -> Job {
        Job {
            id,
            client,
            program_hash,
            unverified_hints,
            escrow: request.offer.max_price,
            request,
            submitted_height: height,
            state: JobState::Submitted,
            locker: None,
            lock_price: 0,
            locked_height: None,
            fulfiller: None,
            fulfilled_height: None,
            outputs: None,
            proof_hash: None,
            bond: 0,
            inputs_provided_height: None,
            sealed_inputs_hash: None,
            inputs_delay: 0,
            timeline: Vec::new(),
        }
    }

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

/// A finished job's provenance: enough to say which program ran on which inputs, what it
/// output, who proved it, at what price and when — provable against the state root.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Provenance {
    pub job_id: JobId,
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
