//! The API's OpenAPI 3 description, generated from the request and response types themselves
//! (their `utoipa::ToSchema` derives), served by every node at [`routes::OPENAPI`] so clients
//! in any language can be generated or checked against it.
//!
//! Each route is described on an empty function below: the handlers live in `verity-node`,
//! which this crate (shared with the SDK) must not depend on. The node's tests check that the
//! routes it serves and the paths described here are the same set.

#![allow(dead_code)] // the functions exist only to carry their `#[utoipa::path]` descriptions

use utoipa::OpenApi;

#[allow(unused_imports)] // named by the path descriptions
use crate::{
    AccountView, BlockView, CertifiedBlock, ErrorBody, Head, Heartbeat, JobPage, JobView,
    NetworkStats, ProvenanceView, ProviderView, Resolution, SealedInputs, StateProof, SubmitTx,
    Submitted, TxStatus, Verification, routes,
};
#[allow(unused_imports)]
use verity_ledger::{Event, JobState, PublishedProgram, trust::AuditorProfile};

/// The whole description, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Verity node API",
        description = "A Verity node's HTTP API: the chain, jobs with their proofs and receipts, \
            providers' trust profiles, audits and events. Errors are `ErrorBody` \
            (`{error, code}`): programs match on `code`; any route may also answer 500 \
            (`internal`) when the node itself fails. Ids in paths are whole (`0x` and 64 hex \
            digits); `/v1/resolve/{id}` turns a prefix into ids. Transactions are \
            borsh-encoded and signed as docs/API.md describes, with test vectors.",
        license(name = "Apache-2.0")
    ),
    paths(
        head, stats, submit_tx, tx_status, list_jobs, job, receipt, provenance, sealed_inputs,
        verify, block, certified_block, state_proof, program, account, providers, heartbeat, provider, auditors, events,
        resolve, sync_snapshot, sync_operations, sync_boundary, metrics, openapi
    ),
    components(schemas(ErrorBody, Event)),
    tags(
        (name = "chain", description = "Head, blocks, transactions, statistics"),
        (name = "jobs", description = "Jobs, their results, receipts and provenance"),
        (name = "providers", description = "Providers, trust profiles and auditors"),
        (name = "node", description = "Events, metrics and this document"),
        (name = "sync", description = "State sync between nodes (binary; `verity node run --sync-from`)")
    )
)]
struct ApiDoc;

/// The chain's head: height, state root, mempool, consensus and this node's auditor.
#[utoipa::path(get, path = "/v1/head", tag = "chain",
    responses((status = 200, body = Head)))]
fn head() {}

/// Network figures over recent blocks: jobs by state, results and proofs in the window.
#[utoipa::path(get, path = "/v1/stats", tag = "chain",
    responses((status = 200, body = NetworkStats)))]
fn stats() {}

/// Submits a signed transaction (borsh, base64). Resending the same bytes returns the same id.
#[utoipa::path(post, path = "/v1/txs", tag = "chain", request_body = SubmitTx,
    responses(
        (status = 202, description = "admitted to the mempool (or already known)", body = Submitted),
        (status = 400, description = "refused; `code` says what to do: `wrong_nonce` (sign \
            again), `insufficient_funds`, `busy` (mempool full: retry later), `invalid`",
            body = ErrorBody),
        (status = 413, description = "body over 2 MiB"),
        (status = 415, description = "the body is not JSON (`content-type`)"),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody)
    ))]
fn submit_tx() {}

/// Where a transaction is: pending, accepted, rejected (with the ledger's reason) or unknown.
#[utoipa::path(get, path = "/v1/txs/{id}", tag = "chain",
    params(("id" = String, Path, description = "transaction id")),
    responses((status = 200, body = TxStatus), (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 404, description = "neither pending nor in a block this node has",
            body = ErrorBody)))]
fn tx_status() {}

/// Jobs in id order, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        ("state" = Option<JobState>, Query, description = "only jobs in this state"),
        ("client" = Option<String>, Query, description = "only this client's jobs (address)"),
        ("provider" = Option<String>, Query, description = "only jobs this provider locked or fulfilled"),
        ("after" = Option<String>, Query, description = "cursor: the previous page's `next`"),
        ("limit" = Option<usize>, Query, description = "page size, 1 to 200 (default 50)")
    ),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody)))]
fn list_jobs() {}

/// A job: request, phase with its data, timeline, deadlines and current auction price.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobView),
        (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
fn job() {}

/// The receipt file of a proof-backed result (`verity verify` checks it), built from the
/// ledger alone: every node serves the same one.
#[utoipa::path(get, path = "/v1/jobs/{id}/receipt", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses(
        (status = 200, description = "the receipt file (format `verity-receipt`)",
            body = Object, content_type = "application/json"),
        (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 404, description = "no such job, or no proof-backed result", body = ErrorBody)
    ))]
fn receipt() {}

/// A finished job's provenance record with its inclusion proof against the state root.
#[utoipa::path(get, path = "/v1/jobs/{id}/provenance", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = ProvenanceView), (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 404, description = "no such job, or not finished", body = ErrorBody),
        (status = 503, description = "the node is serving as many state proofs as it will at once (`busy`)", body = ErrorBody)))]
fn provenance() {}

/// A job's private inputs, sealed to its locker (only the locker can open them).
#[utoipa::path(get, path = "/v1/jobs/{id}/private", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = SealedInputs), (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 404, description = "no such job, no private inputs, or not provided yet",
            body = ErrorBody)))]
fn sealed_inputs() {}

/// Runs this node's verifier on the job's stored proof (at most two at once).
#[utoipa::path(post, path = "/v1/jobs/{id}/verify", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    request_body(content = Object, description = "an empty JSON object `{}`",
        content_type = "application/json"),
    responses(
        (status = 200, body = Verification),
        (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 404, description = "no such job, or no proof to verify", body = ErrorBody),
        (status = 413, description = "body over 2 MiB"),
        (status = 415, description = "the body is not JSON (`content-type`)"),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody),
        (status = 503, description = "the node's verifiers are busy (`busy`)", body = ErrorBody)
    ))]
fn verify() {}

/// A stored block with each transaction's kind, job and outcome.
#[utoipa::path(get, path = "/v1/blocks/{id}", tag = "chain",
    params(("id" = u64, Path, description = "block height")),
    responses((status = 200, body = BlockView),
        (status = 400, description = "not a height", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
fn block() {}

/// A block's encoding with its finalization certificate: check finality without trusting
/// the node (`verity provenance verify`).
#[utoipa::path(get, path = "/v1/blocks/{id}/certified", tag = "chain",
    params(("id" = u64, Path, description = "block height")),
    responses((status = 200, body = CertifiedBlock),
        (status = 400, description = "not a height", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
fn certified_block() {}

/// One state entry (account, stake, job or provenance record) with its inclusion proof
/// against the state root; present entries only (the tree does not prove absence).
#[utoipa::path(get, path = "/v1/proofs/{kind}/{id}", tag = "chain",
    params(
        ("kind" = String, Path, description = "`account`, `stake`, `job` or `provenance`"),
        ("id" = String, Path, description = "an address (account, stake) or a job id")
    ),
    responses((status = 200, body = StateProof),
        (status = 400, description = "an unknown kind, or a malformed id", body = ErrorBody),
        (status = 404, description = "no such entry", body = ErrorBody),
        (status = 503, description = "the node is serving as many state proofs as it will at once (`busy`)", body = ErrorBody)))]
fn state_proof() {}

/// A published program with its source.
#[utoipa::path(get, path = "/v1/programs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "program hash")),
    responses((status = 200, body = PublishedProgram),
        (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
fn program() {}

/// An account's balance, nonces and stake.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "chain",
    params(("id" = String, Path, description = "address")),
    responses((status = 200, body = AccountView), (status = 400, description = "a malformed address", body = ErrorBody)))]
fn account() {}

/// Staked providers, ranked by trust score.
#[utoipa::path(get, path = "/v1/providers", tag = "providers",
    responses((status = 200, body = Vec<ProviderView>)))]
fn providers() {}

/// A provider says it is online (signed by its key; shared with the other validators).
#[utoipa::path(post, path = "/v1/providers/heartbeat", tag = "providers",
    request_body = Heartbeat,
    responses(
        (status = 200, description = "`{\"ok\": true}`", body = Object),
        (status = 400, description = "not for the current height", body = ErrorBody),
        (status = 403, description = "bad signature, or not a staked provider", body = ErrorBody),
        (status = 413, description = "body over 2 MiB"),
        (status = 415, description = "the body is not JSON (`content-type`)"),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody)
    ))]
fn heartbeat() {}

/// A provider's stake, record and trust profile (empty for an address that never staked).
#[utoipa::path(get, path = "/v1/providers/{id}", tag = "providers",
    params(("id" = String, Path, description = "address")),
    responses((status = 200, body = ProviderView), (status = 400, description = "a malformed address", body = ErrorBody)))]
fn provider() {}

/// Validators' audit records.
#[utoipa::path(get, path = "/v1/auditors", tag = "providers",
    responses((status = 200, body = Vec<AuditorProfile>)))]
fn auditors() {}

/// Server-sent events: one `job` event (data: an `Event`) per job transition.
#[utoipa::path(get, path = "/v1/events", tag = "node",
    responses((status = 200, description = "an event stream; each `job` event's data is an \
        `Event` (see components)", body = String, content_type = "text/event-stream")))]
fn events() {}

/// The jobs, accounts and programs whose ids start with a hex prefix.
#[utoipa::path(get, path = "/v1/resolve/{id}", tag = "chain",
    params(("id" = String, Path, description = "hex id prefix (`0x` and `…` allowed)")),
    responses((status = 200, body = Resolution),
        (status = 400, description = "not a hex prefix", body = ErrorBody)))]
fn resolve() {}

/// The committed state, for a node that starts by state sync: a borsh `StateSnapshot`
/// (see `verity_api::StateSnapshot`; the syncing node trusts none of it, see docs/API.md).
#[utoipa::path(get, path = "/v1/sync/snapshot", tag = "sync",
    responses((status = 200, description = "a borsh-encoded `StateSnapshot`", body = Vec<u8>,
        content_type = "application/octet-stream"),
        (status = 404, description = "the chain is at genesis: nothing to sync", body = ErrorBody),
        (status = 503, description = "busy: another snapshot is being served", body = ErrorBody)))]
fn sync_snapshot() {}

/// Operations `start..` (at most `max`, at most 1,024) of the state store's log as it was at
/// `size` operations, with their proof against that log's root: commonware QMDB's sync
/// `Response`, encoded.
#[utoipa::path(get, path = "/v1/sync/operations", tag = "sync",
    params(("size" = u64, Query), ("start" = u64, Query), ("max" = Option<u64>, Query)),
    responses((status = 200, description = "a QMDB sync response", body = Vec<u8>,
        content_type = "application/octet-stream"),
        (status = 400, description = "missing or malformed parameters", body = ErrorBody),
        (status = 410, description = "the log no longer (or does not yet) hold these operations", body = ErrorBody),
        (status = 503, description = "busy", body = ErrorBody)))]
fn sync_operations() {}

/// The operation at `start` of the log as it was at `size` operations, with the Merkle
/// nodes pinned there (where a synced log begins): QMDB's sync `Response`, encoded.
#[utoipa::path(get, path = "/v1/sync/boundary", tag = "sync",
    params(("size" = u64, Query), ("start" = u64, Query)),
    responses((status = 200, description = "a QMDB sync response", body = Vec<u8>,
        content_type = "application/octet-stream"),
        (status = 400, description = "missing or malformed parameters", body = ErrorBody),
        (status = 410, description = "the log no longer (or does not yet) hold this operation", body = ErrorBody),
        (status = 503, description = "busy", body = ErrorBody)))]
fn sync_boundary() {}

/// Prometheus metrics (docs/API.md lists every series).
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "OpenMetrics text", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "node",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
fn openapi() {}
