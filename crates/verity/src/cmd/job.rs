//! `verity job submit | status | receipt` and `verity jobs`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use verity_client::{Client, JobQuery};
use verity_ledger::{Job, JobState};
use verity_types::{JobId, JobRequest, Keypair, Mode, Offer, ProgramSource, TxBody, format_felts};

use super::{KeyArgs, NodeArgs, ReadArgs};
use crate::keystore::resolve_key;
use crate::model_file::{self, LoadedModel};
use crate::program_file::{InputArgs, LoadedProgram, ProgramArgs, load};
use crate::render::{mode_name, print_entry};

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Proof,
    Optimistic,
}

#[derive(Args, Clone)]
pub struct OfferArgs {
    /// Highest price paid (escrowed at submission).
    #[arg(long, default_value_t = verity_client::DEFAULT_MAX_PRICE)]
    max_price: u64,
    /// Starting price of the auction (default: a tenth of the max price).
    #[arg(long)]
    min_price: Option<u64>,
    /// Blocks before the price starts to rise.
    #[arg(long, default_value_t = DEFAULT_OFFER.ramp_start)]
    ramp_start: u64,
    /// Blocks over which the price rises from min to max.
    #[arg(long, default_value_t = DEFAULT_OFFER.ramp_period)]
    ramp_period: u64,
    /// Blocks a provider has to lock and deliver the job before anyone may rescue it
    /// (default: sized from the program's trace length, at least 40).
    #[arg(long)]
    lock_timeout: Option<u64>,
    /// Blocks until the job must be fulfilled (default: twice the lock timeout, at least 400).
    #[arg(long)]
    timeout: Option<u64>,
    /// Collateral the locking provider puts up (default: the max price).
    #[arg(long)]
    collateral: Option<u64>,
    /// Minimum provider trust score (0–1000).
    #[arg(long)]
    min_trust: Option<u32>,
}

/// The SDK's default offer, which validators' canary jobs share.
const DEFAULT_OFFER: Offer = verity_client::default_offer(verity_client::DEFAULT_MAX_PRICE);

impl Default for OfferArgs {
    fn default() -> Self {
        OfferArgs {
            max_price: DEFAULT_OFFER.max_price,
            min_price: None,
            ramp_start: DEFAULT_OFFER.ramp_start,
            ramp_period: DEFAULT_OFFER.ramp_period,
            lock_timeout: None,
            timeout: None,
            collateral: None,
            min_trust: None,
        }
    }
}

#[derive(Subcommand)]
pub enum JobCmd {
    /// Submit a job: the program runs locally first (to catch errors and size the cycle cap).
    Submit(Box<SubmitArgs>),
    /// A job's state, price, provider and (with --timeline) every transition.
    Status {
        id: String,
        #[arg(long)]
        timeline: bool,
        /// Decode a prediction with this model (default: a model this machine imported or
        /// submitted whose id is the job's program).
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Fetch a job's receipt, verify it, and write it to a file.
    Receipt {
        id: String,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Args)]
pub struct SubmitArgs {
    /// Miden Assembly source file (`.masm`), or give `--model`.
    #[arg(required_unless_present = "model")]
    program: Option<PathBuf>,
    /// Submit one prediction of this model (a `.vmodel` from `verity model import`) on
    /// `--input FILE` (JSON floats), which stays private: the job carries its commitment.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["program", "inputs_file", "private", "max_cycles"])]
    model: Option<PathBuf>,
    #[command(flatten)]
    inputs: InputArgs,
    #[arg(long, value_enum, default_value = "proof")]
    mode: ModeArg,
    #[command(flatten)]
    offer: OfferArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Follow the job until it ends, printing its timeline and outputs.
    #[arg(long)]
    wait: bool,
}

/// How a card's prediction is sized: the compiler's cycle bound (the cap), and the trace
/// length of a dry run with the card's neutral parameters (what a provider will prove).
#[derive(Debug, Clone, Copy)]
pub struct CardSize {
    pub cycle_bound: u64,
    pub trace_len: u64,
}

/// What `job submit` sends: a program with its inputs, or one prediction of a model.
pub struct JobSpec {
    pub job: LoadedProgram,
    /// The cycle cap asked for (default: twice what the local run needs).
    pub max_cycles: Option<u32>,
    /// The model, for a prediction: it decodes the outputs.
    pub model: Option<LoadedModel>,
    /// When the job cannot run here (a committed-weights model's card: the weights are the
    /// provider's), what sizes it instead of a run.
    pub cannot_run: Option<CardSize>,
}

impl JobSpec {
    pub fn program(args: &ProgramArgs) -> Result<JobSpec> {
        Ok(JobSpec {
            job: load(&args.program, &args.inputs)?,
            max_cycles: args.inputs.max_cycles,
            model: None,
            cannot_run: None,
        })
    }

    /// One prediction of `model` on the input in `input`.
    pub fn of_model(model: LoadedModel, input: &Path) -> Result<JobSpec> {
        let x = model_file::read_input(input)?;
        let mut job = model.job(&x)?;
        // A committed-weights model: the weights never leave their owner; a provider that
        // holds them (`verity provider --model`) proves the job.
        let cannot_run = if model.is_card() {
            let dry = model.dry_run(&x)?;
            // The real weights may take other argmax branches than the dry run's tied
            // logits: a few cycles and one block hash (16 hasher rows) per class. Plan for
            // them, so that a dry run just under a power of two does not halve the time an
            // honest provider gets.
            let slack = 16 * model.model.classes() as u64;
            let longest = dry.cycles.max(dry.rows.chiplets).max(dry.rows.range);
            Some(CardSize {
                cycle_bound: model.compiled.estimated_cycles,
                trace_len: dry.trace_len.max((longest + slack).next_power_of_two()),
            })
        } else {
            None
        };
        job.given.advice = Default::default();
        Ok(JobSpec {
            job,
            max_cycles: None,
            model: Some(model),
            cannot_run,
        })
    }

    fn prediction(model: &Path, input: &Path) -> Result<JobSpec> {
        let spec = JobSpec::of_model(LoadedModel::load(model)?, input)?;
        // So that `job status` can decode this job's outputs later.
        if let Some(m) = &spec.model {
            model_file::remember(m, &spec.job.program.hash());
        }
        Ok(spec)
    }

    fn from_args(args: &SubmitArgs) -> Result<JobSpec> {
        match (&args.model, &args.program) {
            (Some(model), _) => {
                let Some(input) = &args.inputs.input else {
                    bail!("--model needs --input FILE: the model's input as JSON");
                };
                JobSpec::prediction(model, Path::new(input))
            }
            (None, Some(program)) => JobSpec::program(&ProgramArgs {
                program: program.clone(),
                inputs: args.inputs.clone(),
            }),
            (None, None) => bail!("give a program file or --model"),
        }
    }
}

/// The job's trace length and cycle cap. The program is run locally first, exactly as the
/// job will be proven: a failing program is caught here, and the cap defaults to twice what
/// the program needs. A card's prediction (its weights are elsewhere) takes the compiler's
/// cycle bound as its cap and its trace length from a dry run.
fn size_job(spec: &JobSpec) -> Result<(u64, u32)> {
    let LoadedProgram {
        program, inputs, ..
    } = &spec.job;
    let cap = spec.max_cycles.unwrap_or(verity_vm::DEFAULT_MAX_CYCLES);
    Ok(match spec.cannot_run {
        None => {
            let run =
                verity_vm::execute(program, inputs, cap).context("the program fails locally")?;
            let max = spec
                .max_cycles
                .unwrap_or_else(|| verity_client::suggested_max_cycles(run.trace_len, cap));
            (run.trace_len, max)
        }
        Some(card) => {
            let max = spec.max_cycles.unwrap_or(card.cycle_bound.clamp(
                u64::from(verity_vm::MIN_MAX_CYCLES),
                u64::from(verity_vm::MAX_MAX_CYCLES),
            ) as u32);
            (card.trace_len, max)
        }
    })
}

/// The offer's terms: what the user gave, and timeouts that give an honest provider time to
/// prove a trace of `planned` rows where the user gave none.
fn offer_terms(offer: &OfferArgs, planned: u64, block_ms: u64) -> Offer {
    let (lock_timeout, timeout) = verity_client::default_timeouts(planned, block_ms);
    let lock_timeout = offer.lock_timeout.unwrap_or(lock_timeout);
    Offer {
        min_price: offer.min_price.unwrap_or(offer.max_price / 10),
        max_price: offer.max_price,
        ramp_start: offer.ramp_start,
        ramp_period: offer.ramp_period,
        lock_timeout,
        timeout: offer.timeout.unwrap_or(timeout.max(lock_timeout)),
        collateral: offer.collateral.unwrap_or(offer.max_price),
    }
}

/// A job just admitted to the mempool: its id, its trace length, and how long a provider has
/// to lock it (what waiting for the locker, to hand it private inputs, may take).
pub struct Submitted {
    pub id: JobId,
    pub tx: verity_types::TxId,
    pub trace_len: u64,
    pub lock_window: Duration,
}

/// Submits a job with an offer sized to it (after running it locally); returns once the node
/// admitted it. [`provide_private_inputs`] then hands its locker the private inputs, if any.
pub async fn submit_job(
    client: &Client,
    key: &Keypair,
    spec: &JobSpec,
    mode: Mode,
    offer: &OfferArgs,
) -> Result<Submitted> {
    let LoadedProgram { source, given, .. } = &spec.job;
    if !given.advice.is_empty() {
        bail!(
            "network jobs take no raw advice (advice_stack, advice_map, merkle_store): pass \
             private data as `private_inputs` (or --private), which the proof is bound to"
        );
    }
    let (trace_len, max_cycles) = size_job(spec)?;
    // Offers that fit the job: unless told otherwise, give an honest provider time to prove
    // this trace length (the network's defaults once slashed honest provers of big jobs).
    // A provider cannot run a job with private inputs before it holds the lock, so it plans
    // for the cycle cap: size those from the cap too, or from the trace when the chiplets
    // make it longer than the cap's.
    let head = client.head().await?;
    let planned = if given.private.is_empty() {
        trace_len
    } else {
        u64::from(max_cycles).next_power_of_two().max(trace_len)
    };
    let terms = offer_terms(offer, planned, head.block_interval_ms);
    let lock_timeout = terms.lock_timeout;
    let private_inputs = if given.private.is_empty() {
        None
    } else {
        Some(verity_vm::commit_private(&given.private)?)
    };
    // Checked before anything is published: a publication is paid for.
    terms
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid offer: {e}"))?;
    let program = job_program_source(client, key, source).await?;
    let req = JobRequest {
        program,
        stack_inputs: given.stack.clone(),
        private_inputs,
        mode,
        offer: terms,
        max_cycles,
        min_trust: offer.min_trust,
    };
    let tx = client.send(key, TxBody::SubmitJob(req)).await?;
    Ok(Submitted {
        id: JobId::submitted_by(tx),
        tx,
        trace_len,
        lock_window: Duration::from_millis(head.block_interval_ms * lock_timeout)
            + Duration::from_secs(30),
    })
}

/// Waits until the job's transaction is in a block: a refusal says why, and a timeout says it
/// is a timeout (the transaction may still be included: resubmitting could pay twice).
pub async fn wait_included(client: &Client, job: &Submitted) -> Result<()> {
    let timeout = Duration::from_secs(30);
    match client.wait_tx(&job.tx, timeout).await {
        Ok(_) => Ok(()),
        Err(verity_client::ClientError::Refused {
            code: verity_client::ErrorCode::Rejected,
            message,
            ..
        }) => bail!("the ledger refused job {}: {message}", job.id),
        Err(verity_client::ClientError::Protocol(_)) => bail!(
            "job {} is not in a block after {timeout:?}; it may still be (its transaction waits in the mempool): check with `verity job status {}` before submitting again",
            job.id,
            job.id
        ),
        Err(e) => Err(e.into()),
    }
}

/// Hands the job's locker its private inputs, once a provider locks it. The data goes on the
/// ledger only then, sealed to the locker's key: every node relays it, only the locker can
/// read it, and the locker's delivery clock starts then.
pub async fn provide_private_inputs(
    client: &Client,
    key: &Keypair,
    spec: &JobSpec,
    job: &Submitted,
) -> Result<()> {
    let private = &spec.job.given.private;
    if private.is_empty() {
        return Ok(());
    }
    wait_included(client, job).await?;
    eprintln!(
        "job {}: waiting for a provider to lock it, to hand it the private inputs (sealed to its key)",
        job.id.short()
    );
    let locker = client
        .provide_private(&job.id, private, key, job.lock_window)
        .await
        .context("cannot provide the private inputs")?;
    eprintln!("private inputs provided to {}", locker.short());
    Ok(())
}

/// How a job names its program: by hash when the ledger already holds it; inline when it is
/// small enough to travel in the job; otherwise published first (once, for every job after),
/// then named by hash.
async fn job_program_source(
    client: &Client,
    key: &Keypair,
    source: &str,
) -> anyhow::Result<ProgramSource> {
    let hash = verity_vm::Program::assemble(source, "job.masm")?.hash();
    if client.program(&hash).await?.is_some() {
        return Ok(ProgramSource::Published(hash));
    }
    let params = verity_ledger::Params::default();
    if source.len() <= params.max_program_bytes as usize {
        return Ok(ProgramSource::Inline(source.to_string()));
    }
    if source.len() > params.max_published_program_bytes as usize {
        bail!(
            "the program is {} KiB, more than the ledger publishes ({} KiB): prove it locally \
             (`verity prove`, or `verity infer --prove` for a model)",
            source.len() / 1024,
            params.max_published_program_bytes / 1024
        );
    }
    eprintln!(
        "publishing program {} ({} KiB, too large to travel in a job): once on the ledger, \
         every job names it by hash",
        hash.short(),
        source.len().div_ceil(1024)
    );
    let tx = client
        .send(
            key,
            TxBody::PublishProgram {
                source: source.to_string(),
            },
        )
        .await
        .context("the node refused the program")?;
    if let Err(e) = client.wait_tx(&tx, Duration::from_secs(60)).await {
        // Someone may have published the same program first (our publication then paid its
        // fee for nothing): it is there all the same.
        if client.program(&hash).await?.is_none() {
            return Err(anyhow::Error::new(e).context("publishing the program failed"));
        }
        eprintln!(
            "program {} was published by someone else first",
            hash.short()
        );
    }
    Ok(ProgramSource::Published(hash))
}

/// Follows a job to its end: prints each timeline entry as it happens, and below them a live
/// line with the state, the auction price, the time since submission and the expected
/// proving time. Waits until the ledger ends the job (its deadline bounds that).
async fn follow(client: &Client, id: &JobId, mode: Mode, trace_len: u64) -> Result<Job> {
    let expected = match mode {
        Mode::Proof => {
            verity_client::expected_prove_time(trace_len, verity_client::REFERENCE_PROVE_RATE)
        }
        Mode::Optimistic => Duration::ZERO,
    };
    let live = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    live.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    live.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    let mut seen = 0;
    loop {
        let view = client.job(id).await?;
        for entry in &view.job.timeline[seen.min(view.job.timeline.len())..] {
            live.suspend(|| print_entry(entry));
        }
        seen = view.job.timeline.len();
        if view.job.state().is_terminal() {
            live.finish_and_clear();
            return Ok(view.job);
        }
        // Before a lock: the auction's price now and the lock deadline; after: what the
        // lock pays and the delivery deadline.
        let (price, due) = match view.job.lock_price() {
            None => (
                format!("price now {}", view.current_price),
                format!("lock by block {}", view.lock_deadline),
            ),
            Some(p) => (
                format!("price {p}"),
                format!("deliver by block {}", view.deadline),
            ),
        };
        live.set_message(format!(
            "{} · {price} · {:.0?} since submission · proving expected ~{:.0?} (trace 2^{}) · {due}",
            view.job.state(),
            started.elapsed(),
            expected,
            trace_len.max(1).trailing_zeros(),
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn run(cmd: JobCmd) -> Result<()> {
    match cmd {
        JobCmd::Submit(args) => submit(*args).await,
        JobCmd::Status {
            id,
            timeline,
            model,
            read,
        } => status(&id, timeline, model.as_deref(), &read).await,
        JobCmd::Receipt { id, output, node } => receipt(&id, &output, &node).await,
    }
}

/// `job submit`: runs the job locally, submits it, and with `--wait` follows it to its end.
async fn submit(args: SubmitArgs) -> Result<()> {
    let client = Client::new(&args.node.node);
    let key = resolve_key(&args.key.key)?;
    let mode = match args.mode {
        ModeArg::Proof => Mode::Proof,
        ModeArg::Optimistic => Mode::Optimistic,
    };
    let spec = JobSpec::from_args(&args)?;
    let submitted = submit_job(&client, &key, &spec, mode, &args.offer).await?;
    let (id, trace_len) = (submitted.id, submitted.trace_len);
    println!("job {id}");
    provide_private_inputs(&client, &key, &spec, &submitted).await?;
    if !args.wait {
        println!("submitted; follow it with `verity job status {id}` (or submit with --wait)");
        return Ok(());
    }
    wait_included(&client, &submitted).await?;
    let job = follow(&client, &id, mode, trace_len).await?;
    match (&job.outputs(), job.state()) {
        (Some(o), JobState::Finalized) => {
            println!("outputs: {}", format_felts(o));
            if let Some(model) = &spec.model {
                println!("prediction: {}", model.describe(o)?);
            }
        }
        _ => bail!("job ended {}", job.state()),
    }
    if mode == Mode::Proof {
        client.receipt(&id).await?;
        println!("receipt verified locally (get it with `verity job receipt {id} -o FILE`)");
    }
    Ok(())
}

/// `job status`: the job's record, its outputs decoded with a model when one is known.
async fn status(id: &str, timeline: bool, model: Option<&Path>, read: &ReadArgs) -> Result<()> {
    let client = Client::new(&read.node.node);
    let view = client.job(&super::job_id(&client, id).await?).await?;
    if read.json {
        return crate::render::print_json(&view);
    }
    let j = &view.job;
    println!("job      {}", j.id);
    println!("state    {}", j.state());
    println!("program  {}", j.program_hash);
    println!("mode     {}", mode_name(j.request.mode));
    println!("client   {}", j.client);
    println!(
        "price    {} (auction now {}, max {})",
        j.lock_price().map_or_else(|| "-".into(), |p| p.to_string()),
        view.current_price,
        j.request.offer.max_price
    );
    println!(
        "provider {}",
        j.locker()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into())
    );
    println!(
        "deadlines lock by block {}, deliver by block {}",
        view.lock_deadline, view.deadline
    );
    if let Some(o) = &j.outputs() {
        println!("outputs  {}", format_felts(o));
        if let Some(prediction) = prediction(j, o, model)? {
            println!("predicts {prediction}");
        }
    }
    if let Some(f) = &view.failure {
        println!("failure  {f}");
    }
    if timeline {
        println!("timeline");
        for e in &j.timeline {
            print_entry(e);
        }
    }
    Ok(())
}

/// A finished job's outputs read as a prediction, when the job ran a model: the one given,
/// or one this machine imported or submitted. Fails if the given model is not what ran.
fn prediction(j: &Job, outputs: &[u64], model: Option<&Path>) -> Result<Option<String>> {
    let model = match model {
        Some(path) => LoadedModel::load(path)?,
        None => match model_file::recall(&j.program_hash) {
            Some(m) => m,
            None => return Ok(None),
        },
    };
    let id = model.id()?;
    if id != j.program_hash {
        bail!(
            "job {} ran program {}, not model {} (id {id}){}",
            j.id,
            j.program_hash,
            model.model.name,
            model.compiler_note()
        );
    }
    // The architecture's program alone says nothing about whose weights ran: the job's
    // first public inputs are the model commitment (weights, labels and scales).
    if let Some(m) = model.model_commitment()?
        && j.request.stack_inputs.get(..4) != Some(&m[..])
    {
        bail!(
            "job {} ran model {}'s architecture with other weights, labels or scales{}",
            j.id,
            model.model.name,
            model.compiler_note()
        );
    }
    let claimed = if j.state() == JobState::Finalized {
        ""
    } else {
        " (claimed, not final)"
    };
    Ok(Some(format!("{}{claimed}", model.describe(outputs)?)))
}

/// `job receipt`: fetches the receipt, verifies it, writes it.
async fn receipt(id: &str, output: &Path, node: &NodeArgs) -> Result<()> {
    let client = Client::new(&node.node);
    let receipt = client.receipt(&super::job_id(&client, id).await?).await?;
    std::fs::write(output, receipt.to_json())
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("receipt verified and written to {}", output.display());
    Ok(())
}

#[derive(Args)]
pub struct JobsArgs {
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    client: Option<String>,
    #[arg(long)]
    provider: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    read: ReadArgs,
}

pub async fn list(args: JobsArgs) -> Result<()> {
    let client = Client::new(&args.read.node.node);
    let q = JobQuery {
        state: args
            .state
            .as_deref()
            .map(|s| s.parse::<JobState>().map_err(anyhow::Error::msg))
            .transpose()?,
        client: match &args.client {
            Some(who) => Some(super::address(&client, who).await?),
            None => None,
        },
        provider: match &args.provider {
            Some(who) => Some(super::address(&client, who).await?),
            None => None,
        },
        after: None,
        limit: Some(args.limit),
    };
    let page = client.jobs(&q).await?;
    if args.read.json {
        return crate::render::print_json(&page);
    }
    println!(
        "{:<14} {:<10} {:<11} {:>8} {:>7} {:<13}",
        "job", "state", "mode", "submitted", "price", "provider"
    );
    for j in &page.jobs {
        println!(
            "{:<14} {:<10} {:<11} {:>8} {:>7} {:<13}",
            j.id.short(),
            j.state.to_string(),
            mode_name(j.mode),
            j.submitted_height,
            j.lock_price.map_or_else(|| "-".into(), |p| p.to_string()),
            j.locker.map(|a| a.short()).unwrap_or_else(|| "-".into())
        );
    }
    if page.next.is_some() {
        println!("(more: raise --limit)");
    }
    Ok(())
}
