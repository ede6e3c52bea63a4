//! Verifiable inference: ONNX models in, Miden programs out.
//!
//! - [`onnx`] reads an ONNX file (decoded by `tract-onnx`) into a chain of float layers;
//! - [`quant`] quantizes it to integers with scales from a calibration set, and holds the
//!   integer reference implementation the program must match bit for bit;
//! - [`masm`] compiles the quantized model to Miden Assembly;
//! - [`reference`] runs the float model with tract, to measure the quantization's agreement.
//!
//! This crate never calls Miden: it produces source text and numbers. `verity-vm` assembles,
//! runs and proves the program, so editing a model does not recompile the prover.

mod error;
pub mod masm;
pub mod onnx;
pub mod quant;
pub mod reference;

use std::path::Path;

pub use error::{ModelError, UnsupportedOp};
pub use masm::{Compiled, compile, from_felt, to_felt};
pub use onnx::{FloatModel, Shape, read_onnx};
pub use quant::{Agreement, MAX_PUBLIC_INPUTS, QLayer, QuantModel, argmax, quantize};

/// Largest calibration or sample file read.
pub const MAX_SAMPLES_BYTES: u64 = 64 << 20;
/// Largest `.vmodel` file read.
pub const MAX_VMODEL_BYTES: u64 = 256 << 20;

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ModelError> {
    let read_err = |reason: String| ModelError::Read {
        what: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
    if meta.len() > limit {
        return Err(read_err(format!(
            "{} bytes; the limit is {limit}",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| read_err(e.to_string()))
}

/// Samples from JSON: one input (an array, possibly nested), a list of inputs, or
/// `{"inputs": [...]}` (extra fields such as `labels` are ignored). Each sample is
/// flattened in row-major order.
pub fn parse_samples(text: &str) -> Result<Vec<Vec<f32>>, ModelError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ModelError::Input(format!("not JSON: {e}")))?;
    let list = match &value {
        serde_json::Value::Object(map) => map
            .get("inputs")
            .ok_or_else(|| ModelError::Input("expected an \"inputs\" field".into()))?,
        other => other,
    };
    let serde_json::Value::Array(items) = list else {
        return Err(ModelError::Input("expected an array of numbers".into()));
    };
    // One sample if the elements are numbers (or arrays of numbers for a nested single
    // input whose first element is itself numeric all the way down), else a list.
    let single = items.first().is_some_and(|v| v.is_number());
    let samples: Vec<&serde_json::Value> = if single {
        vec![list]
    } else {
        items.iter().collect()
    };
    samples
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let mut out = Vec::new();
            flatten(s, &mut out, 0).map_err(|e| ModelError::Input(format!("sample {k}: {e}")))?;
            Ok(out)
        })
        .collect()
}

fn flatten(v: &serde_json::Value, out: &mut Vec<f32>, depth: usize) -> Result<(), String> {
    if depth > 8 {
        return Err("nested too deeply".into());
    }
    match v {
        serde_json::Value::Number(n) => {
            let f = n.as_f64().ok_or("not a number")? as f32;
            if !f.is_finite() {
                return Err("value out of range".into());
            }
            out.push(f);
            Ok(())
        }
        serde_json::Value::Array(items) => {
            items.iter().try_for_each(|i| flatten(i, out, depth + 1))
        }
        _ => Err("expected numbers".into()),
    }
}

/// Reads samples from a JSON file (see [`parse_samples`]).
pub fn read_samples(path: &Path) -> Result<Vec<Vec<f32>>, ModelError> {
    let bytes = read_limited(path, MAX_SAMPLES_BYTES)?;
    parse_samples(&String::from_utf8_lossy(&bytes))
}

/// Imports an ONNX model: reads it, quantizes it with `calibration` samples, and measures
/// the quantized model against the float one (run by tract) on the same samples.
pub fn import(onnx_path: &Path, calibration: &[Vec<f32>]) -> Result<QuantModel, ModelError> {
    let bytes = read_limited(onnx_path, onnx::MAX_ONNX_BYTES as u64)?;
    let name = onnx_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let float = read_onnx(&bytes, &name)?;
    let mut model = quantize(&float, calibration)?;
    model.calibration = Some(agreement(&model, &float, calibration)?);
    Ok(model)
}

/// Top-1 agreement and largest logit error of the quantized model against tract's float run.
pub fn agreement(
    model: &QuantModel,
    float: &FloatModel,
    samples: &[Vec<f32>],
) -> Result<Agreement, ModelError> {
    let reference = reference::float_logits(float, samples)?;
    let mut agreement = Agreement {
        samples: samples.len(),
        top1_agreements: 0,
        max_logit_error: 0.0,
        max_logit: 0.0,
    };
    for (x, want) in samples.iter().zip(&reference) {
        let got = model.dequantize(&model.infer(&model.quantize_input(x)?)?);
        if got.len() != want.len() {
            return Err(ModelError::Reference(format!(
                "tract gives {} logits, the model {}",
                want.len(),
                got.len()
            )));
        }
        if argmax(&got) == argmax(want) {
            agreement.top1_agreements += 1;
        }
        for (g, w) in got.iter().zip(want) {
            agreement.max_logit_error = agreement.max_logit_error.max((g - f64::from(*w)).abs());
            agreement.max_logit = agreement.max_logit.max(f64::from(*w).abs());
        }
    }
    Ok(agreement)
}

impl QuantModel {
    /// Reads and validates a `.vmodel` file.
    pub fn load(path: &Path) -> Result<QuantModel, ModelError> {
        let bytes = read_limited(path, MAX_VMODEL_BYTES)?;
        let model: QuantModel =
            serde_json::from_slice(&bytes).map_err(|e| ModelError::Invalid(e.to_string()))?;
        model.validate()?;
        Ok(model)
    }

    /// Writes the model as a `.vmodel` file (JSON).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let text = serde_json::to_string(self).map_err(|e| ModelError::Invalid(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| ModelError::Read {
            what: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// A digest of how the model's numbers are read: the input's dimensions and scale (how a
    /// verifier quantizes an input to check it), the logit scale and the class labels. The
    /// program does not compute with them, so without this a `.vmodel` with permuted labels
    /// or another scale would compile to the same program and decode a receipt differently;
    /// with weights as immediates the compiler writes this digest into the program, so it is
    /// part of the model id; with committed weights it is half of the model commitment the
    /// program checks (`hash(weights commitment, digest)`). Four field elements (each below
    /// 2^63).
    pub fn interpretation_digest(&self) -> [u64; 4] {
        let mut h = blake3::Hasher::new_derive_key("verity-model interpretation v1");
        h.update(&(self.input_dims.len() as u64).to_le_bytes());
        for d in &self.input_dims {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(&self.input_scale.to_bits().to_le_bytes());
        h.update(&self.logit_scale.to_bits().to_le_bytes());
        match &self.labels {
            None => {
                h.update(&[0]);
            }
            Some(labels) => {
                h.update(&[1]);
                h.update(&(labels.len() as u64).to_le_bytes());
                for l in labels {
                    h.update(&(l.len() as u64).to_le_bytes());
                    h.update(l.as_bytes());
                }
            }
        }
        let bytes = h.finalize();
        std::array::from_fn(|i| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes.as_bytes()[i * 8..i * 8 + 8]);
            // Below 2^63 < p: a valid immediate as it stands.
            u64::from_le_bytes(word) >> 1
        })
    }

    /// The class label of an output index (the index itself when the model has no labels).
    pub fn label(&self, class: usize) -> String {
        self.labels
            .as_ref()
            .and_then(|l| l.get(class).cloned())
            .unwrap_or_else(|| class.to_string())
    }

    /// Decodes a program's output stack: the class and the logits as signed integers.
    pub fn decode_outputs(&self, stack: &[u64]) -> Result<(usize, Vec<i64>), ModelError> {
        let n = self.classes();
        if stack.len() < n + 1 {
            return Err(ModelError::Input("output stack too short".into()));
        }
        let class = usize::try_from(stack[0])
            .ok()
            .filter(|c| *c < n)
            .ok_or_else(|| ModelError::Input(format!("class {} out of range", stack[0])))?;
        Ok((class, stack[1..=n].iter().map(|v| from_felt(*v)).collect()))
    }
}
