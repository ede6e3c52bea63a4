//! `verity model import | inspect`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use verity_model::{QLayer, QuantModel};

use crate::model_file::{LoadedModel, import_model, remember};
use crate::render::{commitment_hex, pow2_label, words_hex};

#[derive(Subcommand)]
pub enum ModelCmd {
    /// Quantize an ONNX model to integers and compile it to a Miden program (a `.vmodel`).
    Import(ImportArgs),
    /// Layers, scales, cost and accuracy of a `.vmodel`.
    Inspect {
        /// The `.vmodel` file.
        model: PathBuf,
        /// Also write the generated Miden Assembly program (what every prediction proves).
        #[arg(long, value_name = "FILE")]
        masm: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct ImportArgs {
    /// The ONNX model.
    onnx: PathBuf,
    /// Calibration samples (JSON: `{"inputs": [[...], ...]}` or a list of inputs); they choose
    /// the quantization scales and measure agreement with the float model.
    #[arg(long, value_name = "FILE")]
    calibrate: PathBuf,
    /// Where to write the model (default: the ONNX path with a `.vmodel` extension).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Refuse models whose program would run longer than this (default and ceiling 2^20).
    #[arg(long, value_name = "N")]
    max_cycles: Option<u32>,
    /// Make the input public, on the stack (at most 16 values), instead of a committed
    /// private input: receipts then show it, and network jobs may run optimistically.
    #[arg(long)]
    public_input: bool,
    /// Committed weights: compile one program for the architecture that reads the weights
    /// from a committed input, and also write the model's card (`NAME.card.vmodel`: no
    /// weights, their commitment) for verifiers. Keep the `.vmodel` itself secret.
    #[arg(long)]
    private_weights: bool,
}

fn layer_line(layer: &QLayer) -> String {
    let clamp = |lo: &i64| if *lo == 0 { " + relu" } else { "" };
    match layer {
        QLayer::Dense {
            n_in, n_out, lo, ..
        } => format!("dense {n_in} -> {n_out}{}", clamp(lo)),
        QLayer::Conv {
            window, c_out, lo, ..
        } => format!(
            "conv {}x{}x{} -> {}x{}x{} (kernel {}x{}, stride {}, pads {:?}){}",
            window.input.c,
            window.input.h,
            window.input.w,
            c_out,
            window.out_h(),
            window.out_w(),
            window.kh,
            window.kw,
            window.stride_h,
            window.pads,
            clamp(lo)
        ),
        QLayer::MaxPool { window } => format!(
            "maxpool {}x{} -> {}x{}x{}",
            window.kh,
            window.kw,
            window.input.c,
            window.out_h(),
            window.out_w()
        ),
        QLayer::AvgPool { window, .. } => format!(
            "avgpool {}x{} -> {}x{}x{}",
            window.kh,
            window.kw,
            window.input.c,
            window.out_h(),
            window.out_w()
        ),
        QLayer::Relu { n } => format!("relu {n}"),
    }
}

/// The measured cost of one prediction.
fn print_cost(loaded: &LoadedModel, run: &verity_vm::Execution) {
    println!(
        "cost:       {} MACs, {} cycles (trace {}), est. prove {:.1} s at the reference rate",
        loaded.compiled.macs,
        run.cycles,
        pow2_label(run.trace_len),
        verity_client::expected_prove_time(run.trace_len, verity_client::REFERENCE_PROVE_RATE)
            .as_secs_f64()
    );
    if let Some(line) = crate::render::trace_segments(run) {
        println!("trace:      {line}");
    }
}

fn print_agreement(model: &QuantModel) {
    match &model.calibration {
        Some(a) => println!(
            "agreement:  top-1 {:.1}% ({} of {} calibration samples) with the float model run by tract; max logit error {:.4} (logits up to {:.2})",
            a.top1() * 100.0,
            a.top1_agreements,
            a.samples,
            a.max_logit_error,
            a.max_logit
        ),
        None => println!("agreement:  not measured"),
    }
}

pub fn run(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Import(args) => import(args),
        ModelCmd::Inspect { model, masm } => inspect(&model, masm.as_deref()),
    }
}

fn import(args: ImportArgs) -> Result<()> {
    let limit = args.max_cycles.unwrap_or(verity_vm::DEFAULT_MAX_CYCLES);
    let (loaded, id, run) = import_model(
        &args.onnx,
        &args.calibrate,
        limit,
        args.public_input,
        args.private_weights,
    )?;
    remember(&loaded, &id);
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.onnx.with_extension("vmodel"));
    loaded.model.save(&output)?;
    println!(
        "model:      {} (from {}, blake3 {})",
        loaded.model.name,
        args.onnx.display(),
        &loaded.model.source_hash[..16]
    );
    match loaded.weights_commitment()? {
        Some(w) => {
            println!("model id:   {id} (the architecture's program)");
            println!(
                "weights:    {} committed values, commitment {}",
                loaded.compiled.weights.as_ref().map_or(0, Vec::len),
                commitment_hex(&w)
            );
            print_model_commitment(&loaded)?;
        }
        None => println!("model id:   {id}"),
    }
    for layer in &loaded.model.layers {
        println!("layer:      {}", layer_line(layer));
    }
    print_cost(&loaded, &run);
    print_agreement(&loaded.model);
    println!("written:    {}", output.display());
    if let Some(w) = loaded.weights_commitment()? {
        let card = output.with_extension("card.vmodel");
        loaded.model.card(w.commitment).save(&card)?;
        println!(
            "card:       {} (for verifiers: no weights; keep {} secret)",
            card.display(),
            output.display()
        );
    }
    Ok(())
}

fn inspect(path: &Path, masm: Option<&Path>) -> Result<()> {
    let loaded = LoadedModel::load(path)?;
    if let Some(out) = masm {
        std::fs::write(out, &loaded.compiled.source)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    let m = &loaded.model;
    println!(
        "model:      {} ({} format, from ONNX blake3 {})",
        m.name, m.format, m.source_hash
    );
    // The cost of a prediction does not depend on the input: measure it on zeros (this also
    // assembles the program whose hash is the model id).
    let (_, zeros) = loaded.quantized_input(&vec![0.0; m.input.len()])?;
    let (program, inputs) = loaded.statement(&zeros)?;
    println!("model id:   {}", program.hash());
    if let Some(w) = loaded.weights_commitment()? {
        println!(
            "weights:    committed ({} values), commitment {}{}",
            loaded.compiled.weights.as_ref().map_or(0, Vec::len),
            commitment_hex(&w),
            if loaded.is_card() {
                "; a card: the weights are not in this file"
            } else {
                ""
            }
        );
        print_model_commitment(&loaded)?;
    }
    let visibility = if m.public_input {
        "public, on the stack".to_string()
    } else if loaded.compiled.private_len > m.input.len() {
        format!(
            "private, committed with the accumulators of the checked layers: {} words",
            loaded.input_words()
        )
    } else {
        format!("private, committed: {} words", loaded.input_words())
    };
    println!(
        "input:      {} values {:?} as int8, scale {:.6} ({visibility})",
        m.input.len(),
        m.input_dims,
        m.input_scale,
    );
    for (k, layer) in m.layers.iter().enumerate() {
        // Committed weights are not the program's to know: no per-layer count of non-zeros.
        if m.private_weights {
            println!("layer {k}:    {}", layer_line(layer));
        } else {
            println!(
                "layer {k}:    {:<60} {:>8} MACs",
                layer_line(layer),
                layer.macs()
            );
        }
        if loaded.compiled.checked_layers.contains(&k) {
            let from = if loaded.compiled.hints_from_prover {
                "from the prover (who holds the weights)"
            } else {
                "with the input"
            };
            println!(
                "            checked, not computed: its {} accumulators come {from} and are held \
                 to one random linear combination",
                layer.output_len()
            );
        }
    }
    let labels = m
        .labels
        .as_ref()
        .map(|l| l.join(", "))
        .unwrap_or_else(|| "(indices)".into());
    println!(
        "output:     {} logits (int, scale {:.6}) and the argmax; labels {labels}",
        m.classes(),
        m.logit_scale
    );
    if loaded.is_card() {
        println!(
            "cost:       {} MACs, at most {} cycles (the card cannot run: no weights)",
            loaded.compiled.macs, loaded.compiled.estimated_cycles
        );
    } else {
        let run = verity_vm::execute(&program, &inputs, verity_vm::MAX_MAX_CYCLES)?;
        print_cost(&loaded, &run);
    }
    print_agreement(m);
    Ok(())
}

/// The commitment a committed-weights model's receipts and jobs name.
fn print_model_commitment(loaded: &LoadedModel) -> Result<()> {
    if let Some(m) = loaded.model_commitment()? {
        println!(
            "commitment: {} (weights, labels and scales; with the id, this model's identity)",
            words_hex(&m)
        );
    }
    Ok(())
}
