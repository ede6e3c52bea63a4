//! The provider worker: watches open jobs, locks the ones worth proving that it can deliver in
//! time, proves on blocking threads, and fulfils. It talks to a node only through the public
//! HTTP API, so it runs the same inside `verity devnet` and as `verity provider`.
//!
//! It resumes after a restart from the ledger itself: every job locked by its key and not yet
//! fulfilled is picked up again.

mod bid;
mod deliver;
pub mod metrics;
mod probes;
mod programs;
mod speed;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use verity_client::{Client, ClientError, ErrorCode, JobQuery};
use verity_ledger::{Job, JobState};
use verity_types::{
    Digest, JobId, Keypair, Mode, PrivateCommitment, ProgramHash, ProgramSource, StackOutputs,
    TxBody,
};
use verity_vm::{Inputs, Program, ProveOptions};

use deliver::Outcome;
use programs::{Fetched, Programs, fetch_private, held_advice, held_for};
use speed::{Speed, calibration_proofs};

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub node_url: String,
    /// Other nodes of the same network, in order: when the node in use stops answering, the
    /// worker carries on through the next.
    pub fallback_nodes: Vec<String>,
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
    /// Misbehaviour to exhibit, for tests of the auditors (`mocks` feature only).
    #[cfg(feature = "mocks")]
    pub fault: Option<ProviderFault>,
}

/// Why one round of the worker's loop stopped early (it logs it and tries again next round).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Data a provider holds (see [`ProviderConfig::held_data`]).
pub type HeldData = std::sync::Arc<Vec<CommittedData>>;

/// Advice that held data derives for one job from the job's private inputs, after they are
/// opened: e.g. a committed-weights model's prover supplies the accumulators of the layers
/// its program checks instead of computing, which only the weights' holder can compute.
pub trait JobHints: std::fmt::Debug + Send + Sync {
    /// Advice-map entries for a job whose private inputs are `private`; an error when none
    /// can be made (the job cannot then be proven).
    fn hints(&self, private: &[u64]) -> Result<Vec<(Digest, Vec<u64>)>, String>;
}

/// Committed data a provider holds, and the one program it will run it with.
#[derive(Debug, Clone)]
pub struct CommittedData {
    /// What a job's first public inputs must be for it to get the data: the commitment the
    /// program checks (e.g. a committed-weights model's commitment).
    pub commitment: [u64; 4],
    /// The advice-map entries the program reads (e.g. the commitment's halves under it, and
    /// the weights under theirs).
    pub entries: Vec<(Digest, Vec<u64>)>,
    /// Only jobs of this program get the data: any other program could simply output it
    /// (anyone can name a public commitment on a job's stack).
    pub program: ProgramHash,
    /// Advice derived per job from its private inputs, if the program needs any.
    pub job_hints: Option<std::sync::Arc<dyn JobHints>>,
}

/// Scripted misbehaviour of a provider, so tests can run liars against real auditors. Only in
/// builds with the `mocks` feature: a production provider cannot be told to misbehave.
#[cfg(feature = "mocks")]
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
            fallback_nodes: Vec::new(),
            key,
            price_per_mcycle: 1_000,
            max_queue: 4,
            poll_interval: Duration::from_millis(200),
            probe_listen: None,
            endpoint: None,
            held_data: Default::default(),
            #[cfg(feature = "mocks")]
            fault: None,
        }
    }

    /// The faults this worker was told to exhibit: none, without the `mocks` feature.
    fn faults(&self) -> Faults {
        Faults {
            #[cfg(feature = "mocks")]
            fault: self.fault,
        }
    }
}

/// What a worker was told to do wrong (its config's `fault`), as the questions the
/// worker asks; every answer is "no" without the `mocks` feature.
#[derive(Debug, Clone, Copy)]
struct Faults {
    #[cfg(feature = "mocks")]
    fault: Option<ProviderFault>,
}

impl Faults {
    /// Claim outputs other than the program's (optimistic mode).
    fn wrong_outputs(self) -> bool {
        #[cfg(feature = "mocks")]
        return self.fault == Some(ProviderFault::WrongOutputs);
        #[cfg(not(feature = "mocks"))]
        false
    }

    /// Answer only every other liveness probe.
    fn flaky_endpoint(self) -> bool {
        #[cfg(feature = "mocks")]
        return self.fault == Some(ProviderFault::FlakyEndpoint);
        #[cfg(not(feature = "mocks"))]
        false
    }

    /// How long to sit on a result before delivering it.
    fn delay(self) -> Option<Duration> {
        #[cfg(feature = "mocks")]
        if let Some(ProviderFault::Slow { delay_ms }) = self.fault {
            return Some(Duration::from_millis(delay_ms));
        }
        None
    }
}

struct Held {
    job: Job,
    trace_len: u64,
}

pub struct Provider {
    cfg: ProviderConfig,
    client: Client,
    queue: VecDeque<Held>,
    skipped: BTreeSet<JobId>,
    /// Jobs that fit alone but not behind the queue, reconsidered every round.
    deferred: BTreeSet<JobId>,
    speed: Speed,
    paused_until: Option<Instant>,
    last_heartbeat: Option<Instant>,
    /// The job being delivered, and its task.
    busy: Option<(JobId, tokio::task::JoinHandle<Outcome>)>,
    /// Jobs whose delivery ended without a result on the ledger: not to be taken up again.
    given_up: BTreeSet<JobId>,
    programs: Programs,
    metrics: std::sync::Arc<metrics::ProviderMetrics>,
}

impl Provider {
    pub fn new(cfg: ProviderConfig) -> Provider {
        Provider {
            client: Client::with_failover(
                &std::iter::once(&cfg.node_url)
                    .chain(&cfg.fallback_nodes)
                    .collect::<Vec<_>>(),
            ),
            cfg,
            queue: VecDeque::new(),
            skipped: BTreeSet::new(),
            deferred: BTreeSet::new(),
            speed: Speed::reference(),
            paused_until: None,
            last_heartbeat: None,
            busy: None,
            given_up: BTreeSet::new(),
            programs: Programs::default(),
            metrics: Default::default(),
        }
    }

    /// Runs until `shutdown` fires.
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
        let mut unreachable_said: Option<Instant> = None;
        loop {
            let stepped = self.step().await;
            let unreachable = matches!(
                stepped,
                Err(StepError::Client(ClientError::Unreachable { .. }))
            );
            if !unreachable && unreachable_said.take().is_some() {
                info!(node = self.client.url(), "a node answers again");
            }
            if let Err(e) = stepped {
                match e {
                    // Another of this worker's transactions took the nonce first; the next
                    // step retries with a fresh one.
                    StepError::Client(ClientError::Refused {
                        code: ErrorCode::WrongNonce,
                        ..
                    }) => {
                        debug!("provider step raced another transaction: {e}");
                    }
                    // A node that is down fails every step: say so once, then every 30 s.
                    StepError::Client(ClientError::Unreachable { .. }) => {
                        if unreachable_said.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                            warn!("no node answers (retrying every step): {e}");
                            unreachable_said = Some(Instant::now());
                        }
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
    async fn resume(&mut self) -> Result<(), StepError> {
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

    async fn step(&mut self) -> Result<(), StepError> {
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

    fn skip(&mut self, id: JobId, why: String) -> Result<Option<Held>, StepError> {
        info!(job = %id.short(), "skipped: {why}");
        self.skipped.insert(id);
        Ok(None)
    }

    /// Jobs held: queued plus the one being proved.
    fn held(&self) -> usize {
        self.queue.len() + usize::from(self.busy.is_some())
    }

    /// Whether `job` is queued or being delivered here.
    fn holds(&self, job: &JobId) -> bool {
        self.busy.as_ref().is_some_and(|(id, _)| id == job)
            || self.queue.iter().any(|h| h.job.id == *job)
    }
}
