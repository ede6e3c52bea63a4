//! `verity`: the Verity command line.
//!
//! A thin layer over the libraries: it parses flags, reads files, calls `verity-vm`, and
//! prints. Exit codes: 0 on success, 1 when the work failed (a proof did not verify, a
//! program failed), 2 for usage errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
}

/// A program and its inputs, shared by `run` and `prove` (and later `job submit`).
#[derive(Args, Debug, Clone)]
pub struct ProgramArgs {
    /// Miden Assembly source file (`.masm`); it may `use miden::core::...`.
    pub program: PathBuf,
    /// Public stack inputs: comma-separated field elements, top of the stack first
    /// (the order of `operand_stack` in a Miden `.inputs` file).
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub input: Option<String>,
    /// A Miden `.inputs` JSON file (operand_stack, advice_stack, advice_map, merkle_store).
    /// Advice inputs are private: they never appear in the receipt.
    #[arg(long, value_name = "FILE", conflicts_with = "input")]
    pub inputs_file: Option<PathBuf>,
    /// Stop with an error past this many VM cycles.
    #[arg(long, value_name = "N", default_value_t = verity_vm::DEFAULT_MAX_CYCLES)]
    pub max_cycles: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => proof_cmds::run(args),
        Command::Prove(args) => proof_cmds::prove(args),
        Command::Verify(args) => proof_cmds::verify(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
