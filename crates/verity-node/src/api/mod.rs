//! The HTTP API (axum, JSON), documented in `docs/API.md`. Every handler treats its input as
//! untrusted: a bad request gets a 4xx with `{"error": "..."}` saying what was wrong.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use verity_api::{
    AccountView, BlockView, CertifiedBlock, ErrorBody, ErrorCode, Head, Heartbeat, JobPage,
    JobQuery, JobView, NetworkStats, ProvenanceView, ProviderView, SealedInputs, StateProof,
    SubmitTx, Submitted, TxState, TxStatus, routes,
};
use verity_ledger::{EntryKind, Job, JobState, PublishedProgram, TxError};
use verity_types::{Address, Digest, JobId, ProgramHash, SignedTx};

use crate::mempool::AdmitError;
use crate::node::Node;

mod resolve;
mod verify;
pub(crate) mod views;

pub(crate) use resolve::resolve_prefix;
#[cfg(feature = "mocks")]
pub use verify::occupy_verifiers;

/// Largest request body: a transaction with a proof is ~200 KB of base64.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Most jobs per page.
pub const MAX_PAGE: usize = 200;

/// An error response: its HTTP status, the code programs match on, and the message.
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code,
        };
        (self.status, Json(body)).into_response()
    }
}

fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, ErrorCode::Invalid, msg)
}

fn not_found(msg: impl Into<String>) -> ApiError {
    error(StatusCode::NOT_FOUND, ErrorCode::NotFound, msg)
}

fn forbidden(msg: impl Into<String>) -> ApiError {
    error(StatusCode::FORBIDDEN, ErrorCode::Forbidden, msg)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        e.to_string(),
    )
}

/// A mempool refusal, coded so a client can tell "sign again" and "retry later" from "wrong".
fn refused(e: AdmitError) -> ApiError {
    let code = match &e {
        AdmitError::Invalid(TxError::BadNonce { .. }) => ErrorCode::WrongNonce,
        AdmitError::Invalid(TxError::CannotPayFee { .. })
        | AdmitError::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
        AdmitError::TooManyPending(..) | AdmitError::Full(_) => ErrorCode::Busy,
        AdmitError::Invalid(_) | AdmitError::TooLarge { .. } | AdmitError::Duplicate(_) => {
            ErrorCode::Invalid
        }
    };
    error(StatusCode::BAD_REQUEST, code, e.to_string())
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        error(
            r.status(),
            ErrorCode::Invalid,
            format!("invalid JSON body: {}", r.body_text()),
        )
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A digest or typed id (`JobId`, `TxId`, …) from a path or query, or a 400 naming `what`.
fn parse_digest<T>(what: &str, s: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = verity_types::DigestError>,
{
    s.parse()
        .map_err(|e| bad(format!("{what} `{s}` is not valid: {e}")))
}

fn parse_address(s: &str) -> Result<Address, ApiError> {
    s.parse()
        .map_err(|e| bad(format!("address `{s}` is not valid: {e}")))
}

/// Every API route with its handlers. The router serves exactly these, and a test checks them
/// against the OpenAPI description (`verity_api::openapi`), so neither can drift alone.
fn api_routes() -> Vec<(&'static str, MethodRouter<Arc<Node>>)> {
    vec![
        (routes::HEAD, get(head)),
        (routes::TXS, post(submit_tx)),
        (routes::TX, get(tx_status)),
        (routes::JOBS, get(list_jobs)),
        (routes::JOB, get(job)),
        (routes::JOB_RECEIPT, get(receipt)),
        (routes::JOB_PROVENANCE, get(provenance)),
        (routes::JOB_PRIVATE, get(sealed_inputs)),
        (routes::PROGRAM, get(program)),
        (routes::ACCOUNT, get(account)),
        (routes::PROVIDERS, get(providers)),
        (routes::HEARTBEAT, post(heartbeat)),
        (routes::PROVIDER, get(provider)),
        (routes::AUDITORS, get(auditors)),
        (routes::EVENTS, get(events)),
        (routes::RESOLVE, get(resolve::resolve)),
        (routes::BLOCK, get(block)),
        (routes::BLOCK_CERTIFIED, get(certified_block)),
        (routes::STATE_PROOF, get(state_proof)),
        (routes::STATS, get(stats)),
        (routes::JOB_VERIFY, post(verify::verify)),
        (routes::SYNC_SNAPSHOT, get(sync_snapshot)),
        (routes::SYNC_OPERATIONS, get(sync_operations)),
        (routes::SYNC_BOUNDARY, get(sync_boundary)),
        (routes::METRICS, get(metrics)),
        (routes::OPENAPI, get(openapi)),
    ]
}

/// The API and, beside it, the explorer's pages.
pub fn router(node: Arc<Node>) -> Router {
    api_routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
        .with_state(node.clone())
        .merge(verity_explorer::router(node))
        .fallback(|| async { not_found("no such endpoint; see docs/API.md") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// `GET /v1/openapi.json`: generated once, from the API's types.
async fn openapi() -> Response {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        verity_api::openapi::document()
            .to_json()
            .expect("the OpenAPI document serializes")
    });
    ([("content-type", "application/json")], DOCUMENT.as_str()).into_response()
}

/// `GET /v1/blocks/{height}`.
async fn block(State(node): State<Arc<Node>>, Path(height): Path<String>) -> ApiResult<BlockView> {
    let height: u64 = height
        .parse()
        .map_err(|_| bad(format!("block height `{height}` is not a number")))?;
    views::block(&node, height)
        .map_err(internal)?
        .map(Json)
        .ok_or_else(|| not_found(format!("no block at height {height} on this node")))
}

/// One of `slots`, held by the blocking work it admits (so a caller that hangs up does not
/// free it early), or `busy` with `why`.
fn slot(
    slots: &Arc<tokio::sync::Semaphore>,
    why: &'static str,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Busy, why))
}

/// One of the node's state-proof slots, or `busy`.
fn proof_slot(node: &Node) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    slot(
        &node.proof_slots,
        "the node is serving other state proofs; try again in a moment",
    )
}

/// `GET /v1/proofs/{kind}/{id}`.
async fn state_proof(
    State(node): State<Arc<Node>>,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult<StateProof> {
    let kind: EntryKind = kind.parse().map_err(bad)?;
    let id: Digest = parse_digest("key", &id)?;
    let slot = proof_slot(&node)?;
    // The state store answers on its own thread; waiting for it blocks.
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        views::state_proof(&node, kind, id)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?
    .map(Json)
    .ok_or_else(|| not_found(format!("no {} entry under {id}", kind.name())))
}

/// `GET /v1/blocks/{height}/certified`.
async fn certified_block(
    State(node): State<Arc<Node>>,
    Path(height): Path<String>,
) -> ApiResult<CertifiedBlock> {
    let height: u64 = height
        .parse()
        .map_err(|_| bad(format!("block height `{height}` is not a number")))?;
    // Encoding and hashing a block (up to 4 MiB) is CPU work: off the executor.
    let view = tokio::task::spawn_blocking(move || {
        let Some(stored) = node.storage().block(height)? else {
            return Ok(None);
        };
        let block = stored.to_block();
        let bytes = block.to_bytes();
        let id = block.id();
        Ok::<_, crate::StorageError>(Some(CertifiedBlock {
            height,
            id,
            block: BASE64.encode(&bytes),
            certificate: node.certificate(&id)?.map(|c| BASE64.encode(c)),
        }))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    view.map(Json)
        .ok_or_else(|| not_found(format!("no block at height {height} on this node")))
}

fn octets(bytes: Vec<u8>) -> Response {
    ([("content-type", "application/octet-stream")], bytes).into_response()
}

/// `GET /v1/sync/snapshot`: the committed state for a node that syncs from this one (borsh).
/// One at a time (each copies the whole state), beside the state-proof slots.
async fn sync_snapshot(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    let slot = slot(
        &node.snapshot_slot,
        "the node is serving another state snapshot; try again in a moment",
    )?;
    let snapshot = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let snapshot = node.state_snapshot()?;
        Ok::<_, crate::NodeError>(snapshot.map(|s| borsh::to_vec(&s)))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?
    .ok_or_else(|| not_found("the chain is at genesis: start from the genesis file"))?
    .map_err(internal)?;
    Ok(octets(snapshot))
}

/// The numbers a sync request names, from its query.
fn sync_query(q: &BTreeMap<String, String>, names: &[&str]) -> Result<Vec<u64>, ApiError> {
    if let Some(k) = q.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown parameter `{k}` (takes {})",
            names.join(", ")
        )));
    }
    names
        .iter()
        .map(|name| {
            let v = q
                .get(*name)
                .ok_or_else(|| bad(format!("`{name}` is missing")))?;
            v.parse()
                .map_err(|_| bad(format!("`{name}` = `{v}` is not a number")))
        })
        .collect()
}

/// `GET /v1/sync/operations?size=&start=&max=`.
async fn sync_operations(
    State(node): State<Arc<Node>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let n = sync_query(&q, &["size", "start", "max"])?;
    serve_sync(
        node,
        verity_store::SyncRequest::Operations {
            size: n[0],
            start: n[1],
            max_ops: n[2],
        },
    )
    .await
}

/// `GET /v1/sync/boundary?size=&start=`.
async fn sync_boundary(
    State(node): State<Arc<Node>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let n = sync_query(&q, &["size", "start"])?;
    serve_sync(
        node,
        verity_store::SyncRequest::Boundary {
            size: n[0],
            start: n[1],
        },
    )
    .await
}

async fn serve_sync(
    node: Arc<Node>,
    request: verity_store::SyncRequest,
) -> Result<Response, ApiError> {
    let slot = slot(
        &node.sync_slots,
        "the node is serving as many sync requests as it will at once; try again shortly",
    )?;
    let answer = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        node.state_store().serve_sync(request)
    })
    .await
    .map_err(internal)?;
    match answer {
        Ok(bytes) => Ok(octets(bytes)),
        Err(e @ verity_store::StoreError::Unavailable(_)) => {
            Err(error(StatusCode::GONE, ErrorCode::NotFound, e.to_string()))
        }
        Err(e) => Err(internal(e)),
    }
}

/// Runs a view that walks whole tables of the state, which it reads from the node's database,
/// on a blocking thread rather than an async worker.
async fn walking<T: Send + 'static>(
    view: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(view).await.map_err(internal)
}

/// `GET /metrics`: Prometheus's text format (OpenMetrics).
async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let body = walking(move || {
        let stats = views::stats(&node).unwrap_or_default();
        let figures = crate::metrics::StateFigures::of(&node.state());
        node.metrics().render(&views::head(&node), &stats, figures)
    })
    .await;
    match body {
        Ok(body) => ([("content-type", routes::METRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/stats`.
async fn stats(State(node): State<Arc<Node>>) -> ApiResult<NetworkStats> {
    walking(move || views::stats(&node))
        .await?
        .map(Json)
        .map_err(internal)
}

async fn head(State(node): State<Arc<Node>>) -> ApiResult<Head> {
    Ok(Json(views::head(&node)))
}

async fn submit_tx(
    State(node): State<Arc<Node>>,
    body: Result<Json<SubmitTx>, JsonRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let Json(body) = body?;
    let bytes = BASE64
        .decode(body.tx.as_bytes())
        .map_err(|e| bad(format!("`tx` is not valid base64: {e}")))?;
    let tx = SignedTx::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
    // The same signed transaction again (a client that could not tell whether its first try
    // arrived, here or at another node) is the same transaction: its id, not an error.
    let id = tx.id();
    if node.mempool_contains(&id) || node.storage().tx_outcome(&id).map_err(internal)?.is_some() {
        return Ok((StatusCode::ACCEPTED, Json(Submitted { tx_id: id })));
    }
    let id = node.submit(tx).map_err(refused)?;
    Ok((StatusCode::ACCEPTED, Json(Submitted { tx_id: id })))
}

async fn tx_status(State(node): State<Arc<Node>>, Path(id): Path<String>) -> ApiResult<TxStatus> {
    let id = parse_digest("transaction id", &id)?;
    if node.mempool_contains(&id) {
        return Ok(Json(TxStatus {
            status: TxState::Pending,
            height: None,
            error: None,
        }));
    }
    match node.storage().tx_outcome(&id).map_err(internal)? {
        Some(o) => Ok(Json(TxStatus {
            status: if o.error.is_some() {
                TxState::Rejected
            } else {
                TxState::Accepted
            },
            height: Some(o.height),
            error: o.error,
        })),
        None => Err(not_found(format!(
            "transaction {id} is unknown (never submitted, or dropped)"
        ))),
    }
}

fn find_job<'s>(state: &'s verity_ledger::State, id: &str) -> Result<&'s Job, ApiError> {
    let id: JobId = parse_digest("job id", id)?;
    state
        .jobs
        .get(&id)
        .ok_or_else(|| not_found(format!("job {id} is unknown")))
}

/// A job in the state, or in this node's archive once it retired (`true`): for the routes that
/// show what a job was, not those that act on it.
pub(super) fn find_any_job(node: &Node, id: &str) -> Result<(Job, bool), ApiError> {
    let id: JobId = parse_digest("job id", id)?;
    node.job_anywhere(&id)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("job {id} is unknown")))
}

async fn job(State(node): State<Arc<Node>>, Path(id): Path<String>) -> ApiResult<JobView> {
    let (job, archived) = find_any_job(&node, &id)?;
    Ok(Json(views::job_view(&node.state(), job, archived)))
}

async fn list_jobs(
    State(node): State<Arc<Node>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<JobPage> {
    for k in q.keys() {
        if !matches!(
            k.as_str(),
            "state" | "client" | "provider" | "after" | "limit"
        ) {
            return Err(bad(format!(
                "unknown query parameter `{k}` (use state, client, provider, after, limit)"
            )));
        }
    }
    let state_filter = q
        .get("state")
        .map(|s| s.parse::<JobState>().map_err(bad))
        .transpose()?;
    let client = q.get("client").map(|s| parse_address(s)).transpose()?;
    let provider = q.get("provider").map(|s| parse_address(s)).transpose()?;
    let after = q
        .get("after")
        .map(|s| parse_digest::<JobId>("cursor", s))
        .transpose()?;
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| bad(format!("limit `{l}` is not a number")))?,
        None => 50,
    };
    views::check_limit(limit).map_err(bad)?;
    let query = JobQuery {
        state: state_filter,
        client,
        provider,
        after,
        limit: Some(limit),
    };
    tokio::task::spawn_blocking(move || views::jobs(&node, &query))
        .await
        .map_err(internal)?
        .map(Json)
        .map_err(internal)
}

async fn receipt(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (job, _) = find_any_job(&node, &id)?;
    let (Some(outputs), Some(proof_hash)) = (job.outputs(), job.proof_hash()) else {
        return Err(not_found(format!(
            "job {} has no proof-backed result ({}, {:?} mode)",
            job.id,
            job.state(),
            job.request.mode
        )));
    };
    // Built from the ledger alone (its cycle count included), so every node serves the same
    // receipt.
    let proof = stored_proof(&node, &proof_hash)?;
    let cycles = job.cycles().unwrap_or(0);
    let receipt = verity_vm::receipt_from_proof(
        job.program_hash,
        job.proof_inputs(),
        *outputs,
        proof,
        cycles,
    )
    .map_err(internal)?;
    Ok(([("content-type", "application/json")], receipt.to_json()).into_response())
}

/// A proof the ledger accepted, as this node stored it with its block.
fn stored_proof(node: &Node, proof_hash: &Digest) -> Result<Vec<u8>, ApiError> {
    node.storage()
        .blob(proof_hash)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("proof {proof_hash} is not stored on this node")))
}

/// `GET /v1/programs/{hash}`: a published program, with its source.
async fn program(
    State(node): State<Arc<Node>>,
    Path(hash): Path<String>,
) -> ApiResult<PublishedProgram> {
    let hash = ProgramHash(parse_digest("program hash", &hash)?);
    let state = node.state();
    let program = state
        .programs
        .get(&hash)
        .ok_or_else(|| not_found(format!("no program {hash} is published")))?;
    Ok(Json(program.clone()))
}

async fn provenance(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<ProvenanceView> {
    let id = parse_digest("job id", &id)?;
    let job = JobId(id);
    let slot = proof_slot(&node)?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        views::provenance(&node, &job)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?
    .map(Json)
    .ok_or_else(|| not_found(format!("job {id} is unknown or not finished")))
}

/// `GET /v1/jobs/{id}/private`: the private inputs the job's client provided on the ledger,
/// sealed to the locker. Public: every node holds them, only the locker can open them.
async fn sealed_inputs(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<SealedInputs> {
    let state = node.state();
    let job = find_job(&state, &id)?;
    if job.request.private_inputs.is_none() {
        return Err(not_found("this job has no private inputs"));
    }
    let sealed = node
        .storage()
        .blob(&crate::node::private_inputs_key(&job.id))
        .map_err(internal)?
        .ok_or_else(|| not_found("the client has not provided this job's private inputs yet"))?;
    Ok(Json(SealedInputs {
        sealed: BASE64.encode(sealed),
    }))
}

async fn account(
    State(node): State<Arc<Node>>,
    Path(addr): Path<String>,
) -> ApiResult<AccountView> {
    let address = parse_address(&addr)?;
    let state = node.state();
    let acct = state.accounts.get(&address).cloned().unwrap_or_default();
    Ok(Json(AccountView {
        address,
        balance: acct.balance,
        nonce: acct.nonce,
        next_nonce: node.next_nonce(&address),
        stake: state.stakes.get(&address).cloned().unwrap_or_default(),
    }))
}

async fn provider(
    State(node): State<Arc<Node>>,
    Path(addr): Path<String>,
) -> ApiResult<ProviderView> {
    let address = parse_address(&addr)?;
    let state = node.state();
    Ok(Json(views::provider_view(&node, &state, address)))
}

/// `GET /v1/auditors`: every validator's record as an auditor, from the ledger.
async fn auditors(
    State(node): State<Arc<Node>>,
) -> ApiResult<Vec<verity_ledger::trust::AuditorProfile>> {
    walking(move || verity_ledger::trust::AuditorProfile::all(&node.state()))
        .await
        .map(Json)
}

/// `GET /v1/providers`: every staked provider or provider with a record, best score first.
async fn providers(State(node): State<Arc<Node>>) -> ApiResult<Vec<ProviderView>> {
    walking(move || views::providers(&node)).await.map(Json)
}

async fn heartbeat(
    State(node): State<Arc<Node>>,
    body: Result<Json<Heartbeat>, JsonRejection>,
) -> ApiResult<serde_json::Value> {
    use crate::heartbeat::HeartbeatRefused;
    let Json(hb) = body?;
    node.heartbeat(&hb).map_err(|e| match e {
        HeartbeatRefused::BadSignature | HeartbeatRefused::NotStaked => forbidden(e.to_string()),
        HeartbeatRefused::NotCurrent { .. } => bad(e.to_string()),
    })?;
    Ok(Json(serde_json::json!({"ok": true})))
}

async fn events(
    State(node): State<Arc<Node>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(node.subscribe()).filter_map(|e| {
        let e = e.ok()?;
        Some(Ok(SseEvent::default()
            .event("job")
            .json_data(&e)
            .unwrap_or_default()))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_describes_exactly_the_routes_the_node_serves() {
        let document = verity_api::openapi::document();
        let described: BTreeSet<&str> = document.paths.paths.keys().map(String::as_str).collect();
        let served: BTreeSet<&str> = super::api_routes().iter().map(|(path, _)| *path).collect();
        assert_eq!(served, described);
    }
}
