//! Jobs, their states and timelines, published programs, and provenance records.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use verity_types::{Address, Digest, JobId, JobRequest, Mode, ProgramHash, StackOutputs, TxId};

#[derive(
    utoipa::ToSchema,
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
pub struct TimelineEntry {
    pub height: u64,
    pub timestamp_ms: u64,
    pub state: JobState,
    pub tx: Option<TxId>,
    pub note: String,
}

/// Who holds a job, at what price, since when, and (for a job with private inputs) whether
/// the client has handed them over.
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
pub struct Lock {
    pub provider: Address,
    /// The auction price at the lock's height: what the job pays if it is delivered.
    pub price: u64,
    pub height: u64,
    /// Private inputs provided to the locker (sealed to its key); `None` while it waits for
    /// them, and always for a job without private inputs.
    pub inputs: Option<ProvidedInputs>,
}

/// The client's hand-over of a job's private inputs to its locker.
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
pub struct ProvidedInputs {
    pub height: u64,
    /// Blake3 of the sealed bytes: the locker checks what it received against it.
    pub sealed_hash: Digest,
}

/// Outputs posted for a job: by its locker, or by a rescuer once the lock deadline passed.
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
pub struct Delivery {
    pub prover: Address,
    pub height: u64,
    pub outputs: StackOutputs,
    /// Proof mode: the blake3 of the verified proof. Optimistic mode: none.
    pub proof_hash: Option<Digest>,
    /// The prover's cycle count (see [`verity_types::TxBody::Fulfil`]).
    pub cycles: u64,
    /// The proof's trace length, read from the verified proof; 0 without a proof.
    pub trace_len: u64,
}

/// A successful challenge: other outputs for the job's statement, with a verified proof.
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
pub struct Correction {
    pub challenger: Address,
    pub height: u64,
    pub outputs: StackOutputs,
    pub proof_hash: Digest,
    pub cycles: u64,
    pub trace_len: u64,
}

/// Where a job is, with exactly the data that phase has: a locked job always has its lock, a
/// fulfilled one its delivery, so no transition has to assume a field is set.
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
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobPhase {
    Submitted,
    Locked {
        lock: Lock,
    },
    /// Optimistic mode: outputs posted with a bond (held in the prover's provider stake),
    /// inside the challenge window.
    Fulfilled {
        lock: Lock,
        delivery: Delivery,
        bond: u64,
    },
    Finalized {
        lock: Lock,
        delivery: Delivery,
    },
    /// Nobody locked it in time (`lock` is `None`), or the lock was released.
    Expired {
        lock: Option<Lock>,
    },
    /// The locker missed the deadline and nobody rescued the job.
    Slashed {
        lock: Lock,
    },
    /// An optimistic delivery proven wrong by a challenger.
    Overturned {
        lock: Lock,
        delivery: Delivery,
        correction: Box<Correction>,
    },
}

impl JobPhase {
    pub fn state(&self) -> JobState {
        match self {
            JobPhase::Submitted => JobState::Submitted,
            JobPhase::Locked { .. } => JobState::Locked,
            JobPhase::Fulfilled { .. } => JobState::Fulfilled,
            JobPhase::Finalized { .. } => JobState::Finalized,
            JobPhase::Expired { .. } => JobState::Expired,
            JobPhase::Slashed { .. } => JobState::Slashed,
            JobPhase::Overturned { .. } => JobState::Overturned,
        }
    }

    pub fn lock(&self) -> Option<&Lock> {
        match self {
            JobPhase::Submitted | JobPhase::Expired { lock: None } => None,
            JobPhase::Expired { lock: Some(lock) }
            | JobPhase::Locked { lock }
            | JobPhase::Fulfilled { lock, .. }
            | JobPhase::Finalized { lock, .. }
            | JobPhase::Slashed { lock }
            | JobPhase::Overturned { lock, .. } => Some(lock),
        }
    }

    pub fn delivery(&self) -> Option<&Delivery> {
        match self {
            JobPhase::Fulfilled { delivery, .. }
            | JobPhase::Finalized { delivery, .. }
            | JobPhase::Overturned { delivery, .. } => Some(delivery),
            _ => None,
        }
    }
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
pub struct Job {
    pub id: JobId,
    pub client: Address,
    /// The MAST root of what is proven: the program, wrapped with Verity's loader when the job
    /// has private inputs.
    pub program_hash: ProgramHash,
    /// The program reads raw advice (unverified hints): only proof mode is allowed, and its
    /// result is proven for *some* hints, not for particular ones.
    pub unverified_hints: bool,
    pub request: JobRequest,
    pub submitted_height: u64,
    /// The client's escrow: `max_price` at submission, paid out exactly once.
    pub escrow: u64,
    /// Blocks the locker waited for the private inputs: its lock and final deadlines move by
    /// this much, so the delivery clock starts when the data is there.
    pub inputs_delay: u64,
    #[serde(flatten)]
    pub phase: JobPhase,
    pub timeline: Vec<TimelineEntry>,
}

impl Job {
    /// A job as a `SubmitJob` transaction creates it: its offer's maximum price in escrow,
    /// nobody on it yet.
    pub fn submitted(
        id: JobId,
        client: Address,
        program_hash: ProgramHash,
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
            inputs_delay: 0,
            phase: JobPhase::Submitted,
            timeline: Vec::new(),
        }
    }

    pub fn state(&self) -> JobState {
        self.phase.state()
    }

    /// The provider that locked the job, if anyone did.
    pub fn locker(&self) -> Option<Address> {
        self.phase.lock().map(|l| l.provider)
    }

    /// The price the job pays its prover: the auction price when it was locked.
    pub fn lock_price(&self) -> Option<u64> {
        self.phase.lock().map(|l| l.price)
    }

    /// Who posted the outputs (the locker, or a rescuer).
    pub fn fulfiller(&self) -> Option<Address> {
        self.phase.delivery().map(|d| d.prover)
    }

    /// What the result on record says: the challenger's correction once a delivery is
    /// overturned, else the delivery (if any). Every accessor below reads it this way.
    fn on_record<'a, T>(
        &'a self,
        delivery: impl FnOnce(&'a Delivery) -> T,
        correction: impl FnOnce(&'a Correction) -> T,
    ) -> Option<T> {
        match &self.phase {
            JobPhase::Overturned { correction: c, .. } => Some(correction(c)),
            phase => phase.delivery().map(delivery),
        }
    }

    /// Who proved (or, optimistic, claimed) the outputs the job stands on, and at what
    /// height: the challenger, once a delivery is overturned.
    pub fn prover(&self) -> Option<(Address, u64)> {
        self.on_record(|d| (d.prover, d.height), |c| (c.challenger, c.height))
    }

    /// The outputs the job stands on: the challenger's once a delivery is overturned.
    pub fn outputs(&self) -> Option<&StackOutputs> {
        self.on_record(|d| &d.outputs, |c| &c.outputs)
    }

    /// The hash of the proof behind `outputs()`, if they were proven.
    pub fn proof_hash(&self) -> Option<Digest> {
        self.on_record(|d| d.proof_hash, |c| Some(c.proof_hash))
            .flatten()
    }

    /// The prover's cycle count for `outputs()` (its word, bounded by the proof).
    pub fn cycles(&self) -> Option<u64> {
        self.on_record(|d| d.cycles, |c| c.cycles)
    }

    /// The trace length of the proof behind `outputs()` (read from the proof; 0 without one).
    pub fn trace_len(&self) -> Option<u64> {
        self.on_record(|d| d.trace_len, |c| c.trace_len)
    }

    /// The optimistic bond at stake now (0 outside the challenge window).
    pub fn bond(&self) -> u64 {
        match self.phase {
            JobPhase::Fulfilled { bond, .. } => bond,
            _ => 0,
        }
    }

    /// The hash of the sealed private inputs the client provided, if it did.
    pub fn sealed_inputs_hash(&self) -> Option<Digest> {
        self.phase
            .lock()
            .and_then(|l| l.inputs.as_ref())
            .map(|i| i.sealed_hash)
    }

    pub fn lock_deadline(&self) -> u64 {
        self.submitted_height + self.request.offer.lock_timeout + self.inputs_delay
    }

    pub fn deadline(&self) -> u64 {
        self.submitted_height + self.request.offer.timeout + self.inputs_delay
    }

    /// Locked, with private inputs the client has not provided yet.
    pub fn awaiting_inputs(&self) -> bool {
        matches!(&self.phase, JobPhase::Locked { lock } if lock.inputs.is_none())
            && self.request.private_inputs.is_some()
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
pub struct PublishedProgram {
    /// The MAST root of the source as written (the key it is stored under).
    pub program_hash: ProgramHash,
    /// The MAST root behind Verity's private-input loader: what a job with private inputs
    /// that names this program proves. `None` if the program cannot take private inputs.
    pub wrapped_hash: Option<ProgramHash>,
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
pub struct Provenance {
    pub job_id: JobId,
    pub state: JobState,
    pub mode: Mode,
    pub client: Address,
    pub program_hash: ProgramHash,
    pub input_hash: Digest,
    pub output_hash: Option<Digest>,
    pub proof_hash: Option<Digest>,
    pub prover: Option<Address>,
    pub price: u64,
    pub submitted_height: u64,
    pub fulfilled_height: Option<u64>,
    pub finished_height: u64,
}
