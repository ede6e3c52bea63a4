//! Re-deriving every bound the compiled program relies on from the model file itself, so a
//! hand-edited `.vmodel` is refused rather than compiled into an unsound program.

use super::{
    ACT_MAX, COMMITTED_BIAS_MAX, FORMAT, LOGIT_MAX, MAX_CLASSES, MAX_PUBLIC_INPUTS, QLayer,
    QuantModel, Requant, WEIGHT_MAX, acc_bound,
};
use crate::error::ModelError;
use crate::onnx::{MAX_LAYERS, MAX_TENSOR_ELEMENTS};

impl QuantModel {
    /// Checks everything the compiled program relies on. Called on every load, so a model
    /// file from anywhere either passes or is refused with the reason.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.validate_header()?;
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
            if self.private_weights {
                check_committable(layer).map_err(|e| here(&e))?;
            }
            let (next_bound, weights) = validate_layer(layer, bound).map_err(|e| here(&e))?;
            bound = next_bound;
            weights_total += weights;
            if weights_total > MAX_TENSOR_ELEMENTS {
                return Err(here("too many weights"));
            }
            len = layer.output_len();
        }
        if len > MAX_CLASSES {
            return Err(ModelError::Invalid(format!(
                "{len} outputs; at most {MAX_CLASSES} classes fit a proof's outputs"
            )));
        }
        if let Some(labels) = &self.labels
            && labels.len() != len
        {
            return Err(ModelError::Invalid(format!(
                "{} labels for {len} classes",
                labels.len()
            )));
        }
        Ok(())
    }

    /// The checks of the model as a whole: format, sizes, scales, where its input goes.
    fn validate_header(&self) -> Result<(), ModelError> {
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
        Ok(())
    }
}

/// One layer's checks, given `bound`, the largest magnitude its inputs can have: the bound of
/// its outputs and its number of weights.
fn validate_layer(layer: &QLayer, bound: i64) -> Result<(i64, usize), String> {
    if let QLayer::Conv { window, .. }
    | QLayer::MaxPool { window }
    | QLayer::AvgPool { window, .. } = layer
    {
        window.validate()?;
    }
    let out = layer.output_len();
    if out == 0 || out > MAX_TENSOR_ELEMENTS {
        return Err("output size out of range".into());
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
            check_linear(*n_out, *n_in, weights, bias, requant, *lo, *hi, bound)?;
            Ok(((*hi).max(-*lo), weights.len()))
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
            check_linear(*c_out, per, weights, bias, requant, *lo, *hi, bound)?;
            Ok(((*hi).max(-*lo), weights.len()))
        }
        QLayer::MaxPool { .. } | QLayer::Relu { .. } => Ok((bound, 0)),
        QLayer::AvgPool {
            window,
            requant,
            lo,
            hi,
            ..
        } => {
            if !(*lo <= 0 && *hi >= 0 && *lo >= -LOGIT_MAX && *hi <= LOGIT_MAX) {
                return Err("clamp range out of bounds".into());
            }
            if requant.len() != window.out_h() * window.out_w() {
                return Err("one requantization per output position".into());
            }
            for (p, r) in requant.iter().enumerate() {
                let taps = window.taps(p / window.out_w(), p % window.out_w()).count();
                if !r.fits(bound as u128 * taps as u128) {
                    return Err("requantization out of range".into());
                }
            }
            Ok(((*hi).max(-*lo), 0))
        }
    }
}

/// A committed-weights layer holds what its architecture's program assumes (see
/// [`super::committed_acc_bound`]): int8 weights, and biases below half a lane.
fn check_committable(layer: &QLayer) -> Result<(), String> {
    let (weights, bias) = match layer {
        QLayer::Dense { weights, bias, .. } | QLayer::Conv { weights, bias, .. } => (weights, bias),
        _ => return Ok(()),
    };
    if let Some(w) = weights.iter().find(|w| w.abs() > ACT_MAX) {
        return Err(format!(
            "committed weights must be int8 (|w| <= {ACT_MAX}); this layer has {w}: import without --private-weights"
        ));
    }
    if let Some(b) = bias
        .iter()
        .find(|b| u128::from(b.unsigned_abs()) > COMMITTED_BIAS_MAX)
    {
        return Err(format!(
            "committed biases must lie within {COMMITTED_BIAS_MAX}; this layer has {b}: import without --private-weights"
        ));
    }
    Ok(())
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
