//! A program and its inputs, read from files and flags (`run`, `prove`, `job submit`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use verity_types::parse_felt_list;
use verity_vm::{Inputs, Program};

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

/// Reads the program and its inputs from the shared flags.
///
/// Returns the program and inputs to run or prove, prepared as a network job would be: with
/// private inputs (`--private`, or `private_inputs` in the inputs file), the program wrapped
/// with Verity's loader and their commitment first on the public stack. Also returns the
/// source and the inputs as given (public stack and private values), for submitting a job.
pub fn load(path: &Path, args: &InputArgs) -> Result<LoadedProgram> {
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read program file {}", path.display()))?;
    let mut given = match (&args.input, &args.inputs_file) {
        (Some(list), _) => Inputs::from_stack_list(list).context("in --input")?,
        (None, Some(path)) => Inputs::from_inputs_file(path)?,
        (None, None) => Inputs::default(),
    };
    if let Some(list) = &args.private {
        given.private = parse_felt_list(list).context("in --private")?;
    }
    let (program, prepared) = verity_vm::prepare(&source, &path.display().to_string(), &given)?;
    Ok(LoadedProgram {
        source,
        program,
        inputs: prepared,
        given,
    })
}

/// A program read from its flags.
pub struct LoadedProgram {
    /// The source as written (what a job carries).
    pub source: String,
    /// The program as proven (with the private-input loader when there are private inputs).
    pub program: Program,
    /// The inputs as proven (the commitment first when there are private inputs).
    pub inputs: Inputs,
    /// The inputs as given.
    pub given: Inputs,
}
