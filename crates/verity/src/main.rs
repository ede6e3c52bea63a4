//! `verity`: the Verity command line.
//!
//! A thin layer over the libraries: it parses flags, reads files, calls `verity-vm`, and
//! prints. Exit codes: 0 on success, 1 when the work failed (a proof did not verify, a
//! program failed), 2 for usage errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod keystore;
mod model_file;
mod program_file;
mod render;

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
    Run(cmd::proof::RunArgs),
    /// Execute and prove a program, writing a receipt anyone can verify.
    Prove(cmd::proof::ProveArgs),
    /// Verify a receipt: exit 0 with a one-line summary, or exit 1 saying what failed.
    Verify(cmd::proof::VerifyArgs),
    /// Import ONNX models (quantize and compile them to Miden programs) and inspect them.
    #[command(subcommand)]
    Model(cmd::model::ModelCmd),
    /// Predict with a model: run it locally, or prove the prediction (`--prove`).
    Infer(cmd::infer::InferArgs),
    /// Run a whole network on this machine: a validator, a provider and funded dev keys.
    Devnet(cmd::devnet::DevnetArgs),
    /// Write a network's genesis file (`genesis new`).
    #[command(subcommand)]
    Genesis(cmd::genesis::GenesisCmd),
    /// Set up and run a validator node: `node init` makes its key, `node run` runs it.
    #[command(subcommand)]
    Node(cmd::node::NodeCmd),
    /// Run a provider worker against a node (lock, prove and fulfil jobs), or `provider show
    /// ADDR` for a provider's trust profile.
    Provider(cmd::provider::ProviderArgs),
    /// Every provider's trust profile, best score first.
    Providers(cmd::ReadArgs),
    /// Every validator's record as an auditor: canaries revealed, claims contradicted, stake
    /// slashed.
    Auditors(cmd::ReadArgs),
    /// Submit jobs and inspect them.
    #[command(subcommand)]
    Job(cmd::job::JobCmd),
    /// Check a job's provenance record against the validators' signatures (`provenance
    /// verify`), trusting no node.
    #[command(subcommand)]
    Provenance(cmd::provenance::ProvenanceCmd),
    /// List jobs, filtered by state, client or provider.
    Jobs(cmd::job::JobsArgs),
    /// Is the node reachable? Height, last block time, mempool, providers online.
    Status(cmd::ReadArgs),
    /// An account's balance, nonce and stake.
    Account {
        /// Address (whole, or a unique prefix as tables print it) or key name.
        who: String,
        #[command(flatten)]
        read: cmd::ReadArgs,
    },
    /// Create and list keys.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCmd),
    /// Stake as a provider or validator.
    Stake(cmd::chain::StakeArgs),
    /// Start unbonding stake (returns to the balance after the unbonding period).
    Unstake(cmd::chain::StakeArgs),
    /// Send funds.
    Transfer(cmd::chain::TransferArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serves = match &cli.command {
        Command::Devnet(_) | Command::Node(cmd::node::NodeCmd::Run(_)) => true,
        Command::Provider(args) => args.cmd.is_none(),
        _ => false,
    };
    if !serves {
        exit_quietly_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Run(args) => cmd::proof::run(args),
        Command::Prove(args) => cmd::proof::prove(args),
        Command::Verify(args) => cmd::proof::verify(args),
        Command::Keys(cmd) => cmd::keys::run(cmd),
        Command::Genesis(cmd) => cmd::genesis::run(cmd),
        Command::Model(cmd) => cmd::model::run(cmd),
        Command::Infer(args) => cmd::infer::run(args),
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

/// Rust ignores SIGPIPE, so printing into a closed pipe (`verity jobs | head -1`) fails, and
/// `println!` panics on the failure. A command that prints and exits should instead end
/// quietly, as other Unix tools do. Servers (node, devnet, provider) keep ignoring it: a
/// closed log pipe must not kill a validator. Sockets are not affected either way (Rust
/// writes to them with `MSG_NOSIGNAL`).
fn exit_quietly_on_closed_stdout() {
    // SAFETY: restoring a signal's default disposition at startup, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Commands that talk to (or are) a node run on a tokio runtime, with logs on stderr.
fn network(command: Command) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VERITY_LOG")
        // Miden logs internal diagnostics at error level while assembling; they are not errors
        // of ours, so they stay quiet unless asked for with VERITY_LOG.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,miden_core=off,miden_assembly=off,miden_assembly_syntax=off,miden_processor=off,miden_prover=off"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let log_file = match &command {
        Command::Devnet(args) => args.log_file(),
        _ => None,
    };
    match log_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::File::create(&path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
            let _ = logs
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .try_init();
        }
        None => {
            let _ = logs.with_writer(std::io::stderr).try_init();
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Devnet(args) => cmd::devnet::run(args).await,
            Command::Node(cmd) => cmd::node::run(cmd).await,
            Command::Provider(args) => cmd::provider::run(args).await,
            Command::Providers(node) => cmd::provider::list(node).await,
            Command::Auditors(node) => cmd::provider::auditors(node).await,
            Command::Job(cmd) => cmd::job::run(cmd).await,
            Command::Jobs(args) => cmd::job::list(args).await,
            Command::Provenance(cmd) => cmd::provenance::run(cmd).await,
            Command::Status(node) => cmd::chain::status(node).await,
            Command::Account { who, read } => cmd::chain::account(who, read).await,
            Command::Stake(args) => cmd::chain::stake(args, false).await,
            Command::Unstake(args) => cmd::chain::stake(args, true).await,
            Command::Transfer(args) => cmd::chain::transfer(args).await,
            Command::Run(_)
            | Command::Prove(_)
            | Command::Verify(_)
            | Command::Keys(_)
            | Command::Genesis(_)
            | Command::Model(_)
            | Command::Infer(_) => {
                unreachable!("handled in main")
            }
        }
    })
}
