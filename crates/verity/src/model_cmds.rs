//! `verity model import | inspect`, `verity infer`, and the model checks of `verity verify`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use verity_model::{Compiled, QLayer, QuantModel};
use verity_types::{Digest, HashFunction, PrivateCommitment, Receipt};
use verity_vm::{Inputs, Program, ProveOptions};

use crate::proof_cmds::LoadedProgram;

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

/// A model with its compiled program.
pub struct LoadedModel {
    pub model: QuantModel,
    pub compiled: Compiled,
}

impl LoadedModel {
    pub fn load(path: &Path) -> Result<LoadedModel> {
        let model = QuantModel::load(path)
            .with_context(|| format!("cannot load model {}", path.display()))?;
        let compiled = verity_model::compile(&model)?;
        Ok(LoadedModel { model, compiled })
    }

    /// The quantized input, as integers and as field elements.
    pub fn quantized_input(&self, x: &[f32]) -> Result<(Vec<i64>, Vec<u64>)> {
        let q = self.model.quantize_input(x)?;
        let felts = q.iter().map(|v| verity_model::to_felt(*v)).collect();
        Ok((q, felts))
    }

    /// A committed-weights model's card: the weights are not in it.
    pub fn is_card(&self) -> bool {
        self.model.weights_commitment.is_some()
    }

    /// The commitment to a committed-weights model's weights (the card's, or computed).
    pub fn weights_commitment(&self) -> Result<Option<PrivateCommitment>> {
        let (true, Some(weights)) = (self.model.private_weights, &self.compiled.weights) else {
            return Ok(None);
        };
        let computed = verity_vm::commit_private(weights)?;
        Ok(Some(match self.model.weights_commitment {
            Some(commitment) => PrivateCommitment {
                commitment,
                words: computed.words,
            },
            None => computed,
        }))
    }

    /// Fails for a model card, which cannot predict.
    fn runnable(&self) -> Result<()> {
        if self.is_card() {
            bail!(
                "model {} is a card: its weights are not in it, so only their owner can predict \
                 with it (a card verifies receipts)",
                self.model.name
            );
        }
        Ok(())
    }

    /// The input as given to the program: the weights' commitment first (committed-weights
    /// models, with the weights in the advice map under it), then the input as public stack
    /// values, or as private inputs.
    fn given(&self, input: &[u64]) -> Result<Inputs> {
        let mut given = Inputs::default();
        if let Some(w) = self.weights_commitment()? {
            given.stack.extend(w.commitment);
            if let (false, Some(weights)) = (self.is_card(), &self.compiled.weights) {
                let (key, values) = verity_vm::committed_entry(&w, weights);
                given.advice.map.insert(key, values);
            }
        }
        if self.model.public_input {
            given.stack.extend_from_slice(input);
        } else {
            given.private = input.to_vec();
        }
        Ok(given)
    }

    /// The program and inputs to run or prove for one quantized input, exactly as a network
    /// job with the same input is proven (a private input loader-wrapped, its commitment on
    /// the stack).
    pub fn statement(&self, input: &[u64]) -> Result<(Program, Inputs)> {
        Ok(verity_vm::prepare(
            &self.compiled.source,
            "model.masm",
            &self.given(input)?,
        )?)
    }

    /// The model id: the hash of the program every prediction of this model proves.
    pub fn id(&self) -> Result<Digest> {
        Ok(self.statement(&vec![0; self.model.input.len()])?.0.hash())
    }

    /// Private input words the program is proven with (the commitment covers exactly these).
    pub fn input_words(&self) -> u32 {
        self.model.input.len().div_ceil(4) as u32
    }

    /// How the receipt shows the input: its commitment, or (public) the values; and the
    /// weights' commitment of a committed-weights model.
    pub fn input_line(&self, stack_inputs: &[u64]) -> String {
        let weights = if self.model.private_weights { 4 } else { 0 };
        let input = if self.model.public_input {
            let values: Vec<i64> = stack_inputs
                .iter()
                .skip(weights)
                .map(|v| verity_model::from_felt(*v))
                .collect();
            format!("public input {values:?}")
        } else {
            match verity_vm::commitment_in_stack(stack_inputs) {
                Some(c) => format!("input commitment {}", commitment_hex(&c)),
                None => "no input commitment".into(),
            }
        };
        if self.model.private_weights {
            format!(
                "{input}, weights commitment {}",
                words_hex(&self.receipt_weights(stack_inputs))
            )
        } else {
            input
        }
    }

    /// Where a committed-weights model's receipt carries the weights' commitment: first, or
    /// after a private input's commitment.
    fn receipt_weights(&self, stack_inputs: &[u64]) -> Vec<u64> {
        let at = if self.model.public_input {
            0
        } else {
            verity_vm::PRIVATE_INPUT_SLOTS
        };
        stack_inputs.iter().skip(at).take(4).copied().collect()
    }

    /// One prediction as a job: the model's program and the quantized input (from a card
    /// too: the job is then for a provider that holds the weights).
    pub fn job(&self, x: &[f32]) -> Result<LoadedProgram> {
        let (_, input) = self.quantized_input(x)?;
        let (program, inputs) = self.statement(&input)?;
        Ok(LoadedProgram {
            source: self.compiled.source.clone(),
            program,
            inputs,
            given: self.given(&input)?,
        })
    }

    /// `class C (label L), logits [...]` from a prediction's output stack; fails unless the
    /// class is the logits' argmax.
    pub fn describe(&self, outputs: &[u64]) -> Result<String> {
        let (class, logits) = self.model.decode_outputs(outputs)?;
        if verity_model::argmax(&logits) != class {
            bail!("the class is not the argmax of the logits");
        }
        Ok(format!(
            "class {class} (label {}), logits {logits:?}",
            self.model.label(class)
        ))
    }
}

/// Where models this machine imported or submitted are kept, by model id, so that `job
/// status` can decode their predictions.
fn registry_path(id: &Digest) -> PathBuf {
    crate::net_cmds::verity_home()
        .join("models")
        .join(format!("{id}.vmodel"))
}

/// Keeps a copy of `loaded` under its id (a failure only costs the automatic decoding).
pub fn remember(loaded: &LoadedModel, id: &Digest) {
    let path = registry_path(id);
    // Committed-weights models share their architecture's id, and their weights are secret.
    if path.is_file() || loaded.model.private_weights {
        return;
    }
    let saved = path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .map_err(anyhow::Error::from)
        .and_then(|_| Ok(loaded.model.save(&path)?));
    if let Err(e) = saved {
        eprintln!(
            "note: cannot keep a copy of the model in {}: {e}",
            path.display()
        );
    }
}

/// The model whose id is `id`, if this machine knows it (and it still compiles to that id).
pub fn recall(id: &Digest) -> Option<LoadedModel> {
    let loaded = LoadedModel::load(&registry_path(id)).ok()?;
    (loaded.id().ok()? == *id).then_some(loaded)
}

/// Reads exactly one input sample.
pub fn read_input(path: &Path) -> Result<Vec<f32>> {
    let mut samples =
        verity_model::read_samples(path).with_context(|| format!("in {}", path.display()))?;
    if samples.len() != 1 {
        bail!(
            "{} holds {} inputs; give one",
            path.display(),
            samples.len()
        );
    }
    Ok(samples.remove(0))
}

fn pow2_label(n: u64) -> String {
    format!("2^{}", n.max(1).next_power_of_two().trailing_zeros())
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

pub fn model(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Import(args) => import(args),
        ModelCmd::Inspect { model, masm } => inspect(&model, masm.as_deref()),
    }
}

/// Imports an ONNX model: quantizes it on the calibration samples, compiles it, checks it
/// fits `limit` cycles, and runs the program once against the integer reference (an import
/// never yields a model whose program disagrees with it). Returns the model, its id and one
/// run.
pub fn import_model(
    onnx: &Path,
    calibration: &Path,
    limit: u32,
    public_input: bool,
    private_weights: bool,
) -> Result<(LoadedModel, Digest, verity_vm::Execution)> {
    if limit > verity_vm::MAX_MAX_CYCLES {
        bail!("--max-cycles is at most {}", verity_vm::MAX_MAX_CYCLES);
    }
    let samples = verity_model::read_samples(calibration)
        .with_context(|| format!("in {}", calibration.display()))?;
    let mut model = verity_model::import(onnx, &samples)
        .with_context(|| format!("cannot import {}", onnx.display()))?;
    model.public_input = public_input;
    model.private_weights = private_weights;
    let compiled = verity_model::compile(&model).context("cannot compile the model")?;
    compiled.check_fits(u64::from(limit))?;
    let loaded = LoadedModel { model, compiled };
    let (quantized, input) = loaded.quantized_input(&samples[0])?;
    let (program, inputs) = loaded.statement(&input)?;
    let run =
        verity_vm::execute(&program, &inputs, limit).context("the compiled program failed")?;
    let (class, logits) = loaded.model.decode_outputs(&run.outputs)?;
    let want = loaded.model.infer(&quantized)?;
    if logits != want || class != verity_model::argmax(&want) {
        bail!("internal error: the compiled program disagrees with the quantized reference");
    }
    let id = program.hash();
    Ok((loaded, id, run))
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
                "weights:    {} committed values, commitment {} (with the id, this model's identity)",
                loaded.compiled.weights.as_ref().map_or(0, Vec::len),
                commitment_hex(&w)
            );
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
    let (program, inputs) = loaded.statement(&vec![0; m.input.len()])?;
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
    }
    let visibility = if m.public_input {
        "public, on the stack".to_string()
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

pub fn infer(args: InferArgs) -> Result<()> {
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
        let (receipt, _) = crate::proof_cmds::prove_with_spinner(
            &program,
            &inputs,
            options,
            args.quiet || args.json,
        )?;
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
    Ok(())
}

pub fn commitment_hex(c: &PrivateCommitment) -> String {
    words_hex(&c.commitment)
}

fn words_hex(words: &[u64]) -> String {
    words.iter().map(|v| format!("{v:016x}")).collect()
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
            "the receipt proves program {}, not model {} (id {id})",
            receipt.program_hash,
            loaded.model.name
        );
    }
    let n = loaded.model.input.len();
    // A committed-weights model's receipt carries the weights' commitment: it must be this
    // model's (the program alone is only the architecture).
    let weights = loaded.weights_commitment()?;
    let weight_slots = if weights.is_some() { 4 } else { 0 };
    if let Some(w) = &weights
        && loaded.receipt_weights(&receipt.stack_inputs) != w.commitment
    {
        bail!(
            "the receipt proves the architecture of model {} with other weights (commitment {}, not {})",
            loaded.model.name,
            words_hex(&loaded.receipt_weights(&receipt.stack_inputs)),
            commitment_hex(w)
        );
    }
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
