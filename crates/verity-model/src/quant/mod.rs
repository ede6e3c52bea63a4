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

mod quantize;
mod validate;

pub use quantize::quantize;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::onnx::{Shape, Window};

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
    /// The layer's output for its input `cur` (the integer reference).
    pub fn apply(&self, cur: &[i64]) -> Vec<i64> {
        match self {
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
                            .zip(cur)
                            .map(|(w, v)| w * v)
                            .sum::<i64>();
                    requant[j].apply(acc, *lo, *hi)
                })
                .collect(),
            QLayer::Conv {
                window,
                requant,
                lo,
                hi,
                ..
            } => {
                let per_channel = window.out_h() * window.out_w();
                self.conv_accumulators(cur)
                    .iter()
                    .enumerate()
                    .map(|(i, acc)| requant[i / per_channel].apply(*acc, *lo, *hi))
                    .collect()
            }
            QLayer::MaxPool { window } => {
                window.pool(cur, |vals, _| vals.iter().copied().max().unwrap_or(0))
            }
            QLayer::AvgPool {
                window,
                requant,
                lo,
                hi,
                ..
            } => window.pool(cur, |vals, pos| {
                requant[pos].apply(vals.iter().sum(), *lo, *hi)
            }),
            QLayer::Relu { .. } => cur.iter().map(|v| (*v).max(0)).collect(),
        }
    }

    /// A convolution's accumulators (bias plus products, before requantization), laid out
    /// `[c_out][out_h][out_w]`; empty for any other layer.
    pub fn conv_accumulators(&self, cur: &[i64]) -> Vec<i64> {
        let QLayer::Conv {
            window,
            c_out,
            weights,
            bias,
            ..
        } = self
        else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(c_out * window.out_h() * window.out_w());
        for (co, b) in bias.iter().enumerate().take(*c_out) {
            for oy in 0..window.out_h() {
                for ox in 0..window.out_w() {
                    let taps = window.conv_taps(co, oy, ox);
                    out.push(b + taps.map(|(w, i)| weights[w] * cur[i]).sum::<i64>());
                }
            }
        }
        out
    }

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
    /// The digest ([`crate::Compiled::digest`]) of the program the compiler generated for
    /// this model when the file was written. Never trusted, never part of the model id (which
    /// is always compiled afresh from the layers): only a hint, so that a receipt or card
    /// refused after a compiler change can say why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_with: Option<String>,
}

/// Inputs that fit on the VM's public stack.
pub const MAX_PUBLIC_INPUTS: usize = 16;

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

/// What an architecture's program (committed weights) assumes of any accumulator with `taps`
/// inputs bounded by `in_bound`, since it must not depend on the weights: every committed
/// model holds int8 weights (|w| <= [`ACT_MAX`]) and biases below
/// [`COMMITTED_BIAS_MAX`], which [`QuantModel::validate`] checks.
pub(crate) fn committed_acc_bound(taps: usize, in_bound: i64) -> u128 {
    taps as u128 * ACT_MAX as u128 * in_bound.unsigned_abs() as u128 + COMMITTED_BIAS_MAX
}

/// The largest |bias| a committed model may hold: half a 32-bit lane, so a layer whose
/// weights' share is below the other half packs whatever its committed values.
pub const COMMITTED_BIAS_MAX: u128 = (1 << 30) - 1;

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
        Ok(self.layer_inputs(x)?.pop().unwrap_or_default())
    }

    /// What each layer reads for a quantized input, then the logits: `layers.len() + 1`
    /// vectors, the first the input itself.
    pub fn layer_inputs(&self, x: &[i64]) -> Result<Vec<Vec<i64>>, ModelError> {
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
        let mut all = vec![x.to_vec()];
        for layer in &self.layers {
            let next = layer.apply(all.last().expect("the input is first"));
            all.push(next);
        }
        Ok(all)
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
