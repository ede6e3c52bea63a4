//! Transactions: what accounts ask the ledger to do, signed and replay-protected.
//!
//! The canonical encoding is borsh (deterministic, length-prefixed): a transaction's id and
//! the bytes it signs are both derived from it, so every node agrees on both.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::crypto::{Address, Keypair, Signature};
use crate::digest::Digest;
use crate::ids::{JobId, ProgramHash, TxId};
use crate::outputs::StackOutputs;

/// Domain separator for transaction signatures: a signature over a Verity transaction can
/// never be replayed as a signature over anything else.
const TX_SIGNING_DOMAIN: &[u8] = b"verity/tx/v1";

/// What stake is for.
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
pub enum Role {
    /// Locks jobs; per-job collateral and optimistic bonds are drawn from provider stake.
    Provider,
    /// Runs consensus and audits providers.
    Validator,
}

/// How a result is checked.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The fulfilment carries a STARK proof, verified inside the state transition.
    Proof,
    /// The fulfilment carries outputs and a bond; it finalizes after the challenge window
    /// unless someone proves different outputs.
    Optimistic,
}

/// A reverse Dutch auction. Heights are relative to the block that included the job.
///
/// The price is `min_price` until `ramp_start`, rises linearly to `max_price` over
/// `ramp_period` blocks, then stays there until `lock_timeout`. After `lock_timeout` nobody
/// may lock; a locked job may be fulfilled by anyone (rescued) until `timeout`.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Offer {
    pub min_price: u64,
    pub max_price: u64,
    pub ramp_start: u64,
    pub ramp_period: u64,
    pub lock_timeout: u64,
    pub timeout: u64,
    /// Provider stake locked while the job is held; slashed if the provider misses the
    /// deadline. Also the bond of an optimistic fulfilment.
    pub collateral: u64,
}

impl Offer {
    /// The auction price `elapsed` blocks after submission. Integer arithmetic only.
    pub fn price_at(&self, elapsed: u64) -> u64 {
        if elapsed < self.ramp_start {
            return self.min_price;
        }
        let into_ramp = elapsed - self.ramp_start;
        if self.ramp_period == 0 || into_ramp >= self.ramp_period {
            return self.max_price;
        }
        let spread = u128::from(self.max_price - self.min_price);
        self.min_price + (spread * u128::from(into_ramp) / u128::from(self.ramp_period)) as u64
    }

    /// Checks the offer's shape (as Boundless does): `min ≤ max`, the ramp ends by the lock
    /// deadline, and the lock deadline is no later than the final deadline.
    pub fn validate(&self) -> Result<(), InvalidOffer> {
        if self.min_price > self.max_price {
            return Err(InvalidOffer(format!(
                "min_price {} is above max_price {}",
                self.min_price, self.max_price
            )));
        }
        let ramp_end = self
            .ramp_start
            .checked_add(self.ramp_period)
            .ok_or_else(|| InvalidOffer("ramp overflows".into()))?;
        if ramp_end > self.lock_timeout {
            return Err(InvalidOffer(format!(
                "the price ramp ends at block {ramp_end}, after lock_timeout {}",
                self.lock_timeout
            )));
        }
        if self.lock_timeout == 0 {
            return Err(InvalidOffer("lock_timeout must be at least 1 block".into()));
        }
        if self.lock_timeout > self.timeout {
            return Err(InvalidOffer(format!(
                "lock_timeout {} is after timeout {}",
                self.lock_timeout, self.timeout
            )));
        }
        Ok(())
    }
}

/// Why an offer is malformed (the message names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidOffer(pub String);

/// Bytes that are not the canonical encoding of what they were read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what} encoding: {reason}")]
pub struct DecodeError {
    pub what: &'static str,
    pub reason: String,
}

impl DecodeError {
    pub fn new(what: &'static str, reason: impl std::fmt::Display) -> DecodeError {
        DecodeError {
            what,
            reason: reason.to_string(),
        }
    }
}

/// A commitment to a job's private inputs: the data never goes on the ledger, but the proof
/// is bound to it.
///
/// The data is a list of field elements, zero-padded to whole words (4 elements). The
/// commitment is Miden's native hash (Poseidon2) of the padded data. For such a job the
/// ledger proves a wrapped program: Verity's loader runs first, pipes `words` words from the
/// advice provider into memory while hashing them, and fails unless the hash equals the
/// commitment, which the ledger itself puts on the proof's public input stack. So a proof is
/// accepted only if it was made on the client's data.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct PrivateCommitment {
    /// The Poseidon2 digest, as 4 field elements.
    pub commitment: [u64; 4],
    /// Length of the padded data in words.
    pub words: u32,
}

impl PrivateCommitment {
    /// The key under which nodes keep (and providers fetch) the data.
    pub fn id(&self) -> Digest {
        let mut bytes = b"verity/private/v1".to_vec();
        for v in self.commitment {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(&self.words.to_le_bytes());
        Digest::blake3(&bytes)
    }
}

/// Where a job's program comes from.
///
/// Small programs travel inside the job. A large one (a compiled model is hundreds of KiB of
/// straight-line code) is published once with [`TxBody::PublishProgram`] and named by its
/// hash in every job after that: validators assemble it once, and the ledger stores it once.
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
#[serde(rename_all = "snake_case")]
pub enum ProgramSource {
    /// Miden Assembly source. The ledger assembles it to derive the program hash, so the
    /// hash on the ledger is always that of the stored source.
    Inline(String),
    /// A published program, by its MAST root as written (without Verity's private-input
    /// loader, which the ledger adds for jobs with private inputs).
    Published(ProgramHash),
    /// An inline source as the ledger holds it: once, in its `sources` table under the
    /// source's BLAKE3 digest, for every job that names it. Never in a transaction (refused);
    /// the API serves a job with its source inline, as its client submitted it.
    Stored(Digest),
}

impl ProgramSource {
    /// The inline source, if the program travels with the job.
    pub fn inline(&self) -> Option<&str> {
        match self {
            ProgramSource::Inline(source) => Some(source),
            ProgramSource::Published(_) | ProgramSource::Stored(_) => None,
        }
    }
}

impl From<String> for ProgramSource {
    fn from(source: String) -> Self {
        ProgramSource::Inline(source)
    }
}

impl From<&str> for ProgramSource {
    fn from(source: &str) -> Self {
        ProgramSource::Inline(source.to_string())
    }
}

/// A job request: a program, its public inputs, a commitment to its private inputs, and the
/// terms.
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
pub struct JobRequest {
    pub program: ProgramSource,
    /// Public stack inputs, top first.
    pub stack_inputs: Vec<u64>,
    /// The client's private inputs, committed (see [`PrivateCommitment`]), if any.
    pub private_inputs: Option<PrivateCommitment>,
    pub mode: Mode,
    pub offer: Offer,
    pub max_cycles: u32,
    /// Minimum trust score (0–1000) a provider needs to lock this job.
    pub min_trust: Option<u32>,
}

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum TxBody {
    Transfer {
        to: Address,
        amount: u64,
    },
    Stake {
        role: Role,
        amount: u64,
    },
    /// Starts unbonding; the amount returns to the balance after the unbonding period.
    Unstake {
        role: Role,
        amount: u64,
    },
    /// Stores a program on the ledger under its hash, for jobs to name
    /// ([`ProgramSource::Published`]). Paid per KiB and per operation assembled, once.
    PublishProgram {
        source: String,
    },
    SubmitJob(JobRequest),
    LockJob {
        job_id: JobId,
    },
    /// `proof` is required in `Proof` mode and must be absent in `Optimistic` mode.
    Fulfil {
        job_id: JobId,
        outputs: StackOutputs,
        proof: Option<Vec<u8>>,
        /// VM cycles the prover executed, for receipts. The prover's word: the ledger bounds
        /// it by the proof's trace length (or, without a proof, by the job's cycle cap).
        cycles: u64,
    },
    /// Overturns an optimistic fulfilment with a proof of different outputs.
    Challenge {
        job_id: JobId,
        outputs: StackOutputs,
        proof: Vec<u8>,
        /// As in [`TxBody::Fulfil`], bounded by the proof's trace length.
        cycles: u64,
    },
    /// The client hands a locked job's private inputs to its locker, sealed to the locker's
    /// key (see `verity_client::sealing`): on the ledger, so every node holds them and their
    /// arrival is a fact, and encrypted, so only the locker can read them. The locker's
    /// delivery clock starts here.
    ProvideInputs {
        job_id: JobId,
        sealed: Vec<u8>,
    },
    /// The locker of a job with private inputs gives it up after receiving inputs it cannot use
    /// (they do not open, or do not match the commitment). No one can tell from the ledger
    /// which side is at fault, so nobody is paid or slashed; both records show the release.
    ReleaseLock {
        job_id: JobId,
    },
    /// A provider says where auditors can probe it (an `http://` or `https://` URL).
    Announce {
        endpoint: String,
    },
    /// A validator's liveness audit of providers over one finished audit epoch.
    Audit(AuditReport),
    /// A validator commits, before audit epoch `epoch` starts, to the seed its canary jobs in
    /// that epoch derive from (see [`crate::canary`]): it cannot later pick which jobs were
    /// canaries, nor what their answers were.
    CanaryCommit {
        epoch: u64,
        commitment: Digest,
        /// Most canaries it will reveal for the epoch.
        count: u32,
    },
    /// The seed, after the epoch, with each canary job and the answer the validator claims is
    /// right. The ledger checks the claims against the outcomes it holds.
    CanaryReveal(CanaryReveal),
}

impl TxBody {
    /// The body's kind, as its JSON `type` names it (`submit_job`, `fulfil`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::Transfer { .. } => "transfer",
            TxBody::Stake { .. } => "stake",
            TxBody::Unstake { .. } => "unstake",
            TxBody::PublishProgram { .. } => "publish_program",
            TxBody::SubmitJob(_) => "submit_job",
            TxBody::LockJob { .. } => "lock_job",
            TxBody::Fulfil { .. } => "fulfil",
            TxBody::Challenge { .. } => "challenge",
            TxBody::ProvideInputs { .. } => "provide_inputs",
            TxBody::ReleaseLock { .. } => "release_lock",
            TxBody::Announce { .. } => "announce",
            TxBody::Audit(_) => "audit",
            TxBody::CanaryCommit { .. } => "canary_commit",
            TxBody::CanaryReveal(_) => "canary_reveal",
        }
    }

    /// The job an existing-job transaction acts on (a submission's job id is its
    /// transaction's: [`crate::JobId::submitted_by`]).
    pub fn job_id(&self) -> Option<JobId> {
        match self {
            TxBody::LockJob { job_id }
            | TxBody::Fulfil { job_id, .. }
            | TxBody::Challenge { job_id, .. }
            | TxBody::ProvideInputs { job_id, .. }
            | TxBody::ReleaseLock { job_id } => Some(*job_id),
            _ => None,
        }
    }
}

/// The opening of a [`TxBody::CanaryCommit`].
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CanaryReveal {
    pub epoch: u64,
    pub seed: Digest,
    pub canaries: Vec<CanaryClaim>,
}

/// One canary: the job the key derived for `index` submitted, and its right outputs.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CanaryClaim {
    pub index: u32,
    pub job_id: JobId,
    pub expected: StackOutputs,
}

/// What one validator observed of providers during one audit epoch.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct AuditReport {
    /// The epoch observed (`height / AUDIT_EPOCH_BLOCKS` in the ledger); it must have ended.
    pub epoch: u64,
    /// One entry per provider probed, each provider at most once.
    pub liveness: Vec<Liveness>,
}

/// Probes of one provider's announced endpoint.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Liveness {
    pub provider: Address,
    pub probes: u32,
    /// Probes answered with a valid signature in time.
    pub answered: u32,
    /// Median response time of the answered probes, in milliseconds.
    pub median_latency_ms: u32,
}

/// The signed part of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Tx {
    /// Which network this is for: a transaction is valid on one chain only.
    pub chain_id: String,
    pub signer: Address,
    /// Must equal the signer's account nonce; it then increments (no replay).
    pub nonce: u64,
    pub body: TxBody,
}

/// A transaction with its signature.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedTx {
    pub tx: Tx,
    pub signature: Signature,
}

impl Tx {
    /// The bytes a signature covers: a domain tag and the canonical encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = TX_SIGNING_DOMAIN.to_vec();
        BorshSerialize::serialize(self, &mut bytes).expect("writing to a Vec cannot fail");
        bytes
    }

    pub fn sign(self, key: &Keypair) -> SignedTx {
        let signature = key.sign(&self.signing_bytes());
        SignedTx {
            tx: self,
            signature,
        }
    }
}

impl SignedTx {
    /// The transaction id: Blake3 of its canonical encoding (including the signature).
    pub fn id(&self) -> TxId {
        TxId(Digest::blake3(&self.to_bytes()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("writing to a Vec cannot fail")
    }

    /// Length of [`SignedTx::to_bytes`], without building it.
    pub fn encoded_len(&self) -> usize {
        borsh::object_length(self).expect("counting bytes cannot fail")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedTx, DecodeError> {
        borsh::from_slice(bytes).map_err(|e| DecodeError::new("transaction", e))
    }

    pub fn signature_is_valid(&self) -> bool {
        self.tx
            .signer
            .verify(&self.tx.signing_bytes(), &self.signature)
    }

    /// Whether every transaction's signature is valid, checked as one batch
    /// ([`crate::verify_batch`]: the same answer as [`SignedTx::signature_is_valid`] on each).
    pub fn signatures_are_valid(txs: &[SignedTx]) -> bool {
        let messages: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_bytes()).collect();
        let items: Vec<_> = txs
            .iter()
            .zip(&messages)
            .map(|(t, m)| (&t.tx.signer, m.as_slice(), &t.signature))
            .collect();
        crate::verify_batch(&items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            min_price: 100,
            max_price: 200,
            ramp_start: 2,
            ramp_period: 10,
            lock_timeout: 20,
            timeout: 40,
            collateral: 50,
        }
    }

    #[test]
    fn a_body_kind_is_its_json_type() {
        let job_id = JobId(Digest::blake3(b"job"));
        for body in [
            TxBody::Transfer {
                to: Keypair::from_seed([1; 32]).address(),
                amount: 1,
            },
            TxBody::LockJob { job_id },
            TxBody::ReleaseLock { job_id },
            TxBody::Announce {
                endpoint: "http://x".into(),
            },
            TxBody::PublishProgram {
                source: "begin end".into(),
            },
        ] {
            let json = serde_json::to_value(&body).unwrap();
            assert_eq!(json["type"], body.kind(), "{body:?}");
        }
        assert_eq!(TxBody::LockJob { job_id }.job_id(), Some(job_id));
    }

    #[test]
    fn reverse_dutch_auction_price() {
        let o = offer();
        assert_eq!(o.price_at(0), 100);
        assert_eq!(o.price_at(2), 100);
        assert_eq!(o.price_at(7), 150);
        assert_eq!(o.price_at(12), 200);
        assert_eq!(o.price_at(19), 200);
        let flat = Offer {
            ramp_period: 0,
            ..o
        };
        assert_eq!(flat.price_at(1), 100);
        assert_eq!(flat.price_at(2), 200);
        let huge = Offer {
            min_price: 0,
            max_price: u64::MAX,
            ..o
        };
        assert_eq!(
            huge.price_at(12),
            u64::MAX,
            "no overflow at the top of the ramp"
        );
    }

    #[test]
    fn offer_validation() {
        assert!(offer().validate().is_ok());
        assert!(
            Offer {
                min_price: 300,
                ..offer()
            }
            .validate()
            .unwrap_err()
            .0
            .contains("min_price")
        );
        assert!(
            Offer {
                ramp_period: 30,
                ..offer()
            }
            .validate()
            .unwrap_err()
            .0
            .contains("ramp")
        );
        assert!(
            Offer {
                timeout: 10,
                ..offer()
            }
            .validate()
            .unwrap_err()
            .0
            .contains("timeout")
        );
    }

    #[test]
    fn signatures_bind_every_field() {
        let key = Keypair::dev("alice");
        let tx = Tx {
            chain_id: "verity-test".into(),
            signer: key.address(),
            nonce: 0,
            body: TxBody::Transfer {
                to: Keypair::dev("bob").address(),
                amount: 5,
            },
        };
        let signed = tx.clone().sign(&key);
        assert!(signed.signature_is_valid());
        let mut other_chain = signed.clone();
        other_chain.tx.chain_id = "verity-main".into();
        assert!(!other_chain.signature_is_valid());
        let mut other_nonce = signed.clone();
        other_nonce.tx.nonce = 1;
        assert!(!other_nonce.signature_is_valid());
        assert_eq!(SignedTx::from_bytes(&signed.to_bytes()).unwrap(), signed);
        assert!(SignedTx::from_bytes(&signed.to_bytes()[..10]).is_err());
    }
}
