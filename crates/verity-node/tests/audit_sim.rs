//! The validator's auditors (canaries, re-execution, liveness probes) run against a real
//! in-process node whose blocks the test makes one by one, with a hand-moved clock, seeded
//! entropy and a scripted provider: no HTTP, no timers. A whole audit epoch takes seconds, and
//! the same seed gives the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use verity_ledger::trust::AUDIT_EPOCH_BLOCKS;
use verity_ledger::{BlockOutcome, JobState, State, TrustProfile};
use verity_node::auditor::{AuditorCounters, check_event};
use verity_node::canary::CanaryAuditor;
use verity_node::clock::ManualClock;
use verity_node::prober::{Ping, Pinger, Prober};
use verity_node::{
    AuditorConfig, AuditorFault, Entropy, Node, NodeConfig, SoloProducer, devnet, produce_block,
};
use verity_types::{Address, JobId, Keypair, MODULUS, Mode, StackOutputs, TxBody};
use verity_vm::{Inputs, Program, ProveOptions};

const BLOCK_MS: u64 = 100;

/// A node on the devnet genesis and the producer that makes its blocks on demand.
struct Sim {
    node: Arc<Node>,
    producer: SoloProducer,
    clock: Arc<ManualClock>,
}

impl Sim {
    /// Opens (or reopens) the node whose data is in `dir`.
    fn open(dir: &Path) -> Sim {
        let mut config = NodeConfig::new(dir.to_path_buf(), devnet::genesis());
        config.block_interval_ms = BLOCK_MS;
        let node = Node::open(config).unwrap();
        let clock = Arc::new(ManualClock::starting_at(
            1_700_000_000_000 + node.state().height * BLOCK_MS,
        ));
        let producer = SoloProducer::with_clock(devnet::dev_key("validator"), clock.clone());
        Sim {
            node,
            producer,
            clock,
        }
    }

    /// Seals what the mempool holds into the next block, one block interval later.
    fn block(&mut self) -> BlockOutcome {
        self.clock.advance(BLOCK_MS);
        produce_block(&self.node, &mut self.producer).unwrap()
    }

    fn state(&self) -> Arc<State> {
        self.node.state()
    }
}

/// A provider scripted in the test, acting on the committed state: it locks every open job,
/// then delivers at once: a real proof in proof mode, outputs in optimistic mode (wrong ones
/// if it `lies`).
fn serve(node: &Node, key: &Keypair, lies: bool) {
    let state = node.state();
    for job in state.jobs.values() {
        let body = match job.state() {
            JobState::Submitted => TxBody::LockJob { job_id: job.id },
            JobState::Locked if job.locker() == Some(key.address()) => deliver(&state, &job, lies),
            _ => continue,
        };
        node.sign_and_submit(key, body).unwrap();
    }
}

fn deliver(state: &verity_ledger::State, job: &verity_ledger::Job, lies: bool) -> TxBody {
    let Some(source) = state.program_source(&job.request.program) else {
        panic!("job {} names a program the state does not hold", job.id);
    };
    let program = Program::assemble(source, "job.masm").unwrap();
    let inputs = Inputs {
        stack: job.request.stack_inputs.clone(),
        ..Inputs::default()
    };
    let max_cycles = job.request.max_cycles;
    match job.request.mode {
        Mode::Proof => {
            let options = ProveOptions {
                max_cycles,
                ..Default::default()
            };
            let receipt = verity_vm::prove(&program, &inputs, options).unwrap();
            TxBody::Fulfil {
                job_id: job.id,
                outputs: receipt.stack_outputs,
                proof: Some(receipt.proof),
                cycles: 0,
            }
        }
        Mode::Optimistic => {
            let mut outputs = verity_vm::execute(&program, &inputs, max_cycles)
                .unwrap()
                .outputs;
            if lies {
                outputs = off_by_one(&outputs);
            }
            TxBody::Fulfil {
                job_id: job.id,
                outputs,
                proof: None,
                cycles: 0,
            }
        }
    }
}

fn off_by_one(outputs: &StackOutputs) -> StackOutputs {
    let mut wrong = outputs.to_vec();
    wrong[0] = (wrong[0] + 1) % MODULUS;
    StackOutputs::new(&wrong).unwrap()
}

fn validator() -> Address {
    devnet::dev_key("validator").address()
}

fn canary_config(seed: u64) -> AuditorConfig {
    AuditorConfig {
        sample_per_10k: 0,
        canaries_per_epoch: 2,
        entropy: Entropy::seeded(seed),
        ..AuditorConfig::new(devnet::dev_key("validator"))
    }
}

/// What one run did: each job event as (height, job, state), in order.
type Trace = Vec<(u64, JobId, JobState)>;

/// Runs canary rounds and blocks (the scripted `provider` serving between them) until
/// `done`, for at most `max_blocks` blocks.
async fn run_until(
    sim: &mut Sim,
    auditor: &mut CanaryAuditor<Node>,
    provider: Option<(&Keypair, bool)>,
    max_blocks: u64,
    done: impl Fn(&State) -> bool,
) -> Trace {
    let mut trace = Trace::new();
    for _ in 0..max_blocks {
        if done(&sim.state()) {
            return trace;
        }
        auditor.step().await;
        // A wrong answer's challenge is proven off this task: wait for it, so the challenge
        // lands in the same block on every run.
        while auditor.proving() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some((key, lies)) = provider {
            serve(&sim.node, key, lies);
        }
        let outcome = sim.block();
        trace.extend(outcome.events.iter().map(|e| (e.height, e.job_id, e.state)));
    }
    panic!(
        "not done by height {}: {:?}",
        sim.state().height,
        sim.state().canary_commits
    );
}

fn first_epoch_revealed(state: &State) -> bool {
    state
        .canary_commits
        .get(&(1, validator()))
        .is_some_and(|c| c.revealed)
}

/// One epoch of canaries (commit, fund, send, serve, reveal) with `provider` serving.
async fn canary_epoch(seed: u64, lies: bool, fault: Option<AuditorFault>) -> (Arc<State>, Trace) {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::open(dir.path());
    let config = AuditorConfig {
        fault,
        ..canary_config(seed)
    };
    let mut auditor = CanaryAuditor::new(sim.node.clone(), config, Default::default());
    let provider = devnet::dev_key("provider");
    let trace = run_until(
        &mut sim,
        &mut auditor,
        Some((&provider, lies)),
        4 * AUDIT_EPOCH_BLOCKS,
        first_epoch_revealed,
    )
    .await;
    // Held in memory: the node's state reads from its database, which goes with `dir`.
    let state = State::from_bytes(&sim.state().to_bytes()).unwrap();
    (Arc::new(state), trace)
}

fn provider_profile(state: &State) -> TrustProfile {
    TrustProfile::of(state, &devnet::dev_key("provider").address())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_credit_an_honest_provider_and_the_same_seed_replays_the_same_epoch() {
    let (state, trace) = canary_epoch(7, false, None).await;
    let record = &state.auditors[&validator()];
    assert_eq!((record.canaries_judged, record.contradicted), (2, 0));
    let p = provider_profile(&state);
    assert_eq!((p.canaries_passed, p.canaries_failed, p.slashed), (2, 0, 0));
    // Until the reveal, the canaries were jobs of fresh accounts, not the validator's.
    assert!(state.jobs.values().all(|j| j.client != validator()));

    // The same seed: the same canaries, sent, served and judged at the same heights.
    let (_, again) = canary_epoch(7, false, None).await;
    assert_eq!(trace, again);
    // Another seed: other canaries.
    let (_, other) = canary_epoch(8, false, None).await;
    let jobs = |t: &Trace| {
        t.iter()
            .map(|e| e.1)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(jobs(&trace).is_disjoint(&jobs(&other)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_catches_a_provider_lying_on_optimistic_jobs() {
    let (state, trace) = canary_epoch(7, true, None).await;
    let record = &state.auditors[&validator()];
    assert_eq!(record.contradicted, 0);
    // The optimistic canary was answered wrong, challenged with a proof and overturned (no
    // re-execution sampling: the canary caught it); the proof-mode one could not be faked.
    let p = provider_profile(&state);
    assert_eq!((p.canaries_passed, p.canaries_failed), (1, 1));
    assert!(p.overturned >= 1);
    assert!(trace.iter().any(|e| e.2 == JobState::Overturned));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_posting_false_canary_claims_is_slashed() {
    let (state, _) = canary_epoch(7, false, Some(AuditorFault::FalseCanaryClaims)).await;
    let record = &state.auditors[&validator()];
    // It claimed the proof-mode canary's proven answer was wrong.
    assert_eq!(record.contradicted, 1);
    let slash = 1_000_000 * u64::from(verity_ledger::trust::FALSE_AUDIT_SLASH_BP) / 10_000;
    assert_eq!(record.slashed, slash);
    assert_eq!(state.stakes[&validator()].validator, 1_000_000 - slash);
    // Its verdicts count for nothing; the honest provider is untouched.
    let p = provider_profile(&state);
    assert_eq!((p.canaries_passed, p.canaries_failed, p.slashed), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_sent_before_a_restart_are_revealed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let provider = devnet::dev_key("provider");
    let epoch_one = |s: &State| {
        s.jobs
            .values()
            .filter(|j| (AUDIT_EPOCH_BLOCKS..2 * AUDIT_EPOCH_BLOCKS).contains(&j.submitted_height))
            .count()
    };
    {
        let mut sim = Sim::open(dir.path());
        let mut auditor =
            CanaryAuditor::new(sim.node.clone(), canary_config(7), Default::default());
        run_until(
            &mut sim,
            &mut auditor,
            Some((&provider, false)),
            2 * AUDIT_EPOCH_BLOCKS,
            |s| epoch_one(s) == 2,
        )
        .await;
    }
    // A new process: nothing in memory, only the node's storage (which holds the seed), and
    // other entropy, which must not matter.
    let mut sim = Sim::open(dir.path());
    let counters = Arc::new(AuditorCounters::default());
    let mut auditor = CanaryAuditor::new(sim.node.clone(), canary_config(99), counters.clone());
    run_until(
        &mut sim,
        &mut auditor,
        Some((&provider, false)),
        3 * AUDIT_EPOCH_BLOCKS,
        first_epoch_revealed,
    )
    .await;
    let record = &sim.state().auditors[&validator()];
    assert_eq!((record.canaries_judged, record.contradicted), (2, 0));
    assert!(
        counters
            .canary_reveals
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

/// An optimistic fib job from the dev client, locked and fulfilled by the scripted provider;
/// returns the events of the block that recorded the fulfilment.
fn fulfilled_optimistic_job(sim: &mut Sim, lies: bool) -> (JobId, BlockOutcome) {
    let client = devnet::dev_key("client");
    let provider = devnet::dev_key("provider");
    let request = verity_types::JobRequest {
        mode: Mode::Optimistic,
        offer: verity_testkit::offer(100, 50, 100, 10_000),
        ..verity_testkit::fib_job(30)
    };
    let tx = sim
        .node
        .sign_and_submit(&client, TxBody::SubmitJob(request))
        .unwrap();
    sim.block();
    serve(&sim.node, &provider, lies); // locks
    sim.block();
    serve(&sim.node, &provider, lies); // fulfils
    (JobId::submitted_by(tx), sim.block())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_re_execution_auditor_overturns_a_wrong_result_and_leaves_a_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::open(dir.path());
    let config = AuditorConfig {
        sample_per_10k: 10_000,
        canaries_per_epoch: 0,
        ..AuditorConfig::new(devnet::dev_key("validator"))
    };
    let counters = Arc::new(AuditorCounters::default());
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let balance = |sim: &Sim| sim.state().accounts[&validator()].balance;
    let before = balance(&sim);

    for lies in [false, true] {
        let (job, outcome) = fulfilled_optimistic_job(&mut sim, lies);
        let checks: Vec<_> = outcome
            .events
            .iter()
            .filter_map(|e| check_event(&sim.node, &config, &counters, e))
            .collect();
        assert_eq!(checks.len(), 1, "every fulfilment is sampled at 100%");
        for check in checks {
            check.await.unwrap();
        }
        sim.block();
        let expected = if lies {
            JobState::Overturned
        } else {
            JobState::Fulfilled
        };
        assert_eq!(sim.state().jobs[&job].state(), expected);
    }
    assert_eq!(
        (load(&counters.matched), load(&counters.challenged)),
        (1, 1)
    );
    // Half the liar's bond paid the auditor, more than its challenge cost.
    assert!(balance(&sim) > before, "{} <= {before}", balance(&sim));
}

/// Providers that answer pings as scripted: `steady` always, in 20 ms; any other one ping
/// in three, in 400 ms.
struct ScriptedPinger {
    steady: Address,
    flaky_pings: std::sync::atomic::AtomicU32,
}

impl Pinger for ScriptedPinger {
    async fn ping(&self, provider: Address, _endpoint: String, nonce: String) -> Ping {
        assert_eq!(nonce.len(), 32, "a fresh 16-byte nonce per ping");
        if provider == self.steady {
            return Ping {
                answered: true,
                latency_ms: 20,
            };
        }
        let n = self
            .flaky_pings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ping {
            answered: n.is_multiple_of(3),
            latency_ms: 400,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_audits_tell_a_steady_provider_from_a_flaky_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::open(dir.path());
    let (steady, flaky) = (devnet::dev_key("provider"), devnet::dev_key("provider2"));
    for (key, host) in [(&steady, "steady"), (&flaky, "flaky")] {
        let endpoint = format!("http://{host}.example");
        sim.node
            .sign_and_submit(key, TxBody::Announce { endpoint })
            .unwrap();
    }
    sim.block();
    let config = AuditorConfig {
        canaries_per_epoch: 0,
        entropy: Entropy::seeded(1),
        ..AuditorConfig::new(devnet::dev_key("validator"))
    };
    let pinger = ScriptedPinger {
        steady: steady.address(),
        flaky_pings: Default::default(),
    };
    let (mut prober, counters) = (Prober::default(), AuditorCounters::default());
    // One probe round per block through epoch 0, and into epoch 1, when epoch 0's audit is
    // filed.
    while sim
        .state()
        .auditors
        .get(&validator())
        .is_none_or(|r| r.liveness_audits == 0)
    {
        assert!(
            sim.state().height < 2 * AUDIT_EPOCH_BLOCKS,
            "no audit filed"
        );
        prober.step(&*sim.node, &pinger, &config, &counters).await;
        sim.block();
    }
    let state = sim.state();
    let profile = |k: &Keypair| TrustProfile::of(&state, &k.address());
    assert_eq!(profile(&steady).uptime_bp, Some(10_000));
    let flaky_uptime = profile(&flaky).uptime_bp.unwrap();
    assert!((3_000..=3_500).contains(&flaky_uptime), "{flaky_uptime}");
    assert_eq!(profile(&steady).probe_latency_ms, Some(20));
    assert!(profile(&flaky).score < profile(&steady).score);
}
