//! Reading an ONNX file into Verity's layer list.
//!
//! The protobuf is decoded by `tract-onnx` (never by hand); this module walks the decoded
//! graph. Verity compiles straight chains of layers: the graph input, then MatMul/Gemm (+ Add
//! as bias), Conv, pooling, Relu and shape-only nodes, ending at the *logits*: the tensor a
//! trailing classification head (Softmax, ArgMax, ZipMap, label lookup) is computed from, or
//! the graph output when there is no head. The head is monotone in the logits, so the proven
//! statement is the logits and their argmax. Every check here treats the file as hostile:
//! sizes are bounded before anything is allocated from them, and errors name the node.

mod model;
mod parser;
mod tensor;

use tract_onnx::prelude::Framework;

use crate::error::ModelError;
pub use model::{FloatLayer, FloatModel, Shape, Window};
use parser::Parser;

/// Largest ONNX file Verity reads.
pub const MAX_ONNX_BYTES: usize = 64 << 20;
/// Largest tensor (weights or activations), in elements.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 22;
/// Largest number of layers.
pub const MAX_LAYERS: usize = 256;

/// Ops that make up the body of a model Verity compiles.
const BODY_OPS: &[&str] = &[
    "MatMul",
    "Gemm",
    "Add",
    "Relu",
    "Flatten",
    "Reshape",
    "Conv",
    "MaxPool",
    "AveragePool",
    "Cast",
    "Identity",
    "Dropout",
];
/// Ops allowed after the logits: a classification head, monotone in the logits.
const HEAD_OPS: &[&str] = &[
    "Softmax",
    "LogSoftmax",
    "ArgMax",
    "ZipMap",
    "ArrayFeatureExtractor",
    "Cast",
    "Reshape",
    "Identity",
    "Flatten",
];

/// Decodes an ONNX file and reads its layers.
pub fn read_onnx(bytes: &[u8], name: &str) -> Result<FloatModel, ModelError> {
    if bytes.len() > MAX_ONNX_BYTES {
        return Err(ModelError::Malformed(format!(
            "{} bytes; the limit is {MAX_ONNX_BYTES}",
            bytes.len()
        )));
    }
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| ModelError::Malformed(format!("{e}")))?;
    let source_hash = blake3::hash(bytes).to_hex().to_string();
    Parser::new(&proto)?.parse(name, source_hash, proto.clone())
}
