//! `verity run | prove | verify`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use verity_types::{HashFunction, Receipt, format_felts, parse_felt_list};
use verity_vm::{Inputs, Program, ProveOptions, ProveStage};

use crate::program_file::{LoadedProgram, ProgramArgs, load};
use crate::render::fmt_duration;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    program: ProgramArgs,
}

#[derive(Args)]
pub struct ProveArgs {
    #[command(flatten)]
    program: ProgramArgs,
    /// Where to write the receipt (default: the program path with a `.receipt` extension).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Hash function of the proof: blake3-256 (fastest) or poseidon2.
    #[arg(long, value_name = "NAME", default_value = "blake3-256")]
    hash_fn: HashFunction,
    /// Do not show the progress indicator.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The receipt file written by `verity prove` (or fetched from a node).
    receipt: PathBuf,
    /// Also check that the receipt is for this program source.
    #[arg(long, value_name = "FILE")]
    program: Option<PathBuf>,
    /// Also check that the output stack starts with these values (comma-separated).
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    expect_output: Option<String>,
    /// Also check that the receipt is a prediction of this model (`.vmodel`), and decode it.
    #[arg(long, value_name = "FILE", conflicts_with = "program")]
    model: Option<PathBuf>,
    /// With `--model`: check the predicted class (index or label).
    #[arg(long, value_name = "CLASS", requires = "model")]
    expect_class: Option<String>,
    /// With `--model`: check the receipt is for this input (JSON), which stays off the receipt.
    #[arg(long, value_name = "FILE", requires = "model")]
    input: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> Result<()> {
    let LoadedProgram {
        program, inputs, ..
    } = load(&args.program.program, &args.program.inputs)?;
    let started = Instant::now();
    let max_cycles = args
        .program
        .inputs
        .max_cycles
        .unwrap_or(verity_vm::DEFAULT_MAX_CYCLES);
    let execution = verity_vm::execute(&program, &inputs, max_cycles)?;
    let elapsed = started.elapsed();
    println!("outputs: {}", format_felts(&execution.outputs));
    println!(
        "cycles:  {} (proof trace length {}), executed in {}",
        execution.cycles,
        execution.trace_len,
        fmt_duration(elapsed)
    );
    if let Some(line) = crate::render::trace_segments(&execution) {
        println!("trace:   {line}");
    }
    println!("program: {}", program.hash());
    Ok(())
}

pub fn prove(args: ProveArgs) -> Result<()> {
    let LoadedProgram {
        program, inputs, ..
    } = load(&args.program.program, &args.program.inputs)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.program.program.with_extension("receipt"));
    let options = ProveOptions {
        max_cycles: args
            .program
            .inputs
            .max_cycles
            .unwrap_or(verity_vm::DEFAULT_MAX_CYCLES),
        hash_fn: args.hash_fn,
    };

    let started = Instant::now();
    let (receipt, proving) = prove_with_spinner(&program, &inputs, options, args.quiet)?;
    let total = started.elapsed();

    std::fs::write(&output, receipt.to_json())
        .with_context(|| format!("cannot write receipt to {}", output.display()))?;
    println!("outputs: {}", format_felts(&receipt.stack_outputs));
    println!(
        "proved {} cycles in {} (execute + trace {}, prove {}); proof {} KB, {}, {}-bit",
        receipt.cycles,
        fmt_duration(total),
        fmt_duration(total.saturating_sub(proving)),
        fmt_duration(proving),
        receipt.proof.len() / 1024,
        receipt.hash_fn,
        receipt.security_bits
    );
    println!("program: {}", receipt.program_hash);
    println!("receipt: {}", output.display());
    Ok(())
}

/// Proves with a spinner on the terminal naming the stage (hidden when `quiet`). Returns the
/// receipt and the time spent in the prover proper (after execution and trace building).
pub fn prove_with_spinner(
    program: &Program,
    inputs: &Inputs,
    options: ProveOptions,
    quiet: bool,
) -> Result<(Receipt, Duration)> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
            .expect("valid progress template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut proving_started = Instant::now();
    let receipt =
        verity_vm::prove_with_progress(program, inputs, options, &mut |stage| match stage {
            ProveStage::Executing => bar.set_message("executing"),
            ProveStage::BuildingTrace => bar.set_message("building the execution trace"),
            ProveStage::Proving { cycles, trace_len } => {
                proving_started = Instant::now();
                bar.set_message(format!(
                    "proving {cycles} cycles (trace length {trace_len})"
                ));
            }
        });
    bar.finish_and_clear();
    Ok((receipt?, proving_started.elapsed()))
}

pub fn verify(args: VerifyArgs) -> Result<()> {
    let bytes = std::fs::read(&args.receipt)
        .with_context(|| format!("cannot read receipt {}", args.receipt.display()))?;
    let receipt = Receipt::from_json(&bytes)
        .with_context(|| format!("{} is not a usable receipt", args.receipt.display()))?;
    let started = Instant::now();
    let verified = verity_vm::verify_receipt(&receipt).context("verification failed")?;
    let elapsed = started.elapsed();

    if let Some(path) = &args.program {
        let program = Program::from_file(path)?;
        // A receipt of a job with private inputs attests the program wrapped with Verity's
        // loader for the commitment on its public stack.
        let wrapped = || -> Option<Program> {
            let commitment = verity_vm::commitment_in_stack(&receipt.stack_inputs)?;
            let source = std::fs::read_to_string(path).ok()?;
            verity_vm::assemble_job(&source, Some(&commitment), u64::MAX)
                .ok()
                .map(|j| j.program)
        };
        let matches = program.hash() == receipt.program_hash
            || wrapped().is_some_and(|w| w.hash() == receipt.program_hash);
        if !matches {
            return Err(verity_vm::VerifyError::ProgramMismatch {
                receipt: receipt.program_hash,
                program: program.hash(),
            })
            .context("verification failed");
        }
    }
    if let Some(expected) = &args.expect_output {
        let expected = parse_felt_list(expected).context("in --expect-output")?;
        if expected.len() > receipt.stack_outputs.len()
            || receipt.stack_outputs[..expected.len()] != expected[..]
        {
            return Err(verity_vm::VerifyError::OutputMismatch {
                expected: format_felts(&expected),
                actual: format_felts(&receipt.stack_outputs),
            })
            .context("verification failed");
        }
    }
    if receipt.stack_outputs.is_empty() {
        bail!("receipt has no outputs");
    }
    if let Some(model) = &args.model {
        let prediction = super::infer::check_receipt(
            &receipt,
            model,
            args.expect_class.as_deref(),
            args.input.as_deref(),
        )
        .context("verification failed")?;
        println!(
            "OK: {prediction} ({} cycles, {}, {}-bit) verified in {}",
            receipt.cycles,
            receipt.hash_fn,
            verified.security_bits,
            fmt_duration(elapsed)
        );
        return Ok(());
    }
    println!(
        "OK: program {} outputs {} ({} cycles, {}, {}-bit) verified in {}",
        receipt.program_hash,
        format_felts(&receipt.stack_outputs),
        receipt.cycles,
        receipt.hash_fn,
        verified.security_bits,
        fmt_duration(elapsed)
    );
    Ok(())
}
