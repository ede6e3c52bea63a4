//! Compiling a quantized model to Miden Assembly.
//!
//! The program is straight-line code with the weights as immediates, split into procedures
//! of bounded size (the assembler caps a basic block at 65,535 operations). Values are field
//! elements; a negative integer v is the element p - |v|. Because every accumulator is
//! bounded (see [`crate::quant`]), field arithmetic on them is exact integer arithmetic, and
//! the only steps that leave the field are requantization and comparisons, done on 32-bit
//! halves after adding an offset that makes the value non-negative.
//!
//! Layout: the input is read where Verity's loader puts a job's private inputs
//! (2^28 + i); a public input (on the stack, first value on top) is first stored there. Each
//! layer writes its outputs to its own memory region from address 0.
//! Output stack: `[class, logit_0, ..., logit_{n-1}, ...]`, logits as field elements.
//!
//! Cost: a multiply-accumulate is `mem_load.a mul.w add` (5 cycles; weights 0, 1 and -1 are
//! cheaper). Two outputs that read the same inputs share those 5 cycles when their
//! accumulators provably fit 32-bit lanes of one field element (see [`emit_neurons`]). An
//! output whose inputs are a whole region (a dense layer's) streams them instead, eight per
//! `mem_stream`, scales each where it lies and sums eight at once with `horner_eval_base`
//! at the point 1: about 3 cycles and one immediate per tap instead of 5 and two. With
//! committed weights, a large dense layer's outputs are loops instead (see
//! [`neurons`]): each output's weights are one region of the committed parameters, read a
//! word at a time beside the streamed inputs, so the program's size does not grow with the
//! layer (an MNIST-size architecture fits the ledger's publication limit).
//!
//! A convolution followed by a max pooling is not computed at all where it can be checked
//! instead (see [`hinted`]): its accumulators come after the input in the private data (or,
//! with committed weights, from the prover), and the program holds them to one random linear
//! combination, which costs work in its inputs, outputs and weights rather than one
//! multiply-accumulate per tap.

mod hinted;
mod layers;
mod neurons;

pub use hinted::{COMMITMENT_ADDR, MAX_PRIVATE_ELEMENTS, RHO_ADDR};

use hinted::{MODEL_ADDR, PROVER_HINTS_ADDR};

use std::fmt::Write;

use crate::quant::{ACT_MAX, QLayer, QuantModel};
use layers::LayerWriter;
use neurons::{Consts, Params};

/// Where Verity's loader writes a job's private inputs (must equal
/// `verity_vm::PRIVATE_INPUTS_ADDR`; a test checks it).
pub const INPUT_ADDR: u64 = 1 << 28;
/// Where committed weights are loaded (`--private-weights`), clear of the private inputs.
pub const WEIGHTS_ADDR: u64 = 1 << 29;
/// The field's modulus.
pub const P: u64 = 0xFFFF_FFFF_0000_0001;
/// Offset that makes any activation a valid u32 for comparisons.
const CMP_OFFSET: u64 = 1 << 31;
/// Cycles of `u32min.x` / `u32max.x`, rounded up (a compare and a conditional drop).
const U32_MINMAX_OPS: usize = 12;
/// Cycles of `mem_store.a`, rounded up.
const STORE_OPS: usize = 3;
/// Operations per generated procedure (well under the assembler's 65,535 per block).
const PROC_BUDGET: usize = 20_000;

/// A signed integer as a field element.
pub fn to_felt(v: i64) -> u64 {
    wide_felt(i128::from(v))
}

/// An integer in (-p, p) as a field element (packed values exceed `i64`).
fn wide_felt(v: i128) -> u64 {
    if v >= 0 {
        v as u64
    } else {
        P - v.unsigned_abs() as u64
    }
}

/// A field element as a signed integer (elements above p/2 are negative).
pub fn from_felt(f: u64) -> i64 {
    if f > P / 2 {
        -((P - f) as i64)
    } else {
        f as i64
    }
}

/// The generated program and what it costs.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub source: String,
    /// Multiply-accumulates (non-zero weights and pooling taps).
    pub macs: u64,
    /// VM cycles the program runs, counted as it was generated from what each instruction
    /// expands to, rounded up where an expansion varies: an upper bound (tested), used to
    /// refuse models that cannot fit a proof before running them.
    pub estimated_cycles: u64,
    /// Private input elements the program reads.
    pub inputs: usize,
    /// Outputs computed two to a field element (the rest, whose accumulators could overflow
    /// a 32-bit lane, one at a time).
    pub packed_outputs: usize,
    /// Committed-weights mode: the values the program loads at [`WEIGHTS_ADDR`] (weights,
    /// biases, requantization parameters), whose commitment is its first public input.
    pub weights: Option<Vec<u64>>,
    /// Layers (indices) whose accumulators the prediction supplies after the input, for the
    /// program to check instead of compute (see [`hinted`]): what [`Compiled::private_data`]
    /// appends.
    pub checked_layers: Vec<usize>,
    /// Whether the checked layers' accumulators come from the prover, in the advice map (see
    /// [`Compiled::prover_hints`]), rather than with the input: a committed-weights model,
    /// whose client does not know the weights.
    pub hints_from_prover: bool,
    /// Elements of a prediction's private data (the input and any supplied accumulators).
    pub private_len: usize,
}

impl Compiled {
    /// BLAKE3 of the generated source, in hex: which program this compiler makes of a model
    /// (stamped into a `.vmodel` when it is written; see `QuantModel::written_with`).
    pub fn digest(&self) -> String {
        blake3::hash(self.source.as_bytes()).to_hex().to_string()
    }

    /// A prediction's private data: the quantized input, then, for each checked
    /// convolution, its accumulators plus 2^31, each part from a multiple of 8 (where the
    /// program reads it). For a model without checked layers, the input alone.
    pub fn private_data(
        &self,
        model: &QuantModel,
        input: &[i64],
    ) -> Result<Vec<u64>, crate::ModelError> {
        let mut data: Vec<u64> = input.iter().map(|v| to_felt(*v)).collect();
        if self.checked_layers.is_empty() || self.hints_from_prover {
            return Ok(data);
        }
        let reads = model.layer_inputs(input)?;
        for &k in &self.checked_layers {
            data.resize(data.len().next_multiple_of(8), 0);
            let accs = model.layers[k].conv_accumulators(&reads[k]);
            data.extend(accs.iter().map(|a| to_felt(a + (1 << 31))));
        }
        Ok(data)
    }

    /// What the prover of a committed-weights prediction supplies besides the weights: the
    /// checked layers' accumulators plus 2^31, one layer after another, as the value of the
    /// advice-map entry under `hash(C, M)` (C the private input's commitment, M the model
    /// commitment; see [`hinted`]). None when the program checks no layer from them.
    pub fn prover_hints(
        &self,
        model: &QuantModel,
        input: &[i64],
    ) -> Result<Option<Vec<u64>>, crate::ModelError> {
        if !self.hints_from_prover {
            return Ok(None);
        }
        let reads = model.layer_inputs(input)?;
        let mut data = Vec::new();
        for &k in &self.checked_layers {
            let accs = model.layers[k].conv_accumulators(&reads[k]);
            data.extend(accs.iter().map(|a| to_felt(a + (1 << 31))));
            data.resize(data.len().next_multiple_of(8), 0);
        }
        Ok(Some(data))
    }

    /// Refuses a program that would run longer than `limit` cycles, saying by how much.
    pub fn check_fits(&self, limit: u64) -> Result<(), crate::ModelError> {
        if self.estimated_cycles > limit {
            return Err(crate::ModelError::TooLarge {
                needed: self.estimated_cycles,
                limit,
                factor: self.estimated_cycles as f64 / limit as f64,
            });
        }
        Ok(())
    }
}

/// Straight-line code being split into procedures.
struct Emitter {
    procs: Vec<String>,
    current: String,
    ops_in_current: usize,
    total_ops: u64,
}

impl Emitter {
    fn new() -> Emitter {
        Emitter {
            procs: Vec::new(),
            current: String::new(),
            ops_in_current: 0,
            total_ops: 0,
        }
    }

    /// Appends one unit of work (a neuron, a pooled value): never split across procedures.
    fn unit(&mut self, code: &str, ops: usize) {
        if self.ops_in_current + ops > PROC_BUDGET && self.ops_in_current > 0 {
            self.flush();
        }
        self.current.push_str(code);
        self.ops_in_current += ops;
        self.total_ops += ops as u64;
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.procs.push(std::mem::take(&mut self.current));
            self.ops_in_current = 0;
        }
    }
}

/// `push.a.b.c.d dropw`: the interpretation digest in an immediates program.
const INTERPRETATION_CYCLES: u64 = 8;
/// Where the field element 1 is kept (and 0 after it): `horner_eval_base`'s evaluation point.
pub(crate) const ONE_ADDR: u64 = WEIGHTS_ADDR - 8;
/// `push.1 mem_store.ONE_ADDR`, rounded up.
const ONE_CYCLES: u64 = 4;
/// Checking a committed-weights model's commitment against its two halves, rounded up.
const MODEL_COMMITMENT_CYCLES: u64 = 64;

/// Cycles of Verity's private-input loader for `n` elements, rounded up (it hashes the data
/// two words at a time as it copies it into memory).
fn loader_cycles(n: usize) -> u64 {
    64 + n.div_ceil(8) as u64 * 24
}

/// The count plus a tenth: instruction expansions vary a little between Miden releases, and
/// the estimate must stay an upper bound (tests compare it with executions).
fn upper_bound(counted: u64) -> u64 {
    counted + counted / 10
}

/// Compiles a model (validated first).
pub fn compile(model: &QuantModel) -> Result<Compiled, crate::ModelError> {
    model.validate()?;
    let mut e = Emitter::new();
    let n_in = model.input.len();
    let mut params = model.private_weights.then(Params::default);
    emit_input(&mut e, model);
    let mut w = LayerWriter {
        e: &mut e,
        consts: match params.as_mut() {
            Some(p) => Consts::Committed(p),
            None => Consts::Immediate,
        },
        in_base: INPUT_ADDR,
        in_bound: ACT_MAX,
        out_base: 0,
        packed: 0,
        hints: (!model.public_input && !model.private_weights)
            .then_some(INPUT_ADDR + n_in.next_multiple_of(8) as u64),
        checked: false,
        prover_hints: (model.private_weights && !model.public_input).then_some(PROVER_HINTS_ADDR),
    };
    let mut checked_layers = Vec::new();
    // The layer after a convolution, when the two were emitted as one.
    let mut fused_next = false;
    for (k, layer) in model.layers.iter().enumerate() {
        if std::mem::take(&mut fused_next) {
            continue;
        }
        let out_len = match layer {
            QLayer::Dense { .. } => w.dense(layer),
            QLayer::Conv { .. } => match w.conv(layer, model.layers.get(k + 1)) {
                Some(pooled_len) => {
                    fused_next = true;
                    if std::mem::take(&mut w.checked) {
                        checked_layers.push(k);
                    }
                    pooled_len
                }
                None => layer.output_len(),
            },
            QLayer::MaxPool { window } | QLayer::AvgPool { window, .. } => w.pool(layer, window),
            QLayer::Relu { n } => w.relu(*n),
        };
        w.in_base = w.out_base;
        // Regions start at multiples of 8 and nothing writes between them, so a dot product
        // may stream a layer's inputs eight at a time: past its end it reads zeros.
        w.out_base = (w.out_base + out_len as u64).next_multiple_of(8);
    }
    let (logits, class_addr, packed) = (w.in_base, w.out_base, w.packed);
    // The private data the loader hashes into memory: the input, then any accumulators (each
    // checked layer's are a whole number of eights, so nothing pads the end).
    let private_len = match w.hints {
        Some(end) if !checked_layers.is_empty() => (end - INPUT_ADDR) as usize,
        _ => n_in,
    };
    e.flush();
    emit_outputs(&mut e, model.classes() as u64, logits, class_addr);
    e.flush();
    let hints_from_prover = model.private_weights && !checked_layers.is_empty();
    let (source, loading) = program_source(model, &e, params.as_ref(), hints_from_prover);
    // With committed weights every tap is computed or checked, zero or not.
    let macs = match &params {
        Some(p) => {
            p.macs
                + checked_layers
                    .iter()
                    .map(|k| all_taps(&model.layers[*k]))
                    .sum::<u64>()
                + model
                    .layers
                    .iter()
                    .filter(|l| matches!(l, QLayer::AvgPool { .. } | QLayer::MaxPool { .. }))
                    .map(QLayer::macs)
                    .sum::<u64>()
        }
        None => model.macs(),
    };
    Ok(Compiled {
        source,
        macs,
        estimated_cycles: upper_bound(
            e.total_ops + e.procs.len() as u64 * 8 + loader_cycles(private_len) + loading,
        ),
        inputs: n_in,
        packed_outputs: packed,
        weights: params.map(|p| p.values),
        checked_layers,
        hints_from_prover,
        private_len,
    })
}

/// A convolution's taps, zero weights included (what an architecture's program counts).
fn all_taps(layer: &QLayer) -> u64 {
    let QLayer::Conv { window, c_out, .. } = layer else {
        return 0;
    };
    let mut taps = 0;
    for co in 0..*c_out {
        for oy in 0..window.out_h() {
            for ox in 0..window.out_w() {
                taps += window.conv_taps(co, oy, ox).count() as u64;
            }
        }
    }
    taps
}

/// Stores a public input where a private one would be, and range-checks the input: every
/// element must be a quantized value.
fn emit_input(e: &mut Emitter, model: &QuantModel) {
    let n_in = model.input.len();
    if model.public_input {
        for i in 0..n_in {
            e.unit(
                &format!("    mem_store.{}\n", INPUT_ADDR + i as u64),
                STORE_OPS,
            );
        }
    }
    for i in 0..n_in {
        e.unit(
            &format!(
                "    mem_load.{} add.{ACT_MAX} u32lt.{} assert\n",
                INPUT_ADDR + i as u64,
                2 * ACT_MAX + 1
            ),
            12,
        );
    }
    // A streamed first layer reads the input region up to a multiple of 8, and a private
    // input's commitment covers whatever its client padded it with (or a longer input):
    // those elements must be the zeros they are taken for.
    for i in n_in..n_in.next_multiple_of(8) {
        e.unit(
            &format!("    mem_load.{} assertz\n", INPUT_ADDR + i as u64),
            4,
        );
    }
}

/// The argmax (first maximum) of the logits at `logits`, stored at `class_addr`, then the
/// outputs onto the stack: `[class, logit_0, ..]`.
fn emit_outputs(e: &mut Emitter, classes: u64, logits: u64, class_addr: u64) {
    let mut out = String::new();
    let _ = writeln!(out, "    mem_load.{logits} add.{CMP_OFFSET} push.0");
    for j in 1..classes {
        // [best_index, best_value] -> compare the next logit, keep the first maximum.
        let _ = writeln!(
            out,
            "    mem_load.{} add.{CMP_OFFSET} dup dup.3 u32gt if.true movdn.2 drop drop push.{j} else drop end",
            logits + j
        );
    }
    let _ = writeln!(out, "    mem_store.{class_addr} drop");
    // The stack is 16 elements deep; each output pushed replaces one of the bottom ones.
    for j in (0..classes).rev() {
        let _ = writeln!(out, "    mem_load.{} movup.15 drop", logits + j);
    }
    let _ = writeln!(out, "    mem_load.{class_addr} movup.15 drop");
    let output_ops = 8 + (classes as usize) * 24 + (classes as usize + 1) * 6;
    e.unit(&out, output_ops);
}

/// The program's text: a header saying what it is, the procedures, and the entry block that
/// loads what must be loaded and calls them in order. Also the cycles of that loading.
fn program_source(
    model: &QuantModel,
    e: &Emitter,
    params: Option<&Params>,
    keep_model: bool,
) -> (String, u64) {
    let n_in = model.input.len();
    let classes = model.classes() as u64;
    let mut source = String::new();
    let input_kind = if model.public_input {
        "public elements on the stack"
    } else {
        "private elements at 2^28"
    };
    match params {
        // An architecture's program: nothing in it may depend on the weights or the scales.
        Some(p) => {
            let _ = writeln!(
                source,
                "# Generated by Verity: do not edit. An architecture program: weights, biases and\n\
                 # requantization ({} elements) come from the advice map into memory at 2^29,\n\
                 # checked against the model commitment that is the first public input:\n\
                 # hash(weights commitment, interpretation digest).\n\
                 # Inputs: {n_in} {input_kind} (quantized).\n\
                 # Outputs: [class, logit_0 .. logit_{}] (field elements; negative as p - |v|).\n\
                 use miden::core::mem",
                p.values.len(),
                classes.saturating_sub(1),
            );
        }
        None => {
            let _ = writeln!(
                source,
                "# Generated by Verity from model '{}' (ONNX blake3 {}): do not edit.\n\
                 # Inputs: {} {input_kind} (quantized, scale {:e}).\n\
                 # Outputs: [class, logit_0 .. logit_{}] (field elements; negative as p - |v|; scale {:e}).",
                model.name.replace(['\n', '\r'], " "),
                model.source_hash,
                n_in,
                model.input_scale,
                classes.saturating_sub(1),
                model.logit_scale
            );
        }
    }
    for (k, body) in e.procs.iter().enumerate() {
        let _ = write!(source, "\nproc part_{k}\n{body}end\n");
    }
    source.push_str("\nbegin\n");
    // The evaluation point (1, 0) of `horner_eval_base`, which streamed dot products sum with.
    let _ = writeln!(source, "    push.1 mem_store.{ONE_ADDR}");
    let mut loading = ONE_CYCLES;
    match params {
        None => {
            // The model's interpretation (labels, scales), bound into the program and so
            // into the model id; pushed and dropped, it costs 8 cycles.
            let [a, b, c, d] = model.interpretation_digest();
            let _ = writeln!(source, "    push.{a}.{b}.{c}.{d} dropw");
            loading += INTERPRETATION_CYCLES;
        }
        Some(p) => {
            // [M, ...], M = hash(W, D): the advice map holds [W, D] under M, and the
            // parameters under W. Checking M binds the weights (W) and the interpretation
            // (D: labels, scales, dimensions, which the program never computes with) into
            // the one commitment a receipt names; a card has both halves, so a verifier
            // recomputes M without the weights.
            if keep_model {
                // A check's challenge binds M (see `hinted`).
                let _ = writeln!(source, "    mem_storew_le.{MODEL_ADDR}");
                loading += 2;
            }
            let _ = writeln!(
                source,
                "    adv.push_mapval padw adv_loadw dupw padw adv_loadw swapw hmerge movupw.2 assert_eqw"
            );
            // [W, ...] -> the committed parameters in memory, or a failed assertion.
            let words = p.values.len().div_ceil(4);
            let _ = writeln!(
                source,
                "    adv.push_mapval push.{WEIGHTS_ADDR} push.{words} exec.mem::pipe_preimage_to_memory drop"
            );
            loading += MODEL_COMMITMENT_CYCLES + loader_cycles(p.values.len());
        }
    }
    for k in 0..e.procs.len() {
        let _ = writeln!(source, "    exec.part_{k}");
    }
    source.push_str("end\n");
    (source, loading)
}
