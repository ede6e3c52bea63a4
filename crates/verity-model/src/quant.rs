//! Integer-only quantization and the quantized model's reference implementation.
//!
//! Scheme (symmetric, deterministic, the TFLite shape with power-of-two requantization):
//! - activations are int8 in [-127, 127] with one float scale per layer output, chosen from
//!   the calibration set (largest magnitude seen maps to 127); the logits are int16-range
//!   (32767) so their argmax loses little;
//! - weights are int8 with one scale per output channel; biases are integers at the
//!   accumulator's scale;
//! - accumulators are exact integers; each output is requantized as
//!   `clamp(floor((acc * m + 2^(shift-1)) / 2^shift), lo, hi)`, a multiply and a shift with
//!   round-half-up, where `lo = 0` fuses a following Relu.
//!
//! Every bound the Miden program relies on (accumulators fit the requantization window,
//! values fit u32 offsets) is re-derived by [`QuantModel::validate`] whenever a model is
//! loaded or compiled, so a hand-edited `.vmodel` file cannot make the program unsound.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::onnx::{FloatLayer, FloatModel, MAX_LAYERS, MAX_TENSOR_ELEMENTS, Shape, Window};

/// The `.vmodel` format tag.
pub const FORMAT: &str = "verity-model/1";
/// Quantized activations lie in [-ACT_MAX, ACT_MAX].
pub const ACT_MAX: i64 = 127;
/// Quantized logits lie in [-LOGIT_MAX, LOGIT_MAX].
pub const LOGIT_MAX: i64 = 32767;
/// Largest weight magnitude a `.vmodel` may hold (int16).
pub const WEIGHT_MAX: i64 = 32767;
/// Requantization adds this offset so the value is a non-negative 63-bit integer that the
/// program can split into 32-bit halves; `|acc * m| + 2^(shift-1)` must stay below it.
pub const REQUANT_OFFSET: u128 = 1 << 62;
/// Shifts lie in [32, 62]: the program takes the high 32-bit half, then shifts it.
pub const MIN_SHIFT: u32 = 32;
pub const MAX_SHIFT: u32 = 62;
/// Largest number of classes: the argmax and the logits must fit the 16-element output.
pub const MAX_CLASSES: usize = 14;

/// One requantization: `floor((acc * m + 2^(shift-1)) / 2^shift)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant {
    pub m: u64,
    pub shift: u32,
}

impl Requant {
    /// The multiplier and shift closest to `ratio` whose products stay in the window for
    /// accumulators up to `acc_bound`.
    fn for_ratio(ratio: f64, acc_bound: u128, what: &str) -> Result<Requant, ModelError> {
        if !ratio.is_finite() || ratio <= 0.0 {
            return Err(ModelError::Calibration(format!(
                "{what}: scale ratio {ratio} is not positive"
            )));
        }
        // Aim for a 24-bit multiplier, then give up precision until the products fit.
        let mut shift = ((f64::from(1u32 << 24) / ratio).log2().floor() as i64)
            .clamp(MIN_SHIFT as i64, MAX_SHIFT as i64) as u32;
        loop {
            let m = (ratio * 2f64.powi(shift as i32)).round();
            if m < 2f64.powi(40) {
                let r = Requant { m: m as u64, shift };
                if r.fits(acc_bound) {
                    return Ok(r);
                }
            }
            if shift == MIN_SHIFT {
                return Err(ModelError::Calibration(format!(
                    "{what}: accumulators up to {acc_bound} cannot be requantized (scale ratio {ratio:e})"
                )));
            }
            shift -= 1;
        }
    }

    fn fits(&self, acc_bound: u128) -> bool {
        (MIN_SHIFT..=MAX_SHIFT).contains(&self.shift)
            && acc_bound
                .checked_mul(u128::from(self.m))
                .and_then(|p| p.checked_add(1u128 << (self.shift - 1)))
                .is_some_and(|v| v < REQUANT_OFFSET)
    }

    /// Applies it (the reference the program must match).
    pub fn apply(&self, acc: i64, lo: i64, hi: i64) -> i64 {
        let v = i128::from(acc) * i128::from(self.m) + (1i128 << (self.shift - 1));
        ((v >> self.shift) as i64).clamp(lo, hi)
    }
}

/// A layer of the quantized model. Shapes are explicit so a model file is checkable alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QLayer {
    Dense {
        n_in: usize,
        n_out: usize,
        /// `weights[j * n_in + i]`.
        weights: Vec<i64>,
        bias: Vec<i64>,
        requant: Vec<Requant>,
        lo: i64,
        hi: i64,
    },
    Conv {
        window: Window,
        c_out: usize,
        weights: Vec<i64>,
        bias: Vec<i64>,
        /// One per output channel.
        requant: Vec<Requant>,
        lo: i64,
        hi: i64,
    },
    MaxPool {
        window: Window,
    },
    AvgPool {
        window: Window,
        count_include_pad: bool,
        /// One per output position of a channel (windows at the border may hold fewer taps).
        requant: Vec<Requant>,
        /// The input's range, kept by the average.
        lo: i64,
        hi: i64,
    },
    Relu {
        n: usize,
    },
}

impl QLayer {
    pub fn name(&self) -> &'static str {
        match self {
            QLayer::Dense { .. } => "dense",
            QLayer::Conv { .. } => "conv",
            QLayer::MaxPool { .. } => "maxpool",
            QLayer::AvgPool { .. } => "avgpool",
            QLayer::Relu { .. } => "relu",
        }
    }

    pub fn output_len(&self) -> usize {
        match self {
            QLayer::Dense { n_out, .. } => *n_out,
            QLayer::Conv { window, c_out, .. } => c_out * window.out_h() * window.out_w(),
            QLayer::MaxPool { window } | QLayer::AvgPool { window, .. } => {
                window.input.c * window.out_h() * window.out_w()
            }
            QLayer::Relu { n } => *n,
        }
    }

    pub fn input_len(&self) -> usize {
        match self {
            QLayer::Dense { n_in, .. } => *n_in,
            QLayer::Conv { window, .. }
            | QLayer::MaxPool { window }
            | QLayer::AvgPool { window, .. } => window.input.len(),
            QLayer::Relu { n } => *n,
        }
    }

    /// Multiply-accumulates with a non-zero weight (what the program spends its cycles on).
    pub fn macs(&self) -> u64 {
        match self {
            QLayer::Dense { weights, .. } => weights.iter().filter(|w| **w != 0).count() as u64,
            QLayer::Conv {
                window,
                c_out,
                weights,
                ..
            } => {
                let mut total = 0;
                for co in 0..*c_out {
                    for oy in 0..window.out_h() {
                        for ox in 0..window.out_w() {
                            let taps = window.conv_taps(co, oy, ox);
                            total += taps.filter(|(w, _)| weights[*w] != 0).count() as u64;
                        }
                    }
                }
                total
            }
            QLayer::AvgPool { window, .. } | QLayer::MaxPool { window } => {
                let mut taps = 0u64;
                for oy in 0..window.out_h() {
                    for ox in 0..window.out_w() {
                        taps += window.taps(oy, ox).count() as u64;
                    }
                }
                taps * window.input.c as u64
            }
            QLayer::Relu { .. } => 0,
        }
    }
}

/// Agreement of the quantized model with the float model (run by tract) on a sample set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub samples: usize,
    /// Samples whose quantized argmax equals the float argmax.
    pub top1_agreements: usize,
    /// Largest difference between a dequantized and a float logit.
    pub max_logit_error: f64,
    /// Largest float logit magnitude, for scale.
    pub max_logit: f64,
}

impl Agreement {
    pub fn top1(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.top1_agreements as f64 / self.samples as f64
        }
    }
}

/// A quantized model: what a `.vmodel` file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantModel {
    pub format: String,
    pub name: String,
    /// BLAKE3 of the ONNX file it was imported from.
    pub source_hash: String,
    /// The input's shape (without batch) and ONNX dimensions (batch 1).
    pub input: Shape,
    pub input_dims: Vec<usize>,
    /// Float input value = quantized value x `input_scale`.
    pub input_scale: f64,
    pub layers: Vec<QLayer>,
    /// Float logit = quantized logit x `logit_scale`.
    pub logit_scale: f64,
    pub labels: Option<Vec<String>>,
    /// Measured at import on the calibration set.
    pub calibration: Option<Agreement>,
    /// The input is public, on the stack (at most [`MAX_PUBLIC_INPUTS`] values), instead of
    /// a committed private input. Part of the program, so of the model id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public_input: bool,
    /// Committed-weights mode: the program reads weights, biases and requantization
    /// parameters from memory, loaded from the advice provider and checked against a
    /// commitment on the public stack. The program then depends only on the architecture.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private_weights: bool,
    /// The commitment to the weights, for a model card whose weights were removed
    /// ([`QuantModel::card`]): verifiers check receipts against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_commitment: Option<[u64; 4]>,
}

/// Inputs that fit on the VM's public stack.
pub const MAX_PUBLIC_INPUTS: usize = 16;

fn max_abs(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |m, v| m.max(v.abs()))
}

fn scale_for(max: f64, levels: i64) -> f64 {
    if max > 0.0 { max / levels as f64 } else { 1.0 }
}

fn quantize_weights(w: &[f32], scale: f64) -> Vec<i64> {
    w.iter()
        .map(|v| ((f64::from(*v) / scale).round() as i64).clamp(-ACT_MAX, ACT_MAX))
        .collect()
}

/// Quantizes a float model with scales chosen on `calibration` (inputs, already checked to
/// have the model's input size).
pub fn quantize(model: &FloatModel, calibration: &[Vec<f32>]) -> Result<QuantModel, ModelError> {
    if calibration.is_empty() {
        return Err(ModelError::Calibration("no samples".into()));
    }
    for (i, x) in calibration.iter().enumerate() {
        if x.len() != model.input.len() {
            return Err(ModelError::Calibration(format!(
                "sample {i} has {} values; the model takes {}",
                x.len(),
                model.input.len()
            )));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Calibration(format!(
                "sample {i} holds NaN or infinite values"
            )));
        }
    }
    let runs: Vec<Vec<Vec<f64>>> = calibration.iter().map(|x| model.forward(x)).collect();
    let input_scale = scale_for(
        max_abs(calibration.iter().flatten().map(|v| f64::from(*v))),
        ACT_MAX,
    );

    // Which layers' outputs are the logits, and which linear layers absorb a following Relu.
    let n = model.layers.len();
    let mut layers = Vec::new();
    let mut in_scale = input_scale;
    let mut in_bound = ACT_MAX;
    let mut shape = model.input;
    let mut i = 0;
    while i < n {
        let (name, layer) = &model.layers[i];
        let fuse_relu = matches!(model.layers.get(i + 1), Some((_, FloatLayer::Relu)));
        let out_idx = if fuse_relu { i + 1 } else { i };
        let is_last = model.layers[out_idx + 1..]
            .iter()
            .all(|(_, l)| matches!(l, FloatLayer::Reshape { .. }));
        let levels = if is_last { LOGIT_MAX } else { ACT_MAX };
        let out_max = max_abs(runs.iter().flat_map(|r| r[out_idx].iter().copied()));
        match layer {
            FloatLayer::Dense { .. } | FloatLayer::Conv { .. } => {
                let out_scale = scale_for(out_max, levels);
                let (lo, hi) = (if fuse_relu { 0 } else { -levels }, levels);
                let (c_out, per_channel, fw, fb) = layer.linear().expect("a linear layer");
                let mut weights = Vec::with_capacity(fw.len());
                let mut bias = Vec::with_capacity(c_out);
                let mut requant = Vec::with_capacity(c_out);
                for j in 0..c_out {
                    let row = &fw[j * per_channel..(j + 1) * per_channel];
                    let w_scale = scale_for(max_abs(row.iter().map(|v| f64::from(*v))), ACT_MAX);
                    let q = quantize_weights(row, w_scale);
                    let acc_scale = in_scale * w_scale;
                    let b = (f64::from(fb[j]) / acc_scale).round();
                    if !b.is_finite() || b.abs() > 2f64.powi(40) {
                        return Err(ModelError::Calibration(format!(
                            "node '{name}': bias {j} does not fit an integer accumulator"
                        )));
                    }
                    let b = b as i64;
                    // Border outputs of a convolution have fewer taps; the bound over all holds.
                    let bound = acc_bound(b, &q, in_bound);
                    requant.push(Requant::for_ratio(
                        acc_scale / out_scale,
                        bound,
                        &format!("node '{name}' output {j}"),
                    )?);
                    weights.extend(q);
                    bias.push(b);
                }
                let q = match layer {
                    FloatLayer::Dense { n_in, n_out, .. } => QLayer::Dense {
                        n_in: *n_in,
                        n_out: *n_out,
                        weights,
                        bias,
                        requant,
                        lo,
                        hi,
                    },
                    FloatLayer::Conv { window, c_out, .. } => QLayer::Conv {
                        window: *window,
                        c_out: *c_out,
                        weights,
                        bias,
                        requant,
                        lo,
                        hi,
                    },
                    _ => unreachable!(),
                };
                shape = layer.output_shape(shape);
                layers.push(q);
                in_scale = out_scale;
                in_bound = hi.max(-lo);
                i = out_idx + 1;
            }
            FloatLayer::MaxPool { window } => {
                layers.push(QLayer::MaxPool { window: *window });
                shape = layer.output_shape(shape);
                i += 1;
            }
            FloatLayer::AvgPool {
                window,
                count_include_pad,
            } => {
                let mut requant = Vec::new();
                for oy in 0..window.out_h() {
                    for ox in 0..window.out_w() {
                        let taps = window.taps(oy, ox).count();
                        let divisor = if *count_include_pad {
                            window.kh * window.kw
                        } else {
                            taps
                        };
                        let bound = in_bound as u128 * taps as u128;
                        requant.push(Requant::for_ratio(
                            1.0 / divisor as f64,
                            bound,
                            &format!("node '{name}'"),
                        )?);
                    }
                }
                layers.push(QLayer::AvgPool {
                    window: *window,
                    count_include_pad: *count_include_pad,
                    requant,
                    lo: -in_bound,
                    hi: in_bound,
                });
                shape = layer.output_shape(shape);
                i += 1;
            }
            FloatLayer::Relu => {
                layers.push(QLayer::Relu { n: shape.len() });
                i += 1;
            }
            FloatLayer::Reshape { to } => {
                shape = *to;
                i += 1;
            }
        }
    }
    let model = QuantModel {
        format: FORMAT.into(),
        name: model.name.clone(),
        source_hash: model.source_hash.clone(),
        input: model.input,
        input_dims: model.input_dims.clone(),
        input_scale,
        layers,
        logit_scale: in_scale,
        labels: model.labels.clone(),
        calibration: None,
        public_input: false,
        private_weights: false,
        weights_commitment: None,
    };
    model.validate()?;
    Ok(model)
}

/// The largest |accumulator| of one output: |bias| + sum |w| x (input bound).
pub(crate) fn acc_bound<'a>(
    bias: i64,
    weights: impl IntoIterator<Item = &'a i64>,
    in_bound: i64,
) -> u128 {
    u128::from(bias.unsigned_abs())
        + weights
            .into_iter()
            .map(|w| u128::from(w.unsigned_abs()))
            .sum::<u128>()
            * in_bound as u128
}

impl QuantModel {
    /// The model card of a committed-weights model: everything a verifier needs (the
    /// architecture, hence the program; input scale; labels; the weights' commitment) and
    /// nothing of the weights, biases or requantization multipliers, which are zeroed.
    pub fn card(&self, weights_commitment: [u64; 4]) -> QuantModel {
        let neutral = Requant {
            m: 1,
            shift: MIN_SHIFT,
        };
        let mut card = self.clone();
        for layer in &mut card.layers {
            match layer {
                QLayer::Dense {
                    weights,
                    bias,
                    requant,
                    ..
                }
                | QLayer::Conv {
                    weights,
                    bias,
                    requant,
                    ..
                } => {
                    weights.iter_mut().for_each(|w| *w = 0);
                    bias.iter_mut().for_each(|b| *b = 0);
                    requant.iter_mut().for_each(|r| *r = neutral);
                }
                QLayer::AvgPool { requant, .. } => requant.iter_mut().for_each(|r| *r = neutral),
                QLayer::MaxPool { .. } | QLayer::Relu { .. } => {}
            }
        }
        card.private_weights = true;
        card.weights_commitment = Some(weights_commitment);
        // The source file's hash would let anyone confirm a guess of the weights (a public
        // checkpoint, say) without the commitment's help.
        card.source_hash = "withheld".into();
        card
    }

    /// Number of classes (logits).
    pub fn classes(&self) -> usize {
        self.layers.last().map(QLayer::output_len).unwrap_or(0)
    }

    pub fn macs(&self) -> u64 {
        self.layers.iter().map(QLayer::macs).sum()
    }

    /// Checks everything the compiled program relies on. Called on every load, so a model
    /// file from anywhere either passes or is refused with the reason.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |s: String| Err(ModelError::Invalid(s));
        if self.format != FORMAT {
            return bad(format!("format '{}', expected '{FORMAT}'", self.format));
        }
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return bad(format!("{} layers", self.layers.len()));
        }
        if self.input.is_empty()
            || self.input.len() > MAX_TENSOR_ELEMENTS
            || self.input_dims.iter().product::<usize>() != self.input.len()
        {
            return bad("input shape".into());
        }
        if !(self.input_scale.is_finite()
            && self.input_scale > 0.0
            && self.logit_scale.is_finite()
            && self.logit_scale > 0.0)
        {
            return bad("scales must be positive".into());
        }
        // The weights' commitment takes four of the public stack's slots.
        let stack_room = MAX_PUBLIC_INPUTS - if self.private_weights { 4 } else { 0 };
        if self.public_input && self.input.len() > stack_room {
            return Err(ModelError::Input(format!(
                "a public input has at most {stack_room} values (the VM's public stack{}); \
                 this model takes {}: keep its input private",
                if self.private_weights {
                    ", after the weights' commitment"
                } else {
                    ""
                },
                self.input.len()
            )));
        }
        if self.weights_commitment.is_some() && !self.private_weights {
            return bad("a weights commitment without committed weights".into());
        }
        let mut len = self.input.len();
        let mut bound = ACT_MAX;
        let mut weights_total = 0usize;
        for (k, layer) in self.layers.iter().enumerate() {
            let here = |s: &str| ModelError::Invalid(format!("layer {k} ({}): {s}", layer.name()));
            if layer.input_len() != len {
                return Err(here(&format!(
                    "takes {} values; the previous layer gives {len}",
                    layer.input_len()
                )));
            }
            if let QLayer::Conv { window, .. }
            | QLayer::MaxPool { window }
            | QLayer::AvgPool { window, .. } = layer
            {
                window.validate().map_err(|e| here(&e))?;
            }
            let out = layer.output_len();
            if out == 0 || out > MAX_TENSOR_ELEMENTS {
                return Err(here("output size out of range"));
            }
            match layer {
                QLayer::Dense {
                    n_in,
                    n_out,
                    weights,
                    bias,
                    requant,
                    lo,
                    hi,
                } => {
                    check_linear(*n_out, *n_in, weights, bias, requant, *lo, *hi, bound)
                        .map_err(|e| here(&e))?;
                    weights_total += weights.len();
                    bound = (*hi).max(-*lo);
                }
                QLayer::Conv {
                    window,
                    c_out,
                    weights,
                    bias,
                    requant,
                    lo,
                    hi,
                } => {
                    let per = window.input.c * window.kh * window.kw;
                    check_linear(*c_out, per, weights, bias, requant, *lo, *hi, bound)
                        .map_err(|e| here(&e))?;
                    weights_total += weights.len();
                    bound = (*hi).max(-*lo);
                }
                QLayer::MaxPool { .. } | QLayer::Relu { .. } => {}
                QLayer::AvgPool {
                    window,
                    requant,
                    lo,
                    hi,
                    ..
                } => {
                    if !(*lo <= 0 && *hi >= 0 && *lo >= -LOGIT_MAX && *hi <= LOGIT_MAX) {
                        return Err(here("clamp range out of bounds"));
                    }
                    if requant.len() != window.out_h() * window.out_w() {
                        return Err(here("one requantization per output position"));
                    }
                    for (p, r) in requant.iter().enumerate() {
                        let taps = window.taps(p / window.out_w(), p % window.out_w()).count();
                        if !r.fits(bound as u128 * taps as u128) {
                            return Err(here("requantization out of range"));
                        }
                    }
                    bound = (*hi).max(-*lo);
                }
            }
            if weights_total > MAX_TENSOR_ELEMENTS {
                return Err(here("too many weights"));
            }
            len = out;
        }
        if len > MAX_CLASSES {
            return bad(format!(
                "{len} outputs; at most {MAX_CLASSES} classes fit a proof's outputs"
            ));
        }
        if let Some(labels) = &self.labels
            && labels.len() != len
        {
            return bad(format!("{} labels for {len} classes", labels.len()));
        }
        Ok(())
    }

    /// Quantizes one float input (client side).
    pub fn quantize_input(&self, x: &[f32]) -> Result<Vec<i64>, ModelError> {
        if x.len() != self.input.len() {
            return Err(ModelError::Input(format!(
                "{} values; the model takes {}",
                x.len(),
                self.input.len()
            )));
        }
        x.iter()
            .map(|v| {
                if !v.is_finite() {
                    return Err(ModelError::Input("NaN or infinite value".into()));
                }
                Ok(((f64::from(*v) / self.input_scale).round() as i64).clamp(-ACT_MAX, ACT_MAX))
            })
            .collect()
    }

    /// The quantized model's logits for a quantized input: the integer reference the Miden
    /// program must match bit for bit.
    pub fn infer(&self, x: &[i64]) -> Result<Vec<i64>, ModelError> {
        if x.len() != self.input.len() {
            return Err(ModelError::Input(format!(
                "{} values; the model takes {}",
                x.len(),
                self.input.len()
            )));
        }
        if x.iter().any(|v| v.abs() > ACT_MAX) {
            return Err(ModelError::Input(format!(
                "quantized inputs must lie in [-{ACT_MAX}, {ACT_MAX}]"
            )));
        }
        let mut cur = x.to_vec();
        for layer in &self.layers {
            cur = match layer {
                QLayer::Dense {
                    n_in,
                    n_out,
                    weights,
                    bias,
                    requant,
                    lo,
                    hi,
                } => (0..*n_out)
                    .map(|j| {
                        let acc = bias[j]
                            + weights[j * n_in..(j + 1) * n_in]
                                .iter()
                                .zip(&cur)
                                .map(|(w, v)| w * v)
                                .sum::<i64>();
                        requant[j].apply(acc, *lo, *hi)
                    })
                    .collect(),
                QLayer::Conv {
                    window,
                    c_out,
                    weights,
                    bias,
                    requant,
                    lo,
                    hi,
                } => {
                    let mut out = Vec::with_capacity(layer.output_len());
                    for co in 0..*c_out {
                        for oy in 0..window.out_h() {
                            for ox in 0..window.out_w() {
                                let taps = window.conv_taps(co, oy, ox);
                                let acc =
                                    bias[co] + taps.map(|(w, i)| weights[w] * cur[i]).sum::<i64>();
                                out.push(requant[co].apply(acc, *lo, *hi));
                            }
                        }
                    }
                    out
                }
                QLayer::MaxPool { window } => {
                    window.pool(&cur, |vals, _| vals.iter().copied().max().unwrap_or(0))
                }
                QLayer::AvgPool {
                    window,
                    requant,
                    lo,
                    hi,
                    ..
                } => window.pool(&cur, |vals, pos| {
                    requant[pos].apply(vals.iter().sum(), *lo, *hi)
                }),
                QLayer::Relu { .. } => cur.iter().map(|v| (*v).max(0)).collect(),
            };
        }
        Ok(cur)
    }

    /// The dequantized logits.
    pub fn dequantize(&self, logits: &[i64]) -> Vec<f64> {
        logits
            .iter()
            .map(|v| *v as f64 * self.logit_scale)
            .collect()
    }
}

/// First index of the largest value (ties go to the lowest index, as in the program).
pub fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[allow(clippy::too_many_arguments)]
fn check_linear(
    n_out: usize,
    per: usize,
    weights: &[i64],
    bias: &[i64],
    requant: &[Requant],
    lo: i64,
    hi: i64,
    in_bound: i64,
) -> Result<(), String> {
    if per == 0
        || weights.len() != n_out.checked_mul(per).ok_or("size overflow")?
        || bias.len() != n_out
        || requant.len() != n_out
    {
        return Err("weights, bias and requantization do not match the layer's shape".into());
    }
    if weights.iter().any(|w| w.abs() > WEIGHT_MAX) {
        return Err(format!("weights must lie in [-{WEIGHT_MAX}, {WEIGHT_MAX}]"));
    }
    if !(lo <= hi && lo >= -LOGIT_MAX && (0..=LOGIT_MAX).contains(&hi)) {
        return Err("clamp range out of bounds".into());
    }
    for j in 0..n_out {
        if bias[j].unsigned_abs() > 1 << 40 {
            return Err(format!("bias {j} out of range"));
        }
        if !requant[j].fits(acc_bound(
            bias[j],
            &weights[j * per..(j + 1) * per],
            in_bound,
        )) {
            return Err(format!(
                "output {j}: accumulators may leave the requantization window"
            ));
        }
    }
    Ok(())
}
