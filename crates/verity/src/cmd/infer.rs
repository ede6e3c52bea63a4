//! `verity infer`, and the model checks of `verity verify --model`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use verity_types::{HashFunction, Receipt};
use verity_vm::ProveOptions;

use crate::model_file::{LoadedModel, read_input};
use crate::render::{commitment_hex, words_hex};

#[derive(Args)]
pub struct InferArgs {
    /// The `.vmodel` file written by `verity model import`.
    model: PathBuf,
    /// The input: a JSON array (nested arrays are flattened) of floats.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Print the prediction as JSON: {"class", "label", "logits", "scores", "cycles"}.
    #[arg(long)]
    json: bool,
    /// Prove the prediction and write a receipt.
    #[arg(long)]
    prove: bool,
    /// Where to write the receipt (default: the input path with a `.receipt` extension).
    #[arg(short, long, value_name = "FILE", requires = "prove")]
    output: Option<PathBuf>,
    /// Hash function of the proof: blake3-256 (fastest) or poseidon2.
    #[arg(long, value_name = "NAME", default_value = "blake3-256")]
    hash_fn: HashFunction,
    /// Do not show the progress indicator.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(serde::Serialize)]
struct Prediction {
    class: usize,
    label: String,
    logits: Vec<i64>,
    scores: Vec<f64>,
    cycles: u64,
    model_id: String,
    /// The private input's commitment (the input itself stays off the receipt).
    #[serde(skip_serializing_if = "Option::is_none")]
    input_commitment: Option<String>,
    /// A public input, as proven (quantized).
    #[serde(skip_serializing_if = "Option::is_none")]
    public_input: Option<Vec<i64>>,
}

pub fn run(args: InferArgs) -> Result<()> {
    let loaded = LoadedModel::load(&args.model)?;
    loaded.runnable()?;
    let x = read_input(&args.input)?;
    let (quantized, input) = loaded.quantized_input(&x)?;
    let (program, inputs) = loaded.statement(&input)?;
    // A private input's statement starts with its commitment.
    let commitment = if loaded.model.public_input {
        None
    } else {
        let c = verity_vm::commitment_in_stack(&inputs.stack)
            .context("the statement has no input commitment")?;
        Some(commitment_hex(&c))
    };
    let (outputs, cycles) = if args.prove {
        let started = Instant::now();
        let options = ProveOptions {
            max_cycles: verity_vm::MAX_MAX_CYCLES,
            hash_fn: args.hash_fn,
        };
        let (receipt, _) =
            super::proof::prove_with_spinner(&program, &inputs, options, args.quiet || args.json)?;
        let output = args
            .output
            .clone()
            .unwrap_or_else(|| args.input.with_extension("receipt"));
        std::fs::write(&output, receipt.to_json())
            .with_context(|| format!("cannot write {}", output.display()))?;
        if !args.json {
            println!(
                "proved in {:.2} s: proof {} KB; receipt {}",
                started.elapsed().as_secs_f64(),
                receipt.proof.len() / 1024,
                output.display()
            );
        }
        (receipt.stack_outputs.to_vec(), receipt.cycles)
    } else {
        let run = verity_vm::execute(&program, &inputs, verity_vm::MAX_MAX_CYCLES)?;
        (run.outputs.to_vec(), run.cycles)
    };
    let (class, logits) = loaded.model.decode_outputs(&outputs)?;
    // The program and the integer reference must agree; a difference is a compiler bug.
    if logits != loaded.model.infer(&quantized)? {
        bail!("internal error: the program's logits differ from the quantized reference");
    }
    let prediction = Prediction {
        class,
        label: loaded.model.label(class),
        scores: loaded.model.dequantize(&logits),
        logits,
        cycles,
        model_id: program.hash().to_string(),
        input_commitment: commitment,
        public_input: loaded.model.public_input.then(|| quantized.clone()),
    };
    if args.json {
        println!("{}", serde_json::to_string(&prediction)?);
    } else {
        print_prediction(&prediction);
    }
    Ok(())
}

/// The prediction as `verity infer` prints it for people.
fn print_prediction(prediction: &Prediction) {
    println!(
        "class:      {} (label {})",
        prediction.class, prediction.label
    );
    println!("logits:     {:?}", prediction.logits);
    println!(
        "scores:     {}",
        prediction
            .scores
            .iter()
            .map(|s| format!("{s:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("cycles:     {}", prediction.cycles);
    println!("model id:   {}", prediction.model_id);
    match (&prediction.input_commitment, &prediction.public_input) {
        (Some(c), _) => {
            println!("input:      commitment {c} (the input itself stays private)")
        }
        (None, Some(values)) => println!("input:      public, quantized {values:?}"),
        (None, None) => {}
    }
}

/// The model checks of `verity verify --model`: the receipt proves this model's program,
/// on a committed input of the model's size (and, with `input`, on exactly that input).
/// Returns a one-line description of the prediction.
pub fn check_receipt(
    receipt: &Receipt,
    model_path: &Path,
    expect_class: Option<&str>,
    input: Option<&Path>,
) -> Result<String> {
    let loaded = LoadedModel::load(model_path)?;
    let id = loaded.id()?;
    if receipt.program_hash != id {
        bail!(
            "the receipt proves program {}, not model {} (id {id}){}",
            receipt.program_hash,
            loaded.model.name,
            loaded.compiler_note()
        );
    }
    // A committed-weights model's receipt carries the model commitment (its weights, labels
    // and scales): it must be this model's (the program alone is only the architecture).
    let commitment = loaded.model_commitment()?;
    let weight_slots = if commitment.is_some() { 4 } else { 0 };
    if let Some(m) = &commitment
        && loaded.receipt_model_commitment(&receipt.stack_inputs) != m
    {
        bail!(
            "the receipt proves the architecture of model {} with other weights, labels or scales (model commitment {}, not {}){}",
            loaded.model.name,
            words_hex(&loaded.receipt_model_commitment(&receipt.stack_inputs)),
            words_hex(m),
            loaded.compiler_note()
        );
    }
    check_receipt_input(&loaded, receipt, weight_slots, input)?;
    let (class, logits) = loaded.model.decode_outputs(&receipt.stack_outputs)?;
    if verity_model::argmax(&logits) != class {
        bail!("the receipt's class is not the argmax of its logits");
    }
    let label = loaded.model.label(class);
    if let Some(want) = expect_class
        && want != label
        && want != class.to_string()
    {
        bail!("the receipt predicts class {class} (label {label}), not {want}");
    }
    Ok(format!(
        "model {} predicts class {class} (label {label}), logits {logits:?}, for {}",
        loaded.model.name,
        loaded.input_line(&receipt.stack_inputs)
    ))
}

/// The receipt's input is one of this model's: the right number of public values (after
/// `weight_slots` of weights' commitment), or a commitment to an input of the model's size;
/// and, with `input`, exactly that input.
fn check_receipt_input(
    loaded: &LoadedModel,
    receipt: &Receipt,
    weight_slots: usize,
    input: Option<&Path>,
) -> Result<()> {
    let n = loaded.model.input.len();
    if loaded.model.public_input {
        // The input is the public stack itself (after the weights' commitment).
        if receipt.stack_inputs.len() != weight_slots + n {
            bail!(
                "the receipt's public input has {} values, not the model's {n}",
                receipt.stack_inputs.len().saturating_sub(weight_slots)
            );
        }
        if let Some(path) = input {
            let (_, values) = loaded.quantized_input(&read_input(path)?)?;
            if values[..] != receipt.stack_inputs[weight_slots..] {
                bail!(
                    "the receipt is for a different input than {}",
                    path.display()
                );
            }
        }
    } else {
        let commitment = verity_vm::commitment_in_stack(&receipt.stack_inputs)
            .context("the receipt has no private-input commitment")?;
        if commitment.words != loaded.input_words()
            || receipt.stack_inputs.len() != verity_vm::PRIVATE_INPUT_SLOTS + weight_slots
        {
            bail!("the receipt's input is not a {n}-value input of this model");
        }
        if let Some(path) = input {
            let (_, private) = loaded.quantized_input(&read_input(path)?)?;
            if verity_vm::commit_private(&private)? != commitment {
                bail!(
                    "the receipt is for a different input than {}",
                    path.display()
                );
            }
        }
    }
    Ok(())
}
