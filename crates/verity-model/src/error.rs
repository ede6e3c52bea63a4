use thiserror::Error;

/// Why a model could not be imported, quantized, compiled or run.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("cannot read {what}: {reason}")]
    Read { what: String, reason: String },
    #[error("not a valid ONNX model: {0}")]
    Malformed(String),
    #[error("unsupported ONNX operators: {}", list_ops(.0))]
    Unsupported(Vec<UnsupportedOp>),
    #[error("unsupported model structure at node '{node}': {reason}")]
    Structure { node: String, reason: String },
    #[error("calibration data: {0}")]
    Calibration(String),
    #[error("input: {0}")]
    Input(String),
    #[error(
        "the model needs about {needed} VM cycles; the limit is {limit} ({factor:.1}x over): \
         use a smaller model or raise --max-cycles (at most 2^20)"
    )]
    TooLarge {
        needed: u64,
        limit: u64,
        factor: f64,
    },
    #[error("invalid model file: {0}")]
    Invalid(String),
    #[error("float reference (tract): {0}")]
    Reference(String),
}

/// An ONNX node Verity cannot compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedOp {
    pub op_type: String,
    pub node: String,
}

fn list_ops(ops: &[UnsupportedOp]) -> String {
    ops.iter()
        .map(|o| format!("{} (node '{}')", o.op_type, o.node))
        .collect::<Vec<_>>()
        .join(", ")
        + "; supported: MatMul, Gemm, Add (bias), Relu, Flatten, Reshape, Conv, MaxPool, \
           AveragePool, Cast, Identity, Dropout, and a Softmax/ArgMax/label head"
}
