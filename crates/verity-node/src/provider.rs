//! The provider worker: watches open jobs, locks the ones worth proving that it can deliver in
//! time, proves on blocking threads, and fulfils. It talks to a node only through the public
//! HTTP API, so it runs the same inside `verity devnet` and as `verity provider`.
//!
//! It resumes after a restart from the ledger itself: every job locked by its key and not yet
//! fulfilled is picked up again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use verity_client::{Client, JobQuery};
use verity_ledger::{Job, JobState};
use verity_types::{Digest, Keypair, Mode, PrivateCommitment, ProgramSource, StackOutputs, TxBody};
use verity_vm::{Inputs, Program, ProveOptions};

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub node_url: String,
    pub key: Keypair,
    /// The least the provider accepts, per million cycles of (padded) trace.
    pub price_per_mcycle: u64,
    /// Most jobs held (locked, not yet fulfilled) at once.
    pub max_queue: usize,
    pub poll_interval: Duration,
    /// Where to answer auditors' liveness probes (`GET /v1/ping`); the worker announces it
    /// on the ledger as `http://ADDR` (or `endpoint`, when set: the public URL).
    pub probe_listen: Option<std::net::SocketAddr>,
    pub endpoint: Option<String>,
    /// Data this provider holds and proves with: e.g. the weights of a committed-weights
    /// model it owns. A job gets the data in its advice map only if it runs the program the
    /// data is for and its public stack names the commitment (the program checks the data
    /// against it); nobody else ever sees it.
    pub held_data: HeldData,
    /// Misbehaviour to exhibit, for tests of the auditors. Never set in production.
    #[doc(hidden)]
    pub fault: Option<ProviderFault>,
}

/// Data a provider holds (see [`ProviderConfig::held_data`]).
pub type HeldData = std::sync::Arc<Vec<CommittedData>>;

/// Committed data a provider holds, and the one program it will run it with.
#[derive(Debug, Clone)]
pub struct CommittedData {
    pub commitment: PrivateCommitment,
    pub values: Vec<u64>,
    /// Only jobs of this program get the data: any other program could simply output it
    /// (anyone can name a public commitment on a job's stack).
    pub program: Digest,
}

/// Scripted misbehaviour of a provider (tests).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderFault {
    /// In optimistic mode, claim outputs that differ from the program's.
    WrongOutputs,
    /// Answer only every other liveness probe.
    FlakyEndpoint,
    /// Wait this long after computing a result before delivering it.
    Slow { delay_ms: u64 },
}

impl ProviderConfig {
    pub fn new(node_url: &str, key: Keypair) -> ProviderConfig {
        ProviderConfig {
            node_url: node_url.to_string(),
            key,
            price_per_mcycle: 1_000,
            max_queue: 4,
            poll_interval: Duration::from_millis(200),
            probe_listen: None,
            endpoint: None,
            held_data: Default::default(),
            fault: None,
        }
    }
}

/// The held data for `job`, as advice-map entries: data for the job's program whose
/// commitment is the job's first public input (where that program reads it).
fn held_advice(held: &[CommittedData], job: &Job) -> Vec<(Digest, Vec<u64>)> {
    held.iter()
        .filter(|h| {
            h.program == job.program_hash
                && job.request.stack_inputs.get(..4) == Some(&h.commitment.commitment[..])
        })
        .map(|h| verity_vm::committed_entry(&h.commitment, &h.values))
        .collect()
}

/// Proving speed, measured: a proof of `n` rows takes `base · (n / 2^12)^exponent`.
///
/// Measured on 2 cores (Miden 0.23): 2^10 0.15 s, 2^12 0.56 s, 2^14 1.8 s, 2^16 7.7 s, 2^19
/// 58 s. Small proofs use the cores less well, so time grows a little slower than `n` at
/// first and like `n log n` later; an exponent fit on two small proofs and kept at least 1
/// errs on the slow side by ~1.2x at 2^16..2^19. (The `n log n` rate of a single 2^12 proof
/// overestimated 2^16 by 2x, and the provider skipped jobs it could have delivered.) Starts
/// from half the SDK's reference speed, is calibrated when the worker starts, and follows
/// every proof since.
struct Speed {
    /// Time of a 2^12-row proof.
    base: Duration,
    exponent: f64,
}

const BASE_ROWS: f64 = 4096.0;

impl Speed {
    fn reference() -> Speed {
        Speed {
            base: verity_client::expected_prove_time(1 << 12, verity_client::REFERENCE_PROVE_RATE)
                * 2,
            exponent: 1.1,
        }
    }

    /// The power law through two measured proofs `(trace_len, took)`, the second the larger,
    /// its exponent kept within [1, 1.5] (noise cannot make big proofs look cheap).
    fn fit(small: (u64, Duration), large: (u64, Duration)) -> Speed {
        let (n1, t1) = (small.0.max(1) as f64, small.1.as_secs_f64().max(1e-4));
        let (n2, t2) = (large.0.max(1) as f64, large.1.as_secs_f64().max(1e-4));
        let exponent = if n2 > n1 {
            (t2 / t1).ln() / (n2 / n1).ln()
        } else {
            1.0
        };
        let exponent = if exponent.is_finite() {
            exponent.clamp(1.0, 1.5)
        } else {
            1.0
        };
        Speed {
            base: Duration::from_secs_f64(t2 * (BASE_ROWS / n2).powf(exponent)),
            exponent,
        }
    }

    fn scale(&self, trace_len: u64) -> f64 {
        (trace_len.max(1) as f64 / BASE_ROWS).powf(self.exponent)
    }

    fn observe(&mut self, trace_len: u64, took: Duration) {
        let implied = took.as_secs_f64() / self.scale(trace_len);
        self.base = Duration::from_secs_f64(0.7 * self.base.as_secs_f64() + 0.3 * implied);
    }

    fn estimate(&self, trace_len: u64) -> Duration {
        Duration::from_secs_f64(self.base.as_secs_f64() * self.scale(trace_len))
    }
}

/// Measures this machine's proving speed with real proofs of a small program (fib, traces
/// 2^10 and 2^12, about 1.5 s in all). Each size is proven twice and the faster run counts,
/// so that sharing the CPU with whatever else is starting does not read as a slow machine.
fn calibration_proofs() -> Option<Speed> {
    let program = Program::assemble(crate::canary::FIB, "fib.masm").ok()?;
    let mut points = Vec::new();
    for n in ["60", "250"] {
        let inputs = Inputs::from_stack_list(n).ok()?;
        let mut best: Option<(u64, Duration)> = None;
        for _ in 0..2 {
            let started = Instant::now();
            let receipt = verity_vm::prove(&program, &inputs, ProveOptions::default()).ok()?;
            let took = started.elapsed();
            if best.is_none_or(|(_, b)| took < b) {
                best = Some((receipt.trace_len, took));
            }
        }
        points.push(best?);
    }
    info!(
        "calibration proofs: 2^{} in {:.2?}, 2^{} in {:.2?}",
        points[0].0.trailing_zeros(),
        points[0].1,
        points[1].0.trailing_zeros(),
        points[1].1
    );
    Some(Speed::fit(points[0], points[1]))
}

struct Held {
    job: Job,
    trace_len: u64,
}

pub struct Provider {
    cfg: ProviderConfig,
    client: Client,
    queue: VecDeque<Held>,
    skipped: BTreeSet<Digest>,
    /// Jobs that fit alone but not behind the queue, reconsidered every round.
    deferred: BTreeSet<Digest>,
    speed: Speed,
    paused_until: Option<Instant>,
    last_heartbeat: Option<Instant>,
    busy: Option<tokio::task::JoinHandle<Outcome>>,
    programs: Programs,
}

impl Provider {
    pub fn new(cfg: ProviderConfig) -> Provider {
        Provider {
            client: Client::new(&cfg.node_url),
            cfg,
            queue: VecDeque::new(),
            skipped: BTreeSet::new(),
            deferred: BTreeSet::new(),
            speed: Speed::reference(),
            paused_until: None,
            last_heartbeat: None,
            busy: None,
            programs: Programs::default(),
        }
    }

    /// Runs until `shutdown` fires.
    /// Answers auditors' liveness probes on `listen`, and announces the endpoint on the
    /// ledger if it changed.
    async fn serve_probes(
        &self,
        listen: std::net::SocketAddr,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), verity_client::ClientError> {
        use axum::extract::Query;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| verity_client::ClientError::Protocol(format!("bind {listen}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| verity_client::ClientError::Protocol(e.to_string()))?;
        let key = self.cfg.key.clone();
        let flaky = self.cfg.fault == Some(ProviderFault::FlakyEndpoint);
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let app = axum::Router::new().route(
            "/v1/ping",
            axum::routing::get(
                move |Query(q): Query<std::collections::BTreeMap<String, String>>| {
                    let key = key.clone();
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    async move {
                        let nonce = q.get("nonce").cloned().unwrap_or_default();
                        if nonce.is_empty() || nonce.len() > 128 || (flaky && n % 2 == 1) {
                            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                        }
                        let me = key.address();
                        let sig = key.sign(&verity_client::ping_message(&me, &nonce));
                        Ok(axum::Json(verity_client::PingAnswer {
                            provider: me,
                            signature: hex::encode(sig.0),
                        }))
                    }
                },
            ),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.changed().await;
                })
                .await;
        });
        let endpoint = self
            .cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let me = self.cfg.key.address();
        let current = self.client.provider(&me).await?.profile.endpoint;
        if current.as_deref() != Some(endpoint.as_str()) {
            let tx = self
                .client
                .send(
                    &self.cfg.key,
                    TxBody::Announce {
                        endpoint: endpoint.clone(),
                    },
                )
                .await?;
            self.client.wait_tx(&tx, Duration::from_secs(30)).await?;
            info!(%endpoint, "announced the liveness endpoint");
        }
        Ok(())
    }

    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let me = self.cfg.key.address();
        info!(provider = %me.short(), "provider worker started");
        if let Some(listen) = self.cfg.probe_listen
            && let Err(e) = self.serve_probes(listen, shutdown.clone()).await
        {
            warn!("cannot answer liveness probes: {e}");
        }
        // Measure before locking anything: a guess could lock what this machine cannot
        // deliver in time.
        match tokio::task::spawn_blocking(calibration_proofs).await {
            Ok(Some(speed)) => {
                self.speed = speed;
                info!(
                    "calibrated: 2^12 takes ~{:.2?}, 2^16 ~{:.1?}, 2^18 ~{:.1?}",
                    self.speed.estimate(1 << 12),
                    self.speed.estimate(1 << 16),
                    self.speed.estimate(1 << 18)
                );
            }
            _ => warn!("calibration proof failed; planning with the reference speed"),
        }
        if let Err(e) = self.resume().await {
            warn!("could not check for jobs to resume: {e}");
        }
        loop {
            if let Err(e) = self.step().await {
                match e.downcast_ref::<verity_client::ClientError>() {
                    // Another of this worker's transactions took the nonce first; the next
                    // step retries with a fresh one.
                    Some(verity_client::ClientError::Refused { message, .. })
                        if message.contains("nonce") =>
                    {
                        debug!("provider step raced another transaction: {e}");
                    }
                    _ => warn!("provider step failed: {e}"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.poll_interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Picks up jobs this key locked before a restart.
    async fn resume(&mut self) -> anyhow::Result<()> {
        let me = self.cfg.key.address();
        let page = self
            .client
            .jobs(&JobQuery {
                state: Some(JobState::Locked),
                provider: Some(me),
                limit: Some(200),
                ..Default::default()
            })
            .await?;
        for s in page.jobs.iter().filter(|s| s.locker == Some(me)) {
            let job = self.client.job(&s.id).await?.job;
            info!(job = %job.id.short(), "resuming a job locked before the restart");
            self.queue.push_back(Held { job, trace_len: 0 });
        }
        Ok(())
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        let head = self.client.head().await?;
        if self
            .last_heartbeat
            .is_none_or(|t| t.elapsed() > Duration::from_secs(2))
        {
            self.client.heartbeat(&self.cfg.key, head.height).await?;
            self.last_heartbeat = Some(Instant::now());
        }
        self.drive_deliveries(head.height, head.block_interval_ms)
            .await;
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        self.rescue(head.height).await?;
        let open = self
            .client
            .jobs(&JobQuery {
                state: Some(JobState::Submitted),
                limit: Some(50),
                ..Default::default()
            })
            .await?;
        self.deferred
            .retain(|id| open.jobs.iter().any(|j| j.id == *id));
        for summary in open.jobs {
            if self.held() >= self.cfg.max_queue {
                break;
            }
            if self.skipped.contains(&summary.id) {
                continue;
            }
            let view = self.client.job(&summary.id).await?;
            if let Some(held) = self
                .consider(view, head.height, head.block_interval_ms)
                .await?
            {
                self.queue.push_back(held);
            }
        }
        Ok(())
    }

    /// Decides whether to lock a job, and locks it. Logs the reason either way.
    async fn consider(
        &mut self,
        view: verity_client::JobView,
        height: u64,
        block_ms: u64,
    ) -> anyhow::Result<Option<Held>> {
        let job = view.job;
        let id = job.id;
        let me = self.cfg.key.address();
        let program = match self.programs.of(&self.client, &job).await {
            Ok(p) => p,
            Err(e) => return self.skip(id, e),
        };
        // Estimate the cost by fast execution; private inputs are released only after the
        // lock, so a job with them is priced at its cycle cap.
        let advice = held_advice(&self.cfg.held_data, &job);
        let trace_len = if job.request.private_inputs.is_some() {
            // Unverified hints the job does not carry must come from data we hold: without
            // it the proof would fail after the lock, and the collateral with it.
            if job.unverified_hints && advice.is_empty() {
                return self.skip(
                    id,
                    "it reads advice (hints) that neither it nor I hold, and its private inputs \
                     arrive only after the lock: it may not be provable"
                        .into(),
                );
            }
            u64::from(job.request.max_cycles).next_power_of_two()
        } else {
            let mut inputs = Inputs {
                stack: job.request.stack_inputs.clone(),
                ..Inputs::default()
            };
            inputs.advice.map.extend(advice);
            let max = job.request.max_cycles;
            match tokio::task::spawn_blocking(move || verity_vm::execute(&program, &inputs, max))
                .await?
            {
                Ok(run) => run.trace_len,
                Err(e) => return self.skip(id, format!("program fails: {e}")),
            }
        };
        let ask = (u128::from(self.cfg.price_per_mcycle) * u128::from(trace_len))
            .div_ceil(1_000_000) as u64;
        if view.current_price < ask {
            if job.request.offer.max_price < ask {
                return self.skip(
                    id,
                    format!(
                        "max price {} is below my ask {ask} for {trace_len} cycles",
                        job.request.offer.max_price
                    ),
                );
            }
            // The auction is still rising; look again next round.
            return Ok(None);
        }
        let provider = self.client.provider(&me).await?;
        if provider.stake.provider_free() < job.request.offer.collateral {
            return self.skip(
                id,
                format!(
                    "collateral {} exceeds my free stake {}",
                    job.request.offer.collateral,
                    provider.stake.provider_free()
                ),
            );
        }
        if job
            .request
            .min_trust
            .is_some_and(|t| provider.trust_score < t)
        {
            return self.skip(
                id,
                format!(
                    "requires trust {:?}, mine is {}",
                    job.request.min_trust, provider.trust_score
                ),
            );
        }
        // Never lock what we cannot deliver: queued work plus this job must fit, with margin,
        // before the *lock* deadline. After it anyone may rescue the job and the locker is
        // slashed, so the final deadline is not ours to plan against.
        // Proofs run one after another, so the queue's proofs come first; an optimistic
        // result needs only a fast execution. Four blocks cover including the lock and the
        // fulfilment.
        let queued: Duration = self
            .queue
            .iter()
            .filter(|h| h.job.request.mode == Mode::Proof)
            .map(|h| self.speed.estimate(h.trace_len))
            .sum();
        let own = match job.request.mode {
            Mode::Proof => self.speed.estimate(trace_len),
            Mode::Optimistic => Duration::ZERO,
        };
        // Half again the estimate: a margin for a machine busier than when it was measured.
        let needed = |proving: Duration| proving * 3 / 2 + Duration::from_millis(4 * block_ms);
        let remaining =
            Duration::from_millis(view.lock_deadline.saturating_sub(height + 1) * block_ms);
        if needed(own) > remaining {
            return self.skip(
                id,
                format!(
                    "cannot deliver in time: need ~{:?}, {remaining:?} left",
                    needed(own)
                ),
            );
        }
        // It would fit alone but not behind the queue: look again as the queue drains (a
        // job passed over for good here once expired unlocked while the queue emptied).
        if own > Duration::ZERO && needed(queued + own) > remaining {
            if self.deferred.insert(id) {
                info!(job = %id.short(), "deferred: need ~{:?} behind my queue, {remaining:?} left", needed(queued + own));
            }
            return Ok(None);
        }
        self.deferred.remove(&id);
        let tx = self
            .client
            .send(&self.cfg.key, TxBody::LockJob { job_id: id })
            .await?;
        match self.client.wait_tx(&tx, Duration::from_secs(30)).await {
            Ok(h) => {
                info!(job = %id.short(), price = view.current_price, height = h, "locked at price {} ({trace_len} cycles)", view.current_price);
                let job = self.client.job(&id).await?.job;
                Ok(Some(Held { job, trace_len }))
            }
            Err(e) => {
                info!(job = %id.short(), "lock not taken: {e}");
                self.skipped.insert(id);
                Ok(None)
            }
        }
    }

    /// Anyone may fulfil a locked job whose lock deadline has passed: the locker is slashed and
    /// the rescuer paid. One provider cannot sit on a job.
    async fn rescue(&mut self, height: u64) -> anyhow::Result<()> {
        let me = self.cfg.key.address();
        let locked = self
            .client
            .jobs(&JobQuery {
                state: Some(JobState::Locked),
                limit: Some(50),
                ..Default::default()
            })
            .await?;
        for s in locked.jobs {
            if s.locker == Some(me)
                || self.skipped.contains(&s.id)
                || self.queue.len() >= self.cfg.max_queue
            {
                continue;
            }
            let view = self.client.job(&s.id).await?;
            if height < view.lock_deadline || height >= view.deadline {
                continue;
            }
            if view.job.request.mode == Mode::Optimistic {
                let mine = self.client.provider(&me).await?;
                if mine.stake.provider_free() < view.job.request.offer.collateral {
                    continue;
                }
            }
            info!(job = %s.id.short(), "rescuing: its locker missed the lock deadline (block {})", view.lock_deadline);
            self.skipped.insert(s.id);
            self.queue.push_back(Held {
                job: view.job,
                trace_len: 0,
            });
        }
        Ok(())
    }

    fn skip(&mut self, id: Digest, why: String) -> anyhow::Result<Option<Held>> {
        info!(job = %id.short(), "skipped: {why}");
        self.skipped.insert(id);
        Ok(None)
    }

    /// Jobs held: queued plus the one being proved.
    fn held(&self) -> usize {
        self.queue.len() + usize::from(self.busy.is_some())
    }

    /// Collects a finished delivery and starts the next. Optimistic jobs need only fast
    /// execution, so they go first; proofs run one at a time (a proof uses every core) in a
    /// background task, while this loop keeps watching and locking.
    async fn drive_deliveries(&mut self, height: u64, block_ms: u64) {
        if self.busy.as_ref().is_some_and(|h| h.is_finished()) {
            match self.busy.take().expect("checked").await {
                Ok(Outcome::Done(Some((trace_len, took)))) => self.speed.observe(trace_len, took),
                Ok(Outcome::Done(None)) => {}
                Ok(Outcome::Retry(held)) => self.queue.push_back(*held),
                Ok(Outcome::ProvingFailed) | Err(_) => {
                    // Stop taking new work while proving fails: locking more would only lose
                    // collateral.
                    self.paused_until = Some(Instant::now() + Duration::from_secs(30));
                }
            }
        }
        if self.busy.is_none() {
            let next = self
                .queue
                .iter()
                .position(|h| h.job.request.mode == Mode::Optimistic)
                .unwrap_or(0);
            if let Some(held) = self.queue.remove(next) {
                // Say so before a proof misses, not after: the estimate against the time left
                // before the lock deadline (after it, anyone may rescue and we are slashed).
                if held.job.request.mode == Mode::Proof && held.trace_len > 0 {
                    let expected = self.speed.estimate(held.trace_len);
                    let left = Duration::from_millis(
                        held.job.lock_deadline().saturating_sub(height) * block_ms,
                    );
                    if expected > left {
                        warn!(
                            job = %held.job.id.short(),
                            "this proof is expected to take ~{expected:.1?}, {left:.1?} before the lock deadline (block {}): it will probably miss",
                            held.job.lock_deadline()
                        );
                    }
                }
                let (client, key) = (self.client.clone(), self.cfg.key.clone());
                let fault = self.cfg.fault;
                let advice = held_advice(&self.cfg.held_data, &held.job);
                let programs = self.programs.clone();
                self.busy = Some(tokio::spawn(deliver(
                    client, key, held, advice, programs, fault,
                )));
            }
        }
    }
}

/// How a delivery ended.
enum Outcome {
    /// Fulfilled (or given up on); with the trace length and time if a proof was made.
    Done(Option<(u64, Duration)>),
    /// Could not start yet (e.g. advice not available): queue it again.
    Retry(Box<Held>),
    ProvingFailed,
}

/// Proves (or, in optimistic mode, executes) a held job and fulfils it.
async fn deliver(
    client: Client,
    key: Keypair,
    held: Held,
    advice: Vec<(Digest, Vec<u64>)>,
    programs: Programs,
    fault: Option<ProviderFault>,
) -> Outcome {
    let job = held.job;
    let id = job.id;
    let private = match job.request.private_inputs {
        None => None,
        Some(commitment) => match fetch_private(&client, &key, &id, &commitment).await {
            Fetched::Ready(values) => Some((commitment, values)),
            Fetched::NotYet(why) => {
                debug!(job = %id.short(), "private inputs not ready: {why}");
                return Outcome::Retry(Box::new(Held {
                    job,
                    trace_len: held.trace_len,
                }));
            }
            Fetched::Gone(why) => {
                info!(job = %id.short(), "dropping the job: {why}");
                return Outcome::Done(None);
            }
            // Opened and unusable: nobody can prove this job, so give the lock up rather than
            // be slashed at the deadline.
            Fetched::Unusable(why) => {
                warn!(job = %id.short(), "the client's private inputs are unusable ({why}); releasing the lock");
                let body = TxBody::ReleaseLock { job_id: id };
                match client.send(&key, body).await {
                    Ok(tx) => {
                        if let Err(e) = client.wait_tx(&tx, Duration::from_secs(30)).await {
                            warn!(job = %id.short(), "release not accepted: {e}");
                        }
                    }
                    Err(e) => warn!(job = %id.short(), "cannot release the lock: {e}"),
                }
                return Outcome::Done(None);
            }
        },
    };
    let program = match programs.of(&client, &job).await {
        Ok(p) => p,
        Err(e) => {
            warn!(job = %id.short(), "cannot assemble a locked job: {e}");
            return Outcome::Done(None);
        }
    };
    let inputs = match verity_vm::job_inputs(
        &job.request.stack_inputs,
        private.as_ref().map(|(c, v)| (c, v.as_slice())),
    ) {
        Ok(mut i) => {
            i.advice.map.extend(advice);
            i
        }
        Err(e) => {
            warn!(job = %id.short(), "cannot build the job's inputs: {e}");
            return Outcome::Done(None);
        }
    };
    let mode = job.request.mode;
    let max = job.request.max_cycles;
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || match mode {
        Mode::Proof => verity_vm::prove(
            &program,
            &inputs,
            ProveOptions {
                max_cycles: max,
                ..Default::default()
            },
        )
        .map(|r| (r.stack_outputs, Some(r))),
        Mode::Optimistic => verity_vm::execute_outputs(&program, &inputs, max).map(|o| (o, None)),
    })
    .await;
    let (mut outputs, receipt) = match result {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            // Stop taking new work while proving fails: locking more would only lose collateral.
            warn!(job = %id.short(), "proving failed: {e}; pausing new locks for 30 s");
            return Outcome::ProvingFailed;
        }
        Err(e) => {
            warn!(job = %id.short(), "proving task failed: {e}");
            return Outcome::ProvingFailed;
        }
    };
    if fault == Some(ProviderFault::WrongOutputs) && mode == Mode::Optimistic {
        // A different, still valid, field element.
        let mut wrong = outputs.to_vec();
        wrong[0] = if wrong[0] == 0 { 1 } else { wrong[0] - 1 };
        outputs = StackOutputs::new(&wrong).expect("still 16 field elements");
    }
    if let Some(ProviderFault::Slow { delay_ms }) = fault {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let took = started.elapsed();
    let observed = receipt.as_ref().map(|r| (r.trace_len, took));
    if let Some(r) = &receipt {
        info!(job = %id.short(), cycles = r.cycles, "proved in {took:.2?}");
    }
    let body = TxBody::Fulfil {
        job_id: id,
        outputs,
        proof: receipt.as_ref().map(|r| r.proof.clone()),
    };
    // The worker's other transactions (locks) race this one for the account's next nonce;
    // a refusal for a stale nonce is worth retrying, anything else is final.
    let mut attempts = 0;
    let sent = loop {
        let sent = match client.send(&key, body.clone()).await {
            Ok(tx) => client.wait_tx(&tx, Duration::from_secs(30)).await,
            Err(e) => Err(e),
        };
        match &sent {
            Err(verity_client::ClientError::Refused { message, .. })
                if message.contains("nonce") && attempts < 10 =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break sent,
        }
    };
    match sent {
        Ok(h) => {
            info!(job = %id.short(), height = h, "fulfilled at height {h}");
            if let Some(r) = &receipt
                && let Err(e) = client.put_receipt(&id, r, &key).await
            {
                warn!(job = %id.short(), "could not upload the receipt: {e}");
            }
        }
        Err(e) => warn!(job = %id.short(), "fulfilment not accepted: {e}"),
    }
    Outcome::Done(observed)
}

/// Most assembled programs a provider keeps.
const MAX_CACHED_PROGRAMS: usize = 64;

/// Assembled job programs by the hash their proofs are about, so a program is fetched and
/// assembled once however many jobs name it (a compiled model is hundreds of KiB).
#[derive(Clone, Default)]
struct Programs(Arc<Mutex<BTreeMap<Digest, Program>>>);

impl Programs {
    /// The program a job's proof is about (wrapped with Verity's loader for private inputs),
    /// assembled exactly as the ledger assembled it, from the job's source or the published
    /// one it names. Assembly runs on a blocking thread: a large program takes a while.
    async fn of(&self, client: &Client, job: &Job) -> Result<Program, String> {
        let cached = self
            .0
            .lock()
            .expect("program cache")
            .get(&job.program_hash)
            .cloned();
        if let Some(program) = cached {
            return Ok(program);
        }
        let source = match &job.request.program {
            ProgramSource::Inline(source) => source.clone(),
            ProgramSource::Published(hash) => {
                client
                    .program(hash)
                    .await
                    .map_err(|e| format!("cannot fetch published program {hash}: {e}"))?
                    .ok_or_else(|| format!("program {hash} is not published"))?
                    .source
            }
        };
        let private = job.request.private_inputs;
        // The node is not trusted: bound what it serves before assembling it, as the ledger
        // bounded it before storing it.
        let params = verity_ledger::Params::default();
        let max_ops = u64::from(
            params
                .max_published_program_nodes
                .max(params.max_program_nodes),
        );
        let program = tokio::task::spawn_blocking(move || {
            verity_vm::assemble_job(&source, private.as_ref(), max_ops).map(|j| j.program)
        })
        .await
        .map_err(|e| format!("assembly did not finish: {e}"))?
        .map_err(|e| format!("program does not assemble: {e}"))?;
        // The node is not trusted: what it served must be what the ledger named.
        if program.hash() != job.program_hash {
            return Err("program source does not match its hash".into());
        }
        let mut cache = self.0.lock().expect("program cache");
        if cache.len() >= MAX_CACHED_PROGRAMS {
            cache.pop_first();
        }
        cache.insert(job.program_hash, program.clone());
        Ok(program)
    }
}

/// What fetching a held job's private inputs came to.
enum Fetched {
    Ready(Vec<u64>),
    /// Not provided yet, or the node is behind or unreachable: try again.
    NotYet(String),
    /// The job is no longer ours to prove (released, expired).
    Gone(String),
    /// The ledger's sealed inputs do not open with our key or do not match the commitment.
    Unusable(String),
}

async fn fetch_private(
    client: &Client,
    key: &Keypair,
    id: &Digest,
    commitment: &verity_types::PrivateCommitment,
) -> Fetched {
    let job = match client.job(id).await {
        Ok(view) => view.job,
        Err(e) => return Fetched::NotYet(e.to_string()),
    };
    if job.state != JobState::Locked || job.locker != Some(key.address()) {
        return Fetched::Gone(format!("it is {} and not locked by us", job.state));
    }
    let Some(recorded) = job.sealed_inputs_hash else {
        return Fetched::NotYet("the client has not provided them".into());
    };
    let sealed = match client.sealed_inputs(id).await {
        Ok(s) => s,
        Err(e) => return Fetched::NotYet(e.to_string()),
    };
    // The node's copy must be the ledger's: anyone can seal a box to our key.
    if Digest::blake3(&sealed) != recorded {
        return Fetched::NotYet("the node served sealed inputs that are not the ledger's".into());
    }
    match verity_client::sealing::open(id, &sealed, key) {
        Err(e) => Fetched::Unusable(e.to_string()),
        Ok(values) => match verity_vm::check_private(&values, commitment) {
            Ok(()) => Fetched::Ready(values),
            Err(e) => Fetched::Unusable(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn off(estimate: Duration, truth: Duration) -> f64 {
        estimate.as_secs_f64() / truth.as_secs_f64() - 1.0
    }

    #[test]
    fn speed_fits_the_growth_of_proving_time() {
        // A machine on which proving grows like n^1.2 from 0.5 s at 2^12.
        let truth = |n: u64| secs(0.5 * (n as f64 / 4096.0).powf(1.2));
        let speed = Speed::fit((1 << 10, truth(1 << 10)), (1 << 12, truth(1 << 12)));
        for n in [1 << 16, 1 << 20] {
            assert!(
                off(speed.estimate(n), truth(n)).abs() < 0.01,
                "2^{}",
                n.trailing_zeros()
            );
        }
        // Measured growth below linear (cores idle on small proofs) is not carried to big
        // proofs: they are estimated linearly, on the slow side.
        let sub = |n: u64| secs(0.56 * (n as f64 / 4096.0).powf(0.93));
        let speed = Speed::fit((1 << 10, sub(1 << 10)), (1 << 12, sub(1 << 12)));
        assert_eq!(speed.exponent, 1.0);
        assert!(speed.estimate(1 << 16) > sub(1 << 16));
        assert!(off(speed.estimate(1 << 16), sub(1 << 16)) < 0.25);
    }

    #[test]
    fn a_noisy_fit_errs_slow_never_fast() {
        // The small proof measured slower than the large one: linear growth from the large.
        let speed = Speed::fit((1 << 10, secs(0.9)), (1 << 12, secs(0.6)));
        assert_eq!(speed.exponent, 1.0);
        assert!(off(speed.estimate(1 << 14), secs(2.4)).abs() < 0.01);
        // Absurd growth is capped.
        let speed = Speed::fit((1 << 10, secs(0.001)), (1 << 12, secs(0.6)));
        assert_eq!(speed.exponent, 1.5);
    }

    #[test]
    fn observed_proofs_move_the_estimate() {
        let mut speed = Speed::fit((1 << 10, secs(0.15)), (1 << 12, secs(0.6)));
        let before = speed.estimate(1 << 16);
        speed.observe(1 << 16, before * 2);
        assert!(speed.estimate(1 << 16) > before * 5 / 4);
    }
}
