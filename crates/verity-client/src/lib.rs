//! Rust SDK for a Verity node's HTTP API (`docs/API.md`).
//!
//! Every call returns a typed value or a [`ClientError`] carrying the node's own explanation.
//! Receipts fetched through [`Client::receipt`] are checked locally with `verity-vm`: the SDK
//! never asks you to trust the node about a proof.

pub use verity_api::*;
/// The wire types (ids, transactions, receipts), so an application needs only this crate.
pub use verity_types as types;
/// Local verification, for receipts that come from anywhere (a file, another service).
pub use verity_vm::{Verified, VerifyError, verify_receipt};
pub mod provenance;
pub mod sealing;

pub use provenance::{CertifiedProvenance, CertifiedRoot, ProvenanceError, TrustedValidators};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use verity_ledger::Job;
use verity_types::{
    Address, Digest, JobId, Keypair, ProgramHash, Receipt, SignedTx, Tx, TxBody, TxId,
};

/// The offer `verity job submit` makes unless told otherwise: a reverse Dutch auction from a
/// tenth of `max_price` up to it over 8 blocks, 40 blocks to lock, 400 to deliver, collateral
/// equal to the price. Validators' canary jobs make the same offer, so they look the same.
pub const fn default_offer(max_price: u64) -> verity_types::Offer {
    verity_types::Offer {
        min_price: max_price / 10,
        max_price,
        ramp_start: 0,
        ramp_period: 8,
        lock_timeout: 40,
        timeout: 400,
        collateral: max_price,
    }
}

/// Reference proving speed, in `n·log2(n)` per second for a padded trace of `n` rows: the
/// README's build on a 2-core machine proves 2^16 rows in ~9 s, 1.05 M such units. STARK
/// proving grows like `n log n` (FFTs and Merkle trees over the trace), not linearly.
pub const REFERENCE_PROVE_RATE: f64 = 110_000.0;

/// Whether `view`'s record is the current provenance entry of its job in the state whose root
/// is `view.state_root` (the record as served, re-encoded: borsh has one encoding per value).
/// Trust it as far as the root: [`Client::certified_provenance`] (`verity provenance verify`)
/// ties the root to a block the validators signed.
pub fn verify_provenance(view: &ProvenanceView) -> bool {
    let Ok(encoded) = borsh::to_vec(&view.record) else {
        return false;
    };
    verity_store::verify(
        &view.record.store_key(),
        &encoded,
        &view.proof.proof,
        &view.state_root,
    )
}

/// `n·log2(n)` for a trace of `trace_len` rows (the unit of [`REFERENCE_PROVE_RATE`]).
pub fn prove_work(trace_len: u64) -> f64 {
    let n = trace_len.max(2) as f64;
    n * n.log2()
}

/// Expected proving time of a trace of `trace_len` rows at `rate` (`n·log2 n` per second).
pub fn expected_prove_time(trace_len: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(prove_work(trace_len) / rate.max(1.0))
}

/// Lock and final timeouts (in blocks of `block_ms`) that give an honest provider at a third
/// of the reference speed time to lock, prove a trace of `trace_len` rows and be included
/// (plus 10 s), never below the SDK's defaults: a default offer fits the job it is for.
pub fn default_timeouts(trace_len: u64, block_ms: u64) -> (u64, u64) {
    let defaults = default_offer(DEFAULT_MAX_PRICE);
    let needed = expected_prove_time(trace_len, REFERENCE_PROVE_RATE) * 3 + Duration::from_secs(10);
    let blocks = (needed.as_millis() as u64).div_ceil(block_ms.max(1));
    let lock_timeout = blocks.max(defaults.lock_timeout);
    (lock_timeout, (2 * lock_timeout).max(defaults.timeout))
}

/// The default max price of a job.
pub const DEFAULT_MAX_PRICE: u64 = 1_000;

/// The cycle cap a job asks for when its submitter does not choose one: twice what a local
/// run took, within the VM's limits.
pub fn suggested_max_cycles(trace_len: u64, cap: u32) -> u32 {
    (trace_len * 2).clamp(u64::from(verity_vm::MIN_MAX_CYCLES), u64::from(cap)) as u32
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The node answered with an error status and this explanation.
    #[error("node refused ({status}): {message}")]
    Refused {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
    #[error("the node's receipt does not verify: {0}")]
    BadReceipt(String),
    #[error("timed out: {0}")]
    Timeout(String),
}

/// A state entry whose inclusion in `state_root` (the state after block `height`) checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven<T> {
    pub value: T,
    pub state_root: Digest,
    pub height: u64,
}

/// The HTTP client under a [`Client`]: `timeout` for each whole request.
fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        // A dead host that drops packets must not hold a failover for the whole timeout.
        .connect_timeout(Duration::from_secs(3))
        .build()
        .expect("a plain HTTP client builds")
}

/// A node's error answer: its `ErrorBody`, or the body as text from something that is not a
/// Verity node.
fn refused(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    let (message, code) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => (body.error, body.code),
        Err(_) => (
            String::from_utf8_lossy(body).into_owned(),
            ErrorCode::Invalid,
        ),
    };
    ClientError::Refused {
        status: status.as_u16(),
        code,
        message,
    }
}

/// A handle on a node, or on several nodes of one network with failover
/// ([`Client::with_failover`]).
#[derive(Clone)]
pub struct Client {
    /// The nodes this client talks to, in failover order; `current` is the one in use.
    nodes: Arc<[String]>,
    current: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl Client {
    /// `url` like `http://127.0.0.1:8545`.
    pub fn new(url: &str) -> Client {
        Client::with_failover(&[url])
    }

    /// A client of several nodes of one network: calls go to one of them, and when it does
    /// not answer to the next, which is then kept. A node that answers with an error is not
    /// failed over from: the error is the answer. Reads fail over on any transport error; a
    /// `POST` only when the connection could not be made (a request that may have arrived is
    /// not sent again elsewhere: the caller checks and resends, and nodes take the same signed
    /// transaction twice as one). Panics on an empty list.
    pub fn with_failover(urls: &[impl AsRef<str>]) -> Client {
        assert!(!urls.is_empty(), "a client needs a node");
        let http = http_client(Duration::from_secs(30));
        Client {
            nodes: urls
                .iter()
                .map(|u| u.as_ref().trim_end_matches('/').to_string())
                .collect(),
            current: Arc::new(AtomicUsize::new(0)),
            http,
        }
    }

    /// The same client with `timeout` for each whole request (30 s unless set): a state
    /// snapshot of millions of accounts takes longer than an API call.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Client {
        self.http = http_client(timeout);
        self
    }

    /// The node in use.
    pub fn url(&self) -> &str {
        &self.nodes[self.current.load(Ordering::Relaxed) % self.nodes.len()]
    }

    /// Sends the request `build` makes for a node's base URL: to the node in use, then to
    /// each other until one answers.
    async fn request(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        read_only: bool,
    ) -> Result<reqwest::Response, ClientError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut unreachable = Vec::new();
        for k in 0..self.nodes.len() {
            let i = (start + k) % self.nodes.len();
            match build(&self.nodes[i]).send().await {
                Ok(resp) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) => {
                    let arrived_maybe = !read_only && !e.is_connect();
                    unreachable.push((i, verity_types::error_chain(&e)));
                    if arrived_maybe {
                        break;
                    }
                }
            }
        }
        let reason = unreachable
            .iter()
            .map(|(i, e)| format!("{}: {e}", self.nodes[*i]))
            .collect::<Vec<_>>()
            .join("; ");
        Err(ClientError::Unreachable {
            url: self.nodes.join(", "),
            reason,
        })
    }

    async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        resp: Result<reqwest::Response, ClientError>,
    ) -> Result<T, ClientError> {
        let resp = resp?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if !status.is_success() {
            return Err(refused(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let sent = self
            .request(|base| self.http.get(format!("{base}{path}")), true)
            .await;
        self.decode(sent).await
    }

    async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let sent = self
            .request(
                |base| self.http.post(format!("{base}{path}")).json(body),
                false,
            )
            .await;
        self.decode(sent).await
    }

    pub async fn head(&self) -> Result<Head, ClientError> {
        self.get(routes::HEAD).await
    }

    /// Submits a signed transaction; returns its id once the mempool has admitted it.
    pub async fn submit(&self, tx: &SignedTx) -> Result<TxId, ClientError> {
        let body = SubmitTx {
            tx: BASE64.encode(tx.to_bytes()),
        };
        let r: Submitted = self.post(routes::TXS, &body).await?;
        Ok(r.tx_id)
    }

    /// Signs `body` with `key` at the account's next nonce (counting its pending transactions)
    /// and submits it.
    pub async fn send(&self, key: &Keypair, body: TxBody) -> Result<TxId, ClientError> {
        self.submit(&self.sign(key, body).await?).await
    }

    /// Signs `body` with `key` for this network at the account's next nonce (counting its
    /// pending transactions), without submitting it: a caller that must not pay twice keeps
    /// the signed transaction and resends exactly it.
    pub async fn sign(&self, key: &Keypair, body: TxBody) -> Result<SignedTx, ClientError> {
        let head = self.head().await?;
        let account = self.account(&key.address()).await?;
        let tx = Tx {
            chain_id: head.chain_id,
            signer: key.address(),
            nonce: account.next_nonce,
            body,
        };
        Ok(tx.sign(key))
    }

    pub async fn tx_status(&self, id: &TxId) -> Result<TxStatus, ClientError> {
        self.get(&routes::path(routes::TX, id)).await
    }

    /// Waits until a transaction is in a block; returns an error carrying the ledger's reason
    /// if it was rejected there.
    pub async fn wait_tx(&self, id: &TxId, timeout: Duration) -> Result<u64, ClientError> {
        let start = std::time::Instant::now();
        loop {
            let s = self.tx_status(id).await?;
            match s.status {
                TxState::Accepted => return Ok(s.height.unwrap_or_default()),
                TxState::Rejected => {
                    return Err(ClientError::Refused {
                        status: 422,
                        code: ErrorCode::Rejected,
                        message: s.error.unwrap_or_else(|| "rejected".into()),
                    });
                }
                _ if start.elapsed() > timeout => {
                    return Err(ClientError::Protocol(format!(
                        "transaction {id} not included after {timeout:?}"
                    )));
                }
                _ => tokio_sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// A published program, or `None` if no program of that hash is published.
    pub async fn program(
        &self,
        hash: &ProgramHash,
    ) -> Result<Option<verity_ledger::PublishedProgram>, ClientError> {
        match self.get(&routes::path(routes::PROGRAM, hash)).await {
            Ok(p) => Ok(Some(p)),
            Err(ClientError::Refused {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The jobs, accounts and programs whose ids start with `prefix`.
    pub async fn resolve(
        &self,
        prefix: &verity_types::IdPrefix,
    ) -> Result<verity_api::Resolution, ClientError> {
        self.get(&routes::path(routes::RESOLVE, prefix)).await
    }

    pub async fn job(&self, id: &JobId) -> Result<JobView, ClientError> {
        self.get(&routes::path(routes::JOB, id)).await
    }

    pub async fn jobs(&self, query: &JobQuery) -> Result<JobPage, ClientError> {
        let mut q = vec![];
        if let Some(s) = &query.state {
            q.push(format!("state={s}"));
        }
        if let Some(a) = &query.client {
            q.push(format!("client={a}"));
        }
        if let Some(a) = &query.provider {
            q.push(format!("provider={a}"));
        }
        if let Some(c) = &query.after {
            q.push(format!("after={c}"));
        }
        if let Some(l) = query.limit {
            q.push(format!("limit={l}"));
        }
        self.get(&format!("{}?{}", routes::JOBS, q.join("&"))).await
    }

    /// Fetches a job's receipt and verifies it locally against the job on the ledger.
    pub async fn receipt(&self, id: &JobId) -> Result<Receipt, ClientError> {
        let receipt: serde_json::Value = self.get(&routes::path(routes::JOB_RECEIPT, id)).await?;
        let bytes =
            serde_json::to_vec(&receipt).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let receipt =
            Receipt::from_json(&bytes).map_err(|e| ClientError::BadReceipt(e.to_string()))?;
        let job = self.job(id).await?.job;
        // The job's statement: its program (wrapped for private inputs) and public inputs
        // (the private-input commitment first), with the outputs on the ledger.
        if receipt.program_hash != job.program_hash
            || receipt.stack_inputs != job.proof_inputs()
            || job.outputs() != Some(&receipt.stack_outputs)
        {
            return Err(ClientError::BadReceipt(
                "receipt is not for this job".into(),
            ));
        }
        verity_vm::verify_receipt(&receipt).map_err(|e| ClientError::BadReceipt(e.to_string()))?;
        Ok(receipt)
    }

    /// The state entry of `kind` under `id` (an address, or a job id), decoded from the bytes
    /// the state root commits to after its inclusion proof checked out. Trust it as far as
    /// the root: `verity provenance verify` shows how to tie a root to a block the validators
    /// signed (`Proven::height` + 1 names it).
    pub async fn proven<T: borsh::BorshDeserialize>(
        &self,
        kind: verity_ledger::EntryKind,
        id: &[u8; 32],
    ) -> Result<Proven<T>, ClientError> {
        let view: StateProof = self
            .get(&routes::proof_path(kind.name(), Digest(*id)))
            .await?;
        let bad = |why: &str| ClientError::Protocol(format!("state proof: {why}"));
        if view.kind != kind || view.id.0 != *id {
            return Err(bad("the node answered for another entry"));
        }
        let encoded = BASE64
            .decode(view.encoded.as_bytes())
            .map_err(|e| bad(&e.to_string()))?;
        let key = kind.store_key(id);
        if !verity_store::verify(&key, &encoded, &view.proof.proof, &view.state_root) {
            return Err(bad("the entry is not in the state root the node gave"));
        }
        let value = T::try_from_slice(&encoded).map_err(|e| bad(&e.to_string()))?;
        Ok(Proven {
            value,
            state_root: view.state_root,
            height: view.height,
        })
    }

    /// A block's encoding and finalization certificate, as the node has them: check both
    /// (`verity_consensus::certificate::verify`) before believing either.
    pub async fn certified_block(&self, height: u64) -> Result<CertifiedBlock, ClientError> {
        self.get(&routes::path(routes::BLOCK_CERTIFIED, height))
            .await
    }

    /// The node's committed state for a state sync, read whole (refused past `max_bytes`).
    /// Nothing in it is checked here: see [`verity_api::StateSnapshot`].
    pub async fn state_snapshot(
        &self,
        max_bytes: usize,
    ) -> Result<verity_api::StateSnapshot, ClientError> {
        let bytes = self.get_bytes(routes::SYNC_SNAPSHOT, max_bytes).await?;
        borsh::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("undecodable state snapshot: {e}")))
    }

    /// The node's answer to one request of a state sync (QMDB's encoding, checked by the
    /// store that asked), at most `max_bytes`.
    pub async fn sync_answer(
        &self,
        request: verity_store::SyncRequest,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let path = match request {
            verity_store::SyncRequest::Operations {
                size,
                start,
                max_ops,
            } => format!(
                "{}?size={size}&start={start}&max={max_ops}",
                routes::SYNC_OPERATIONS
            ),
            verity_store::SyncRequest::Boundary { size, start } => {
                format!("{}?size={size}&start={start}", routes::SYNC_BOUNDARY)
            }
        };
        self.get_bytes(&path, max_bytes).await
    }

    /// A binary answer, read up to `max_bytes` (a node sending more is refused before it is
    /// all in memory); an error status decodes as [`ClientError::Refused`].
    async fn get_bytes(&self, path: &str, max_bytes: usize) -> Result<Vec<u8>, ClientError> {
        let mut resp = self
            .request(|base| self.http.get(format!("{base}{path}")), true)
            .await?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
        {
            if bytes.len() + chunk.len() > max_bytes {
                return Err(ClientError::Protocol(format!(
                    "the answer to {path} is over {max_bytes} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(refused(status, &bytes));
        }
        Ok(bytes)
    }

    pub async fn provenance(&self, id: &JobId) -> Result<ProvenanceView, ClientError> {
        self.get(&routes::path(routes::JOB_PROVENANCE, id)).await
    }

    pub async fn account(&self, addr: &Address) -> Result<AccountView, ClientError> {
        self.get(&routes::path(routes::ACCOUNT, addr)).await
    }

    /// Every provider with stake or a record, best trust score first.
    pub async fn providers(&self) -> Result<Vec<ProviderView>, ClientError> {
        self.get(routes::PROVIDERS).await
    }

    /// Every validator's record as an auditor (canaries, contradicted claims, slashes).
    pub async fn auditors(&self) -> Result<Vec<verity_ledger::trust::AuditorProfile>, ClientError> {
        self.get(routes::AUDITORS).await
    }

    pub async fn provider(&self, addr: &Address) -> Result<ProviderView, ClientError> {
        self.get(&routes::path(routes::PROVIDER, addr)).await
    }

    /// Hands a locked job's private inputs to its locker, on the ledger, sealed to the
    /// locker's key: waits (up to `timeout`) for a provider to lock the job, then sends
    /// `ProvideInputs` signed by the job's client (`key`). Returns the locker.
    pub async fn provide_private(
        &self,
        job: &JobId,
        values: &[u64],
        key: &Keypair,
        timeout: Duration,
    ) -> Result<Address, ClientError> {
        let started = std::time::Instant::now();
        let locker = loop {
            let view = self.job(job).await?;
            match (view.job.state(), view.job.locker()) {
                (verity_ledger::JobState::Locked, Some(locker))
                    if view.job.sealed_inputs_hash().is_none() =>
                {
                    break locker;
                }
                (verity_ledger::JobState::Submitted, _) => {}
                (state, _) => {
                    return Err(ClientError::Protocol(format!(
                        "job {job} is {state}: its private inputs cannot be provided now"
                    )));
                }
            }
            if started.elapsed() > timeout {
                return Err(ClientError::Timeout(format!(
                    "no provider locked job {job} within {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let sealed = sealing::seal(job, values, &locker)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let tx = self
            .send(
                key,
                TxBody::ProvideInputs {
                    job_id: *job,
                    sealed,
                },
            )
            .await?;
        self.wait_tx(&tx, Duration::from_secs(30)).await?;
        Ok(locker)
    }

    /// A job's private inputs as provided on the ledger, still sealed (open them with
    /// [`sealing::open`] after checking them against the job's `sealed_inputs_hash`).
    /// `Refused { status: 404 }` until the client has provided them.
    pub async fn sealed_inputs(&self, job: &JobId) -> Result<Vec<u8>, ClientError> {
        let body: SealedInputs = self.get(&routes::path(routes::JOB_PRIVATE, job)).await?;
        BASE64
            .decode(body.sealed.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("sealed inputs are not base64: {e}")))
    }

    /// A job's private inputs as provided on the ledger, checked against the hash the ledger
    /// recorded and opened with the locker's `key`.
    pub async fn private_inputs(
        &self,
        job: &JobId,
        key: &Keypair,
    ) -> Result<Vec<u64>, ClientError> {
        let recorded = self.job(job).await?.job.sealed_inputs_hash();
        let sealed = self.sealed_inputs(job).await?;
        if recorded != Some(Digest::blake3(&sealed)) {
            return Err(ClientError::Protocol(
                "the node served sealed inputs that are not the ones on the ledger".into(),
            ));
        }
        sealing::open(job, &sealed, key).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Announces a provider as online (signed, so nobody can announce for it).
    pub async fn heartbeat(&self, key: &Keypair, height: u64) -> Result<(), ClientError> {
        let signature = key.sign(&heartbeat_message(&key.address(), height));
        let body = Heartbeat {
            provider: key.address(),
            height,
            signature,
        };
        let _: serde_json::Value = self.post(routes::HEARTBEAT, &body).await?;
        Ok(())
    }

    /// Polls a job until it reaches a terminal state, calling `on_change` with each new
    /// timeline entry.
    pub async fn wait_job(
        &self,
        id: &JobId,
        timeout: Duration,
        mut on_change: impl FnMut(&verity_ledger::TimelineEntry),
    ) -> Result<Job, ClientError> {
        let start = std::time::Instant::now();
        let mut seen = 0;
        loop {
            let view = self.job(id).await?;
            for entry in &view.job.timeline[seen..] {
                on_change(entry);
            }
            seen = view.job.timeline.len();
            if view.job.state().is_terminal() {
                return Ok(view.job);
            }
            if start.elapsed() > timeout {
                return Err(ClientError::Protocol(format!(
                    "job {id} still {} after {timeout:?}",
                    view.job.state()
                )));
            }
            tokio_sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn tokio_sleep(d: Duration) {
    tokio::time::sleep(d).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Speaks anything but TLS: reads a request, answers in plain HTTP with an empty body, and
    /// reports the first bytes each connection sent.
    async fn plain_http_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, heard) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = socket.read(&mut buf).await {
                        request.extend_from_slice(&buf[..n]);
                        if request.windows(4).any(|w| w == b"\r\n\r\n") || request[0] == 0x16 {
                            break;
                        }
                    }
                    let _ = seen.send(request.iter().take(3).copied().collect());
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        (addr.to_string(), heard)
    }

    /// The client speaks TLS to `https://` nodes (it once had no TLS backend, and refused every
    /// https URL before sending anything): the server hears a TLS handshake record (0x16,
    /// version 3.x), and plain http still reaches it as HTTP.
    #[tokio::test]
    async fn https_nodes_are_reached_over_tls() {
        let (addr, mut heard) = plain_http_server().await;
        let err = Client::new(&format!("https://{addr}"))
            .head()
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
        let first = heard.recv().await.unwrap();
        assert_eq!(
            &first[..2],
            &[0x16, 0x03],
            "not a TLS handshake: {first:?} ({err})"
        );
        // Plain http to the same server gets through the transport (its empty body is then
        // not a head, which is a protocol error, not an unreachable node).
        let plain = Client::new(&format!("http://{addr}"))
            .head()
            .await
            .unwrap_err();
        assert!(matches!(plain, ClientError::Protocol(_)), "{plain}");
        assert_eq!(heard.recv().await.unwrap(), b"GET");
    }

    /// A client of several nodes carries on through the next when one does not answer.
    #[tokio::test]
    async fn a_dead_node_is_failed_over_to_the_next() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (live, _) = plain_http_server().await;
        let client = Client::with_failover(&[format!("http://{dead}"), format!("http://{live}")]);
        // The live node answers (its empty body is not a head: a protocol error, not
        // "unreachable").
        let err = client.head().await.unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{err}");
        assert_eq!(client.url(), format!("http://{live}"));
        let alone = Client::new(&format!("http://{dead}"))
            .head()
            .await
            .unwrap_err();
        assert!(matches!(alone, ClientError::Unreachable { .. }), "{alone}");
    }

    #[test]
    fn default_offers_give_big_jobs_time_and_small_ones_the_usual_terms() {
        let defaults = default_offer(DEFAULT_MAX_PRICE);
        // A small job: about the usual 40 blocks (10 s of slack for inclusion dominate).
        let (lock, timeout) = default_timeouts(1 << 10, 250);
        assert!((defaults.lock_timeout..50).contains(&lock), "{lock}");
        assert_eq!(timeout, defaults.timeout);
        // Issue 14's job: fib(15000), trace 2^18, which took 99.9 s to prove on the old build
        // against a 100 s default deadline. Now the locker alone gets three times the expected
        // proving time, and the final deadline twice that.
        let (lock, timeout) = default_timeouts(1 << 18, 250);
        let lock_window = Duration::from_millis(lock * 250);
        assert!(lock_window >= expected_prove_time(1 << 18, REFERENCE_PROVE_RATE) * 3);
        assert!(lock_window > Duration::from_secs(100), "{lock_window:?}");
        assert_eq!(timeout, 2 * lock);
        // Proving grows faster than the trace.
        assert!(
            expected_prove_time(1 << 18, REFERENCE_PROVE_RATE)
                > expected_prove_time(1 << 16, REFERENCE_PROVE_RATE) * 4
        );
    }
}
