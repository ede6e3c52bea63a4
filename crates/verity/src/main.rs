//! `verity`: the Verity command line.
//!
//! A thin layer over the libraries: it parses flags, reads files, calls `verity-vm`, and
//! prints. Exit codes: 0 on success, 1 when the work failed (a proof did not verify, a
//! program failed), 2 for usage errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod model_cmds;
mod net_cmds;
mod proof_cmds;

/// Verity: verifiable compute. Run Miden programs, prove them, and check the proofs.
#[derive(Parser)]
#[command(name = "verity", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Execute a program without proving it: prints the output stack and cycle count.
    Run(proof_cmds::RunArgs),
    /// Execute and prove a program, writing a receipt anyone can verify.
    Prove(proof_cmds::ProveArgs),
    /// Verify a receipt: exit 0 with a one-line summary, or exit 1 saying what failed.
    Verify(proof_cmds::VerifyArgs),
    /// Import ONNX models (quantize and compile them to Miden programs) and inspect them.
    #[command(subcommand)]
    Model(model_cmds::ModelCmd),
    /// Predict with a model: run it locally, or prove the prediction (`--prove`).
    Infer(model_cmds::InferArgs),
    /// Run a whole network on this machine: a validator, a provider and funded dev keys.
    Devnet(net_cmds::DevnetArgs),
    /// Set up and run a validator node: `node init` makes its key, `node run` runs it.
    #[command(subcommand)]
    Node(net_cmds::NodeCmd),
    /// Run a provider worker against a node (lock, prove and fulfil jobs), or `provider show
    /// ADDR` for a provider's trust profile.
    Provider(net_cmds::ProviderArgs),
    /// Every provider's trust profile, best score first.
    Providers(net_cmds::NodeArgs),
    /// Every validator's record as an auditor: canaries revealed, claims contradicted, stake
    /// slashed.
    Auditors(net_cmds::NodeArgs),
    /// Submit jobs and inspect them.
    #[command(subcommand)]
    Job(net_cmds::JobCmd),
    /// List jobs, filtered by state, client or provider.
    Jobs(net_cmds::JobsArgs),
    /// Is the node reachable? Height, last block time, mempool, providers online.
    Status(net_cmds::NodeArgs),
    /// An account's balance, nonce and stake.
    Account {
        /// Address or key name.
        who: String,
        #[command(flatten)]
        node: net_cmds::NodeArgs,
    },
    /// Create and list keys.
    #[command(subcommand)]
    Keys(net_cmds::KeysCmd),
    /// Stake as a provider or validator.
    Stake(net_cmds::StakeArgs),
    /// Start unbonding stake (returns to the balance after the unbonding period).
    Unstake(net_cmds::StakeArgs),
    /// Send funds.
    Transfer(net_cmds::TransferArgs),
}

/// A program and its inputs, shared by `run` and `prove`.
#[derive(Args, Debug, Clone)]
pub struct ProgramArgs {
    /// Miden Assembly source file (`.masm`); it may `use miden::core::...`.
    pub program: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
}

/// A program's inputs and cycle cap (`run`, `prove`, `job submit`).
#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Public stack inputs: comma-separated field elements, top of the stack first
    /// (the order of `operand_stack` in a Miden `.inputs` file). With `job submit --model`:
    /// the model's input, a JSON file of floats.
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub input: Option<String>,
    /// A Miden `.inputs` JSON file (operand_stack, advice_stack, advice_map, merkle_store).
    /// Advice inputs are private: they never appear in the receipt.
    #[arg(long, value_name = "FILE", conflicts_with = "input")]
    pub inputs_file: Option<PathBuf>,
    /// Private inputs: comma-separated field elements the program reads from memory at
    /// 2^28 (element i at 2^28 + i). Only their commitment is public: it is bound to the proof
    /// (see the README). Overrides `private_inputs` in an inputs file.
    #[arg(long, value_name = "LIST")]
    pub private: Option<String>,
    /// Stop with an error past this many VM cycles (default 2^20; for `job submit`, twice
    /// what the program needs when run locally).
    #[arg(long, value_name = "N")]
    pub max_cycles: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => proof_cmds::run(args),
        Command::Prove(args) => proof_cmds::prove(args),
        Command::Verify(args) => proof_cmds::verify(args),
        Command::Keys(cmd) => net_cmds::keys(cmd),
        Command::Model(cmd) => model_cmds::model(cmd),
        Command::Infer(args) => model_cmds::infer(args),
        other => network(other),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Commands that talk to (or are) a node run on a tokio runtime, with logs on stderr.
fn network(command: Command) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VERITY_LOG")
        // Miden logs internal diagnostics at error level while assembling; they are not errors
        // of ours, so they stay quiet unless asked for with VERITY_LOG.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,miden_core=off,miden_assembly=off,miden_assembly_syntax=off,miden_processor=off,miden_prover=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Devnet(args) => net_cmds::devnet(args).await,
            Command::Node(cmd) => net_cmds::node(cmd).await,
            Command::Provider(args) => net_cmds::provider(args).await,
            Command::Providers(node) => net_cmds::providers(node).await,
            Command::Auditors(node) => net_cmds::auditors(node).await,
            Command::Job(cmd) => net_cmds::job(cmd).await,
            Command::Jobs(args) => net_cmds::jobs(args).await,
            Command::Status(node) => net_cmds::status(node).await,
            Command::Account { who, node } => net_cmds::account(who, node).await,
            Command::Stake(args) => net_cmds::stake(args, false).await,
            Command::Unstake(args) => net_cmds::stake(args, true).await,
            Command::Transfer(args) => net_cmds::transfer(args).await,
            Command::Run(_)
            | Command::Prove(_)
            | Command::Verify(_)
            | Command::Keys(_)
            | Command::Model(_)
            | Command::Infer(_) => {
                unreachable!("handled in main")
            }
        }
    })
}
