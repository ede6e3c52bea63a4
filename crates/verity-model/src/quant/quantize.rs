//! Choosing scales from a calibration set and quantizing a float model's layers.

use super::{ACT_MAX, FORMAT, LOGIT_MAX, QLayer, QuantModel, Requant, acc_bound};
use crate::error::ModelError;
use crate::onnx::{FloatLayer, FloatModel, Window};

/// Quantizes a float model with scales chosen on `calibration` (inputs, already checked to
/// have the model's input size).
pub fn quantize(model: &FloatModel, calibration: &[Vec<f32>]) -> Result<QuantModel, ModelError> {
    check_calibration(model, calibration)?;
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
                let q = quantize_linear(name, layer, in_scale, in_bound, out_scale, (lo, hi))?;
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
                layers.push(avg_pool(name, window, *count_include_pad, in_bound)?);
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
        written_with: None,
    };
    model.validate()?;
    Ok(model)
}

/// Refuses a calibration set that is empty, or whose samples do not fit the model's input.
fn check_calibration(model: &FloatModel, calibration: &[Vec<f32>]) -> Result<(), ModelError> {
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
    Ok(())
}

/// A Dense or Conv layer quantized: int8 weights with a scale per output channel, biases at
/// the accumulator's scale, and a requantization per output from `in_scale` to `out_scale`
/// (proven to fit for inputs bounded by `in_bound`); outputs clamped to `lo..=hi`.
fn quantize_linear(
    name: &str,
    layer: &FloatLayer,
    in_scale: f64,
    in_bound: i64,
    out_scale: f64,
    (lo, hi): (i64, i64),
) -> Result<QLayer, ModelError> {
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
    Ok(match layer {
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
    })
}

/// An average pool over inputs bounded by `in_bound`: a requantization per output position
/// (its divisor is the window's area, or the taps inside the input without padding).
fn avg_pool(
    name: &str,
    window: &Window,
    count_include_pad: bool,
    in_bound: i64,
) -> Result<QLayer, ModelError> {
    let mut requant = Vec::new();
    for oy in 0..window.out_h() {
        for ox in 0..window.out_w() {
            let taps = window.taps(oy, ox).count();
            let divisor = if count_include_pad {
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
    Ok(QLayer::AvgPool {
        window: *window,
        count_include_pad,
        requant,
        lo: -in_bound,
        hi: in_bound,
    })
}

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
