//! The HTTP API's contract (`docs/API.md`): its routes, the JSON shapes of requests and
//! responses, the error codes both sides match on, and the messages providers sign. The node
//! serves it, the SDK (`verity-client`) calls it; neither defines a shape of its own.

pub mod openapi;
pub mod routes;

use serde::{Deserialize, Serialize};
use verity_ledger::{Job, JobState, Provenance, ProviderStats, StakeInfo};
use verity_types::merkle::InclusionProof;
use verity_types::{Address, BlockId, Digest, JobId, ProgramHash, Signature, TxId};

/// Every error response: `{"error": "what was wrong", "code": "wrong_nonce"}`. The message is
/// for people; programs match on the code.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub code: ErrorCode,
}

/// What kind of failure an error response reports.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No such job, account, program, transaction or route.
    NotFound,
    /// A signature does not match, or the signer may not do this.
    Forbidden,
    /// The transaction's nonce is not the account's next one (another transaction took it,
    /// say): sign it again with a fresh nonce.
    WrongNonce,
    /// The account cannot pay the fee plus what the transaction moves.
    InsufficientFunds,
    /// The mempool, or this account's share of it, is full: try again shortly.
    Busy,
    /// The ledger included the transaction and refused it (see [`TxStatus::error`]).
    Rejected,
    /// The node failed (its storage, say); not the request's fault.
    Internal,
    /// The request or transaction is invalid; the message says why. Also what an older
    /// node's error without a code, or a code this version does not know, decodes to.
    #[default]
    #[serde(other)]
    Invalid,
}

/// What an id prefix can name.
#[derive(
    utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    Job,
    /// An account or a staked provider or validator: an address.
    Account,
    Program,
}

/// One id a prefix names.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMatch {
    pub kind: IdKind,
    /// The whole id, `0x` and 64 hex digits.
    pub id: String,
}

/// `GET /v1/resolve/{prefix}`: the ids of each kind that start with the prefix (at most
/// `verity_types::prefix::AMBIGUOUS_SHOWN` + 1 of a kind: one more than a reader is shown, so
/// "more" can be told from "exactly these").
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub prefix: String,
    pub matches: Vec<IdMatch>,
}

impl Resolution {
    /// The one id of `kind` the prefix names, or why there is not exactly one.
    pub fn one(&self, kind: IdKind) -> Result<&str, String> {
        let of_kind: Vec<&str> = self
            .matches
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.id.as_str())
            .collect();
        let what = match kind {
            IdKind::Job => "job",
            IdKind::Account => "account",
            IdKind::Program => "program",
        };
        match of_kind.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no {what} id starts with {}", self.prefix)),
            many => {
                let shown = verity_types::prefix::AMBIGUOUS_SHOWN;
                let more = if many.len() > shown { ", …" } else { "" };
                Err(format!(
                    "{} is ambiguous: it starts {what} ids {}{more}; give more digits",
                    self.prefix,
                    many[..many.len().min(shown)].join(", "),
                ))
            }
        }
    }
}

/// `POST /v1/txs`: a borsh-encoded `SignedTx`, base64.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct SubmitTx {
    pub tx: String,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct Submitted {
    pub tx_id: TxId,
}

/// `GET /v1/txs/{id}`.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct TxStatus {
    pub status: TxState,
    pub height: Option<u64>,
    pub error: Option<String>,
}

/// Where a transaction is.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// In the mempool.
    Pending,
    /// In a block, applied.
    Accepted,
    /// In a block, refused by the ledger (its fee and nonce are still spent).
    Rejected,
    /// Neither in the mempool nor in a block this node has.
    Unknown,
}

/// `GET /v1/head`.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub chain_id: String,
    pub height: u64,
    pub timestamp_ms: u64,
    pub state_root: Digest,
    pub mempool: usize,
    pub providers_online: usize,
    pub block_interval_ms: u64,
    /// Present when the node is a validator of a BFT network (absent for a single producer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusView>,
    /// Present when this node runs a re-execution auditor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auditor: Option<AuditorView>,
}

/// What this node's re-execution auditor has done since it started.
#[derive(utoipa::ToSchema, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditorView {
    /// Optimistic fulfilments checked, per 10,000 (chosen by block hash).
    pub sample_per_10k: u32,
    pub sampled: u64,
    /// Re-executed and found correct.
    pub matched: u64,
    /// Found wrong and challenged with a proof.
    pub challenged: u64,
    /// Sampled but not checkable here (the private advice is on another node).
    pub unverifiable: u64,
    /// Liveness probes of provider endpoints sent, answered, and audits filed.
    #[serde(default)]
    pub probes: u64,
    #[serde(default)]
    pub probes_answered: u64,
    #[serde(default)]
    pub audits_filed: u64,
    /// Canary commitments made, canary jobs sent, canaries answered wrong and challenged,
    /// and reveals sent.
    #[serde(default)]
    pub canary_commits: u64,
    #[serde(default)]
    pub canaries_sent: u64,
    #[serde(default)]
    pub canaries_challenged: u64,
    #[serde(default)]
    pub canary_reveals: u64,
}

/// One validator's voting as a node saw it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VoterView {
    pub validator: Address,
    pub last_view: Option<u64>,
    /// Voted within the last 20 views of the current one.
    pub voting: bool,
}

/// Consensus progress as one validator sees it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsensusView {
    /// Validators in the set.
    pub validators: usize,
    /// Validators whose votes this node saw in the last 20 views (itself included).
    pub validators_seen: usize,
    /// Every validator with the newest view this node saw it vote in (`null`: never).
    #[serde(default)]
    pub voters: Vec<VoterView>,
    /// Newest block this node has finalized and applied (equals `height`).
    pub finalized_height: u64,
    /// View of the newest finalization, and the newest view votes were seen for.
    pub finalized_view: u64,
    pub current_view: u64,
    /// When this node applied its newest finalized block (its clock, ms since the epoch).
    pub last_finalized_ms: u64,
    pub blocks_proposed: u64,
    pub blocks_rejected: u64,
    /// Blocks this node could not stage in its state store (its own failure: no vote, no
    /// verdict on the block).
    #[serde(default)]
    pub store_failures: u64,
    pub nullified_views: u64,
    /// Equivocation evidence consensus reported.
    pub faults_seen: u64,
}

/// `GET /v1/jobs/{id}`: the job with its full timeline, plus derived figures.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    pub job: Job,
    pub lock_deadline: u64,
    pub deadline: u64,
    /// The auction price at the current height (what a lock would pay now).
    pub current_price: u64,
    /// Why the job failed, for expired, slashed and overturned jobs.
    pub failure: Option<String>,
    /// The job ended more than the chain's `job_retention` blocks ago and left the state: this
    /// record is the serving node's archive (its provenance record is still in the state,
    /// provable: `GET /v1/jobs/{id}/provenance`).
    #[serde(default)]
    pub archived: bool,
}

/// One row of `GET /v1/jobs`.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: JobId,
    pub state: JobState,
    pub client: Address,
    pub program_hash: ProgramHash,
    pub mode: verity_types::Mode,
    pub submitted_height: u64,
    pub locker: Option<Address>,
    pub lock_price: Option<u64>,
    pub max_price: u64,
    pub max_cycles: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobQuery {
    pub state: Option<JobState>,
    pub client: Option<Address>,
    pub provider: Option<Address>,
    /// Cursor: the last job id of the previous page.
    pub after: Option<JobId>,
    pub limit: Option<usize>,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<JobId>,
}

/// `GET /v1/stats`: what the network has done lately, from the committed state.
#[derive(utoipa::ToSchema, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Jobs on the ledger in each state (every state present, zeros included).
    pub jobs_by_state: std::collections::BTreeMap<JobState, u64>,
    /// The recent window: its length in blocks and in the block producers' time.
    pub window_blocks: u64,
    pub window_ms: u64,
    /// Results delivered in the window (proven or optimistic, rescues included) and how
    /// many of them carried a proof the ledger verified.
    pub results_in_window: u64,
    pub proofs_in_window: u64,
}

/// `GET /v1/proofs/{kind}/{id}`: one state entry with its inclusion proof against the state
/// root after block `height` (which block `height + 1` names in its header).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct StateProof {
    pub kind: verity_ledger::EntryKind,
    /// The entry's key: an address, or a job id.
    pub id: Digest,
    /// The entry's borsh encoding, base64: what the state root commits to. Decode this, not
    /// `value`, to trust the entry.
    pub encoded: String,
    /// The same entry as JSON, for people.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    pub state_root: Digest,
    pub height: u64,
    pub proof: InclusionProof,
}

/// `GET /v1/sync/snapshot` (borsh, `application/octet-stream`): a node's committed state, for
/// a node that starts by state sync instead of replaying every block. Nothing in it is
/// trusted: the syncing node rebuilds the authenticated state store by QMDB's sync against
/// `ops_root`, requires the result's root to be `state_root` and block `height + 1`, finalized
/// by a quorum of the validators, to name it (and `block`'s id), and requires `entries` to be
/// exactly the store's.
#[derive(Debug, Clone, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct StateSnapshot {
    /// The height of the state (at least 1: a chain at genesis has nothing to sync).
    pub height: u64,
    /// Block `height`, encoded: the synced node's tip, whose id the next block names.
    pub block: Vec<u8>,
    /// The state root after block `height`.
    pub state_root: Digest,
    /// The root of the state store's operation log at that commit (what each synced batch
    /// is checked against; the state root commits to it).
    pub ops_root: Digest,
    /// What ties `ops_root` to `state_root` (QMDB's `OpsRootWitness`, encoded;
    /// `verity_store::verify_ops_root`): checked before anything is fetched.
    pub ops_root_witness: Vec<u8>,
    /// The first operation of the log a synced store needs.
    pub lower: u64,
    /// Operations in the log at that commit.
    pub size: u64,
    /// Every state entry (store key, value), borsh-encoded as a `Vec<(Vec<u8>, Vec<u8>)>`.
    /// Kept encoded so that the syncing node decodes it only once its store is synced and
    /// checked, expecting exactly as many entries as the store holds: a peer cannot make it
    /// allocate for millions of made-up entries.
    pub entries: Vec<u8>,
}

/// `GET /v1/blocks/{height}/certified`: a block as consensus finalized it, for clients that
/// check finality themselves (`verity provenance verify`) instead of trusting the node.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct CertifiedBlock {
    pub height: u64,
    pub id: BlockId,
    /// The block's borsh encoding, base64: its SHA-256 is `id`; its header names the state
    /// root of the block before it (`header.parent`).
    pub block: String,
    /// This block's finalization certificate (a quorum of validator signatures over `id`),
    /// base64, if this node saw one. A BFT node may have finalized the block as an ancestor
    /// of a certified one: a later block's certificate then covers it through `parent_id`.
    pub certificate: Option<String>,
}

/// `GET /v1/blocks/{height}`: a block as this node stored it, each transaction with its
/// outcome.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct BlockView {
    pub height: u64,
    pub id: BlockId,
    pub parent_id: BlockId,
    /// The proposer's clock, ms since the epoch.
    pub timestamp_ms: u64,
    pub proposer: Address,
    /// The state root after this block.
    pub state_root: Digest,
    pub txs: Vec<BlockTx>,
    /// The block's finalization certificate as this node checked it against the validator
    /// set; `null` if the node kept none (a BFT node may have finalized the block as an
    /// ancestor of a certified one).
    #[serde(default)]
    pub finality: Option<BlockFinality>,
}

/// Who signed a block final (`verity_consensus::certificate`).
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFinality {
    /// The consensus view that finalized it.
    pub view: u64,
    /// Validators whose signatures the certificate carries (at least a quorum).
    pub signers: usize,
    pub validators: usize,
}

/// One transaction of a [`BlockView`] (its body left out: a fulfilment carries its proof).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct BlockTx {
    pub id: TxId,
    pub signer: Address,
    pub nonce: u64,
    /// The body's `type` (`submit_job`, `lock_job`, `fulfil`, …).
    pub kind: String,
    /// The job it submitted or acted on.
    pub job_id: Option<JobId>,
    /// Why the ledger refused it (its fee and nonce are still spent); absent if applied.
    pub error: Option<String>,
}

/// `POST /v1/jobs/{id}/verify`: the node checked the job's proof with its verifier, against
/// the program hash, inputs and outputs on the ledger.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub job_id: JobId,
    pub valid: bool,
    /// What was checked and the security level, or why the proof did not verify.
    pub message: String,
    pub program_hash: ProgramHash,
    pub proof_hash: Digest,
    /// How long the verifier took, in microseconds.
    pub verify_us: u64,
}

/// `GET /v1/jobs/{id}/provenance`: the record, its inclusion proof, and the root it is
/// against.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct ProvenanceView {
    pub record: Provenance,
    pub proof: InclusionProof,
    pub state_root: Digest,
    pub height: u64,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct AccountView {
    pub address: Address,
    pub balance: u64,
    pub nonce: u64,
    /// The nonce a new transaction should carry, counting this account's pending ones.
    pub next_nonce: u64,
    pub stake: StakeInfo,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct ProviderView {
    pub address: Address,
    pub stake: StakeInfo,
    pub stats: ProviderStats,
    /// The trust profile's score (`profile.score`), what an offer's `min_trust` is checked
    /// against.
    pub trust_score: u32,
    pub profile: verity_ledger::TrustProfile,
    pub online: bool,
    pub last_seen_height: Option<u64>,
}

/// `GET /v1/jobs/{id}/private`: a job's private inputs as its client provided them on the
/// ledger, sealed to the locker (see [`crate::sealing`]): public, readable by the locker only.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct SealedInputs {
    /// Base64 of the sealed box.
    pub sealed: String,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub provider: Address,
    pub height: u64,
    pub signature: Signature,
}

/// What a provider signs to answer an auditor's liveness probe carrying `nonce`.
pub fn ping_message(provider: &Address, nonce: &str) -> Vec<u8> {
    format!("verity/ping/v1/{provider}/{nonce}").into_bytes()
}

/// A provider's answer to `GET {endpoint}/v1/ping?nonce=…`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingAnswer {
    pub provider: Address,
    /// Hex signature over [`ping_message`].
    pub signature: String,
}

/// What a provider signs to announce itself online at a height.
pub fn heartbeat_message(provider: &Address, height: u64) -> Vec<u8> {
    format!("verity/heartbeat/v1/{provider}/{height}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolution_names_one_id_of_a_kind_or_says_why_not() {
        let m = |kind, id: &str| IdMatch {
            kind,
            id: id.into(),
        };
        let r = Resolution {
            prefix: "0x48".into(),
            matches: vec![
                m(IdKind::Job, "0x48aa"),
                m(IdKind::Account, "0x48bb"),
                m(IdKind::Account, "0x48cc"),
            ],
        };
        assert_eq!(r.one(IdKind::Job), Ok("0x48aa"));
        let ambiguous = r.one(IdKind::Account).unwrap_err();
        assert!(
            ambiguous.contains("ambiguous") && ambiguous.contains("0x48bb, 0x48cc"),
            "{ambiguous}"
        );
        assert_eq!(
            r.one(IdKind::Program),
            Err("no program id starts with 0x48".into())
        );
    }

    #[test]
    fn codes_and_states_have_their_documented_spelling() {
        let body = ErrorBody {
            error: "nonce 7 is not the next (3)".into(),
            code: ErrorCode::WrongNonce,
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["code"], "wrong_nonce");
        assert_eq!(serde_json::to_value(TxState::Pending).unwrap(), "pending");
        assert_eq!(serde_json::to_value(TxState::Rejected).unwrap(), "rejected");
    }

    #[test]
    fn errors_without_a_code_or_with_an_unknown_one_decode_as_invalid() {
        let old: ErrorBody = serde_json::from_str(r#"{"error": "bad"}"#).unwrap();
        assert_eq!(old.code, ErrorCode::Invalid);
        let newer: ErrorBody =
            serde_json::from_str(r#"{"error": "bad", "code": "quota_exceeded"}"#).unwrap();
        assert_eq!(newer.code, ErrorCode::Invalid);
        let known: ErrorBody = serde_json::from_str(r#"{"error": "x", "code": "busy"}"#).unwrap();
        assert_eq!(known.code, ErrorCode::Busy);
    }
}
