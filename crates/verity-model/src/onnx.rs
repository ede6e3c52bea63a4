//! Reading an ONNX file into Verity's layer list.
//!
//! The protobuf is decoded by `tract-onnx` (never by hand); this module walks the decoded
//! graph. Verity compiles straight chains of layers: the graph input, then MatMul/Gemm (+ Add
//! as bias), Conv, pooling, Relu and shape-only nodes, ending at the *logits*: the tensor a
//! trailing classification head (Softmax, ArgMax, ZipMap, label lookup) is computed from, or
//! the graph output when there is no head. The head is monotone in the logits, so the proven
//! statement is the logits and their argmax. Every check here treats the file as hostile:
//! sizes are bounded before anything is allocated from them, and errors name the node.

use std::collections::BTreeMap;

use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use crate::error::{ModelError, UnsupportedOp};

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

/// An activation's shape without the batch dimension: channels, height, width (a flat
/// vector of n values is `n x 1 x 1`). Memory order is ONNX's row-major NCHW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub fn flat(n: usize) -> Shape {
        Shape { c: n, h: 1, w: 1 }
    }
    /// Element count (saturating: a hostile shape reads as too large, never overflows).
    pub fn len(&self) -> usize {
        self.c.saturating_mul(self.h).saturating_mul(self.w)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A 2-D window (convolution kernel or pooling) over an input of shape `input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub input: Shape,
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
}

impl Window {
    pub fn out_h(&self) -> usize {
        (self.input.h + self.pads[0] + self.pads[2] - self.kh) / self.stride_h + 1
    }
    pub fn out_w(&self) -> usize {
        (self.input.w + self.pads[1] + self.pads[3] - self.kw) / self.stride_w + 1
    }
    /// The input positions `(y, x)` under the window of output `(oy, ox)`, padding skipped.
    pub fn taps(
        &self,
        oy: usize,
        ox: usize,
    ) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        (0..self.kh).flat_map(move |ky| {
            (0..self.kw).filter_map(move |kx| {
                let y = (oy * self.stride_h + ky).checked_sub(self.pads[0])?;
                let x = (ox * self.stride_w + kx).checked_sub(self.pads[1])?;
                (y < self.input.h && x < self.input.w).then_some((ky, kx, y, x))
            })
        })
    }
    /// For a convolution over this window, the `(weight index, input index)` pairs output
    /// channel `co` sums at `(oy, ox)`: input channels outer, kernel taps inner, padding
    /// skipped. Weights are laid out `[c_out][c_in][kh][kw]`, inputs `[c][h][w]`.
    pub fn conv_taps(
        &self,
        co: usize,
        oy: usize,
        ox: usize,
    ) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (ci_n, ih, iw) = (self.input.c, self.input.h, self.input.w);
        (0..ci_n).flat_map(move |ci| {
            self.taps(oy, ox).map(move |(ky, kx, y, x)| {
                (
                    ((co * ci_n + ci) * self.kh + ky) * self.kw + kx,
                    (ci * ih + y) * iw + x,
                )
            })
        })
    }

    /// For pooling over this window, the input indices under output `(oy, ox)` of channel `ch`.
    pub fn pool_taps(&self, ch: usize, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
        let (ih, iw) = (self.input.h, self.input.w);
        self.taps(oy, ox)
            .map(move |(_, _, y, x)| (ch * ih + y) * iw + x)
    }

    /// Pools `x`: `f` gets each window's values and the output's position within its
    /// channel; outputs are channel-major, then rows, then columns.
    pub fn pool<T: Copy>(&self, x: &[T], f: impl Fn(&[T], usize) -> T) -> Vec<T> {
        let (oh, ow) = (self.out_h(), self.out_w());
        let mut out = Vec::with_capacity(self.input.c * oh * ow);
        for ch in 0..self.input.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let vals: Vec<T> = self.pool_taps(ch, oy, ox).map(|i| x[i]).collect();
                    out.push(f(&vals, oy * ow + ox));
                }
            }
        }
        out
    }

    fn check(&self, node: &str) -> Result<(), ModelError> {
        self.validate().map_err(|reason| ModelError::Structure {
            node: node.into(),
            reason,
        })
    }

    /// The window is well formed and small enough to compile.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |reason: String| reason;
        if self.input.is_empty() || self.input.len() > MAX_TENSOR_ELEMENTS {
            return Err(bad("input size out of range".into()));
        }
        if self.kh == 0 || self.kw == 0 || self.stride_h == 0 || self.stride_w == 0 {
            return Err(bad("kernel and strides must be positive".into()));
        }
        if self.kh > 64 || self.kw > 64 || self.pads.iter().any(|p| *p >= 64) {
            return Err(bad("kernels and padding are limited to 64".into()));
        }
        if self.input.h + self.pads[0] + self.pads[2] < self.kh
            || self.input.w + self.pads[1] + self.pads[3] < self.kw
        {
            return Err(bad("the kernel is larger than the padded input".into()));
        }
        Ok(())
    }
}

/// One layer of the float model, as read from ONNX.
#[derive(Debug, Clone)]
pub enum FloatLayer {
    /// `y = W x + b`; `weights[j * n_in + i]` is the weight from input i to output j.
    Dense {
        n_in: usize,
        n_out: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    /// 2-D convolution; `weights[((co * c_in + ci) * kh + ky) * kw + kx]`.
    Conv {
        window: Window,
        c_out: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    MaxPool {
        window: Window,
    },
    AvgPool {
        window: Window,
        count_include_pad: bool,
    },
    Relu,
    /// A change of shape only (Flatten, Reshape): memory order is unchanged.
    Reshape {
        to: Shape,
    },
}

impl FloatLayer {
    /// For a Dense or Conv layer: outputs (channels), weights per output, weights, biases.
    pub fn linear(&self) -> Option<(usize, usize, &[f32], &[f32])> {
        match self {
            FloatLayer::Dense {
                n_in,
                n_out,
                weights,
                bias,
            } => Some((*n_out, *n_in, weights, bias)),
            FloatLayer::Conv {
                window,
                c_out,
                weights,
                bias,
            } => Some((
                *c_out,
                window.input.c * window.kh * window.kw,
                weights,
                bias,
            )),
            _ => None,
        }
    }

    /// The shape this layer produces from `input`.
    pub fn output_shape(&self, input: Shape) -> Shape {
        match self {
            FloatLayer::Dense { n_out, .. } => Shape::flat(*n_out),
            FloatLayer::Conv { window, c_out, .. } => Shape {
                c: *c_out,
                h: window.out_h(),
                w: window.out_w(),
            },
            FloatLayer::MaxPool { window } | FloatLayer::AvgPool { window, .. } => Shape {
                c: window.input.c,
                h: window.out_h(),
                w: window.out_w(),
            },
            FloatLayer::Relu => input,
            FloatLayer::Reshape { to } => *to,
        }
    }
}

/// A model as read from ONNX: its input, its layers up to the logits, and class labels.
#[derive(Debug, Clone)]
pub struct FloatModel {
    pub name: String,
    /// The ONNX file's bytes' BLAKE3 hash, hex.
    pub source_hash: String,
    pub input_name: String,
    /// The input's dimensions as ONNX declares them, batch dimension set to 1.
    pub input_dims: Vec<usize>,
    pub input: Shape,
    /// Layers with the ONNX node each came from.
    pub layers: Vec<(String, FloatLayer)>,
    pub logits_name: String,
    pub labels: Option<Vec<String>>,
    /// The decoded file, kept to run the float reference.
    pub(crate) proto: pb::ModelProto,
}

impl FloatModel {
    pub fn output_shape(&self) -> Shape {
        self.layers
            .iter()
            .fold(self.input, |s, (_, l)| l.output_shape(s))
    }

    /// Runs the float model (Verity's own interpretation, in f64) on one input, returning
    /// every layer's output. Used to choose quantization scales; `reference` cross-checks it
    /// against tract.
    pub fn forward(&self, x: &[f32]) -> Vec<Vec<f64>> {
        let mut cur: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
        let mut outs = Vec::with_capacity(self.layers.len());
        for (_, layer) in &self.layers {
            cur = forward_layer(layer, &cur);
            outs.push(cur.clone());
        }
        outs
    }
}

fn forward_layer(layer: &FloatLayer, x: &[f64]) -> Vec<f64> {
    match layer {
        FloatLayer::Dense {
            n_in,
            n_out,
            weights,
            bias,
        } => (0..*n_out)
            .map(|j| {
                let row = &weights[j * n_in..(j + 1) * n_in];
                f64::from(bias[j])
                    + row
                        .iter()
                        .zip(x)
                        .map(|(w, v)| f64::from(*w) * v)
                        .sum::<f64>()
            })
            .collect(),
        FloatLayer::Conv {
            window,
            c_out,
            weights,
            bias,
        } => {
            let (oh, ow) = (window.out_h(), window.out_w());
            let mut out = Vec::with_capacity(c_out * oh * ow);
            for (co, b) in bias.iter().enumerate().take(*c_out) {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let taps = window.conv_taps(co, oy, ox);
                        let sum: f64 = taps.map(|(w, i)| f64::from(weights[w]) * x[i]).sum();
                        out.push(f64::from(*b) + sum);
                    }
                }
            }
            out
        }
        FloatLayer::MaxPool { window } => window.pool(x, |vals, _| {
            vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        }),
        FloatLayer::AvgPool {
            window,
            count_include_pad,
        } => window.pool(x, |vals, _| {
            let n = if *count_include_pad {
                window.kh * window.kw
            } else {
                vals.len()
            };
            vals.iter().sum::<f64>() / n as f64
        }),
        FloatLayer::Relu => x.iter().map(|v| v.max(0.0)).collect(),
        FloatLayer::Reshape { .. } => x.to_vec(),
    }
}

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

struct Parser<'a> {
    graph: &'a pb::GraphProto,
    inits: BTreeMap<&'a str, &'a pb::TensorProto>,
    consumers: BTreeMap<&'a str, Vec<usize>>,
}

fn structure(node: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Structure {
        node: node.into(),
        reason: reason.into(),
    }
}

fn node_name(n: &pb::NodeProto, idx: usize) -> String {
    if n.name.is_empty() {
        format!("#{idx} ({})", n.op_type)
    } else {
        n.name.clone()
    }
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_int(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map(|a| a.i).unwrap_or(default)
}

fn attr_float(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map(|a| a.f).unwrap_or(default)
}

fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn to_usize(v: i64, node: &str, what: &str) -> Result<usize, ModelError> {
    usize::try_from(v)
        .ok()
        .filter(|v| *v <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| structure(node, format!("{what} {v} is out of range")))
}

/// Element count of a tensor's dims, refusing negative or oversized ones.
fn numel(dims: &[i64], name: &str) -> Result<usize, ModelError> {
    let mut n: usize = 1;
    for d in dims {
        let d = usize::try_from(*d).map_err(|_| {
            ModelError::Malformed(format!("tensor '{name}' has a negative dimension"))
        })?;
        n = n
            .checked_mul(d)
            .filter(|n| *n <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| {
                ModelError::Malformed(format!(
                    "tensor '{name}' is larger than {MAX_TENSOR_ELEMENTS} elements"
                ))
            })?;
    }
    Ok(n)
}

const FLOAT: i32 = 1;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

/// A float tensor's values (FLOAT or DOUBLE, raw or typed storage), all finite.
fn tensor_f32(t: &pb::TensorProto) -> Result<Vec<f32>, ModelError> {
    let n = numel(&t.dims, &t.name)?;
    if t.data_location == Some(1) {
        return Err(ModelError::Malformed(format!(
            "tensor '{}' uses external data, which Verity does not read",
            t.name
        )));
    }
    let values: Vec<f32> = match t.data_type {
        FLOAT if !t.raw_data.is_empty() => {
            if t.raw_data.len() != n * 4 {
                return Err(ModelError::Malformed(format!(
                    "tensor '{}' has {} bytes for {n} floats",
                    t.name,
                    t.raw_data.len()
                )));
            }
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        FLOAT => t.float_data.clone(),
        DOUBLE if !t.raw_data.is_empty() => {
            if t.raw_data.len() != n * 8 {
                return Err(ModelError::Malformed(format!(
                    "tensor '{}' has {} bytes for {n} doubles",
                    t.name,
                    t.raw_data.len()
                )));
            }
            t.raw_data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect()
        }
        DOUBLE => t.double_data.iter().map(|v| *v as f32).collect(),
        other => {
            return Err(ModelError::Malformed(format!(
                "tensor '{}' has data type {other}; weights must be float",
                t.name
            )));
        }
    };
    if values.len() != n {
        return Err(ModelError::Malformed(format!(
            "tensor '{}' has {} values for shape {:?}",
            t.name,
            values.len(),
            t.dims
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::Malformed(format!(
            "tensor '{}' holds NaN or infinite values",
            t.name
        )));
    }
    Ok(values)
}

/// An INT64 tensor's values (shapes, class labels).
fn tensor_i64(t: &pb::TensorProto) -> Result<Vec<i64>, ModelError> {
    let n = numel(&t.dims, &t.name)?;
    if t.data_type != INT64 {
        return Err(ModelError::Malformed(format!(
            "tensor '{}' should be int64",
            t.name
        )));
    }
    let values: Vec<i64> = if !t.raw_data.is_empty() {
        if t.raw_data.len() != n * 8 {
            return Err(ModelError::Malformed(format!(
                "tensor '{}' has {} bytes for {n} int64s",
                t.name,
                t.raw_data.len()
            )));
        }
        t.raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    } else {
        t.int64_data.clone()
    };
    if values.len() != n {
        return Err(ModelError::Malformed(format!(
            "tensor '{}' has {} values for shape {:?}",
            t.name,
            values.len(),
            t.dims
        )));
    }
    Ok(values)
}

impl<'a> Parser<'a> {
    fn new(proto: &'a pb::ModelProto) -> Result<Parser<'a>, ModelError> {
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| ModelError::Malformed("the file has no graph".into()))?;
        let inits = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let mut consumers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for input in &n.input {
                consumers.entry(input.as_str()).or_default().push(i);
            }
        }
        Ok(Parser {
            graph,
            inits,
            consumers,
        })
    }

    fn init(&self, name: &str, node: &str) -> Result<&'a pb::TensorProto, ModelError> {
        self.inits
            .get(name)
            .copied()
            .ok_or_else(|| structure(node, format!("'{name}' must be a constant (initializer)")))
    }

    fn consumers(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map(Vec::as_slice).unwrap_or(&[])
    }

    fn is_graph_output(&self, tensor: &str) -> bool {
        self.graph.output.iter().any(|o| o.name == tensor)
    }

    /// Whether everything computed from `tensor` is head ops only.
    fn only_head_after(&self, tensor: &str) -> bool {
        let mut stack = vec![tensor.to_string()];
        let mut seen = 0usize;
        while let Some(t) = stack.pop() {
            for &i in self.consumers(&t) {
                let n = &self.graph.node[i];
                seen += 1;
                if seen > self.graph.node.len() * 4 || !HEAD_OPS.contains(&n.op_type.as_str()) {
                    return false;
                }
                stack.extend(n.output.iter().cloned());
            }
        }
        true
    }

    fn labels(&self) -> Option<Vec<String>> {
        for n in &self.graph.node {
            if n.op_type == "ZipMap" {
                if let Some(a) = attr(n, "classlabels_int64s").filter(|a| !a.ints.is_empty()) {
                    return Some(a.ints.iter().map(|v| v.to_string()).collect());
                }
                if let Some(a) = attr(n, "classlabels_strings").filter(|a| !a.strings.is_empty()) {
                    return Some(
                        a.strings
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect(),
                    );
                }
            }
            if n.op_type == "ArrayFeatureExtractor"
                && let Some(t) = n.input.first().and_then(|c| self.inits.get(c.as_str()))
                && let Ok(v) = tensor_i64(t)
            {
                return Some(v.iter().map(|v| v.to_string()).collect());
            }
        }
        None
    }

    fn input(&self) -> Result<(String, Vec<usize>, Shape), ModelError> {
        let inputs: Vec<&pb::ValueInfoProto> = self
            .graph
            .input
            .iter()
            .filter(|i| !self.inits.contains_key(i.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(ModelError::Malformed(format!(
                "the model has {} inputs; Verity compiles models with one",
                inputs.len()
            )));
        };
        let Some(pb::type_proto::Value::TensorType(t)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(ModelError::Malformed(format!(
                "input '{}' is not a tensor",
                input.name
            )));
        };
        if t.elem_type != FLOAT && t.elem_type != DOUBLE {
            return Err(ModelError::Malformed(format!(
                "input '{}' must be float",
                input.name
            )));
        }
        let dims: Vec<Option<i64>> = t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => {
                            Some(v)
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let fixed = |i: usize| -> Result<usize, ModelError> {
            let v = dims[i].ok_or_else(|| {
                ModelError::Malformed(format!(
                    "input '{}' has an unknown dimension {i}",
                    input.name
                ))
            })?;
            to_usize(v, &input.name, "input dimension")
        };
        let (shape, mut full) = match dims.len() {
            1 => (Shape::flat(fixed(0)?), vec![fixed(0)?]),
            2 => (Shape::flat(fixed(1)?), vec![1, fixed(1)?]),
            3 => (
                Shape {
                    c: 1,
                    h: fixed(1)?,
                    w: fixed(2)?,
                },
                vec![1, fixed(1)?, fixed(2)?],
            ),
            4 => (
                Shape {
                    c: fixed(1)?,
                    h: fixed(2)?,
                    w: fixed(3)?,
                },
                vec![1, fixed(1)?, fixed(2)?, fixed(3)?],
            ),
            n => {
                return Err(ModelError::Malformed(format!(
                    "input '{}' has rank {n}; Verity takes rank 1 to 4",
                    input.name
                )));
            }
        };
        if dims.len() > 1 && dims[0].is_some_and(|b| b != 1) {
            return Err(ModelError::Malformed(format!(
                "input '{}' has a fixed batch size other than 1",
                input.name
            )));
        }
        if shape.is_empty() || shape.len() > MAX_TENSOR_ELEMENTS {
            return Err(ModelError::Malformed(format!(
                "input '{}' has {} elements",
                input.name,
                shape.len()
            )));
        }
        full.shrink_to_fit();
        Ok((input.name.clone(), full, shape))
    }

    fn parse(
        &self,
        name: &str,
        source_hash: String,
        proto: pb::ModelProto,
    ) -> Result<FloatModel, ModelError> {
        let unsupported: Vec<UnsupportedOp> = self
            .graph
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                !BODY_OPS.contains(&n.op_type.as_str()) && !HEAD_OPS.contains(&n.op_type.as_str())
            })
            .map(|(i, n)| UnsupportedOp {
                op_type: n.op_type.clone(),
                node: node_name(n, i),
            })
            .collect();
        if !unsupported.is_empty() {
            return Err(ModelError::Unsupported(unsupported));
        }
        let (input_name, input_dims, input) = self.input()?;
        let mut layers: Vec<(String, FloatLayer)> = Vec::new();
        let mut shape = input;
        let mut cur = input_name.clone();
        let mut steps = 0;
        let logits = loop {
            steps += 1;
            if steps > self.graph.node.len() + 1 || layers.len() > MAX_LAYERS {
                return Err(ModelError::Malformed(
                    "the graph is too long or has a cycle".into(),
                ));
            }
            let cons = self.consumers(&cur);
            if cons.is_empty() {
                if self.is_graph_output(&cur) {
                    break cur;
                }
                return Err(ModelError::Malformed(format!(
                    "tensor '{cur}' is computed but never used"
                )));
            }
            let all_head = cons.iter().all(|&i| {
                let op = self.graph.node[i].op_type.as_str();
                matches!(op, "Softmax" | "LogSoftmax" | "ArgMax" | "ZipMap")
            });
            if all_head {
                if !self.only_head_after(&cur) {
                    return Err(structure(
                        &cur,
                        "only a classification head may follow the logits",
                    ));
                }
                break cur;
            }
            let [idx] = cons else {
                return Err(structure(
                    &cur,
                    format!(
                        "tensor '{cur}' feeds {} nodes; Verity compiles straight chains",
                        cons.len()
                    ),
                ));
            };
            let node = &self.graph.node[*idx];
            let nname = node_name(node, *idx);
            let out = node
                .output
                .first()
                .filter(|o| !o.is_empty())
                .ok_or_else(|| structure(&nname, "node has no output"))?
                .clone();
            if node.input.first() != Some(&cur)
                && !(node.op_type == "Add" && node.input.get(1) == Some(&cur))
            {
                return Err(structure(
                    &nname,
                    format!("expected '{cur}' as the first input"),
                ));
            }
            match node.op_type.as_str() {
                "Cast" => {
                    let to = attr_int(node, "to", 0) as i32;
                    if to != FLOAT && to != DOUBLE {
                        return Err(structure(
                            &nname,
                            "a Cast inside the model must be to float",
                        ));
                    }
                }
                "Identity" | "Dropout" => {}
                "Relu" => layers.push((nname, FloatLayer::Relu)),
                "MatMul" | "Gemm" => {
                    // MatMul is a Gemm with no bias, alpha 1 and weights not transposed.
                    let gemm = node.op_type == "Gemm";
                    if gemm && attr_int(node, "transA", 0) != 0 {
                        return Err(structure(&nname, "Gemm with transA is not supported"));
                    }
                    let trans_b = gemm && attr_int(node, "transB", 0) != 0;
                    let (alpha, beta) = (
                        attr_float(node, "alpha", 1.0),
                        attr_float(node, "beta", 1.0),
                    );
                    let w =
                        self.init(node.input.get(1).map(String::as_str).unwrap_or(""), &nname)?;
                    if w.dims.len() != 2 {
                        return Err(structure(
                            &nname,
                            format!("{} weights must be 2-D", node.op_type),
                        ));
                    }
                    let (r, c) = (
                        to_usize(w.dims[0], &nname, "rows")?,
                        to_usize(w.dims[1], &nname, "columns")?,
                    );
                    let (n_in, n_out) = if trans_b { (c, r) } else { (r, c) };
                    if n_in != shape.len() {
                        return Err(structure(
                            &nname,
                            format!("weights take {n_in} inputs; the layer gets {}", shape.len()),
                        ));
                    }
                    let data = tensor_f32(w)?;
                    let mut weights = vec![0f32; n_in * n_out];
                    for j in 0..n_out {
                        for i in 0..n_in {
                            let v = if trans_b {
                                data[j * n_in + i]
                            } else {
                                data[i * n_out + j]
                            };
                            weights[j * n_in + i] = if gemm { alpha * v } else { v };
                        }
                    }
                    let bias = match node.input.get(2).filter(|s| gemm && !s.is_empty()) {
                        Some(b) => broadcast(&tensor_f32(self.init(b, &nname)?)?, n_out, &nname)?
                            .into_iter()
                            .map(|v| v * beta)
                            .collect(),
                        None => vec![0.0; n_out],
                    };
                    layers.push((
                        nname,
                        FloatLayer::Dense {
                            n_in,
                            n_out,
                            weights,
                            bias,
                        },
                    ));
                    shape = Shape::flat(n_out);
                }
                "Add" => {
                    let other = if node.input.first() == Some(&cur) {
                        node.input.get(1)
                    } else {
                        node.input.first()
                    };
                    let b =
                        tensor_f32(self.init(other.map(String::as_str).unwrap_or(""), &nname)?)?;
                    match layers.last_mut() {
                        Some((_, FloatLayer::Dense { n_out, bias, .. })) => {
                            for (dst, v) in bias.iter_mut().zip(broadcast(&b, *n_out, &nname)?) {
                                *dst += v;
                            }
                        }
                        Some((_, FloatLayer::Conv { c_out, bias, .. })) => {
                            for (dst, v) in bias.iter_mut().zip(broadcast(&b, *c_out, &nname)?) {
                                *dst += v;
                            }
                        }
                        _ => {
                            return Err(structure(
                                &nname,
                                "Add is supported only as the bias of MatMul, Gemm or Conv",
                            ));
                        }
                    }
                }
                "Flatten" => {
                    if attr_int(node, "axis", 1) != 1 {
                        return Err(structure(&nname, "Flatten is supported with axis 1"));
                    }
                    shape = Shape::flat(shape.len());
                    layers.push((nname, FloatLayer::Reshape { to: shape }));
                }
                "Reshape" => {
                    let target = tensor_i64(
                        self.init(node.input.get(1).map(String::as_str).unwrap_or(""), &nname)?,
                    )?;
                    shape = reshape(shape, &target, &nname)?;
                    layers.push((nname, FloatLayer::Reshape { to: shape }));
                }
                "Conv" => {
                    if attr_int(node, "group", 1) != 1 {
                        return Err(structure(&nname, "grouped convolutions are not supported"));
                    }
                    if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|v| *v != 1)) {
                        return Err(structure(&nname, "dilated convolutions are not supported"));
                    }
                    let w =
                        self.init(node.input.get(1).map(String::as_str).unwrap_or(""), &nname)?;
                    if w.dims.len() != 4 {
                        return Err(structure(
                            &nname,
                            "Conv weights must be 4-D (2-D convolution)",
                        ));
                    }
                    let c_out = to_usize(w.dims[0], &nname, "output channels")?;
                    if to_usize(w.dims[1], &nname, "input channels")? != shape.c {
                        return Err(structure(
                            &nname,
                            format!(
                                "weights take {} channels; the input has {}",
                                w.dims[1], shape.c
                            ),
                        ));
                    }
                    let window = self.window(node, &nname, shape, Some((w.dims[2], w.dims[3])))?;
                    let weights = tensor_f32(w)?;
                    let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
                        Some(b) => broadcast(&tensor_f32(self.init(b, &nname)?)?, c_out, &nname)?,
                        None => vec![0.0; c_out],
                    };
                    let layer = FloatLayer::Conv {
                        window,
                        c_out,
                        weights,
                        bias,
                    };
                    shape = layer.output_shape(shape);
                    layers.push((nname, layer));
                }
                "MaxPool" | "AveragePool" => {
                    if node.output.len() > 1 && !node.output[1].is_empty() {
                        return Err(structure(&nname, "MaxPool indices are not supported"));
                    }
                    if attr_int(node, "ceil_mode", 0) != 0 {
                        return Err(structure(&nname, "ceil_mode is not supported"));
                    }
                    if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|v| *v != 1)) {
                        return Err(structure(&nname, "dilated pooling is not supported"));
                    }
                    let window = self.window(node, &nname, shape, None)?;
                    let layer = if node.op_type == "MaxPool" {
                        FloatLayer::MaxPool { window }
                    } else {
                        FloatLayer::AvgPool {
                            window,
                            count_include_pad: attr_int(node, "count_include_pad", 0) != 0,
                        }
                    };
                    shape = layer.output_shape(shape);
                    layers.push((nname, layer));
                }
                other => {
                    return Err(structure(
                        &nname,
                        format!("{other} cannot appear before the logits"),
                    ));
                }
            }
            if shape.is_empty() || shape.len() > MAX_TENSOR_ELEMENTS {
                return Err(structure(&cur, "activation size out of range"));
            }
            cur = out;
        };
        if !layers
            .iter()
            .any(|(_, l)| matches!(l, FloatLayer::Dense { .. } | FloatLayer::Conv { .. }))
        {
            return Err(ModelError::Malformed(
                "the model has no MatMul, Gemm or Conv layer".into(),
            ));
        }
        Ok(FloatModel {
            name: name.to_string(),
            source_hash,
            input_name,
            input_dims,
            input,
            layers,
            logits_name: logits,
            labels: self.labels(),
            proto,
        })
    }

    /// The kernel window of a Conv (kernel from the weights) or pooling node.
    fn window(
        &self,
        node: &pb::NodeProto,
        nname: &str,
        input: Shape,
        kernel: Option<(i64, i64)>,
    ) -> Result<Window, ModelError> {
        let ks = match kernel {
            Some((h, w)) => vec![h, w],
            None => attr_ints(node, "kernel_shape")
                .ok_or_else(|| structure(nname, "kernel_shape is required"))?,
        };
        if ks.len() != 2 {
            return Err(structure(nname, "only 2-D windows are supported"));
        }
        let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
        let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0, 0, 0, 0]);
        if strides.len() != 2 || pads.len() != 4 {
            return Err(structure(
                nname,
                "strides and pads must describe 2-D windows",
            ));
        }
        match attr(node, "auto_pad")
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
            .as_deref()
        {
            None | Some("NOTSET") | Some("VALID") | Some("") => {}
            Some(other) => {
                return Err(structure(
                    nname,
                    format!("auto_pad {other} is not supported; export with explicit pads"),
                ));
            }
        }
        let u = |v: i64, what: &str| to_usize(v, nname, what);
        // ONNX pads are [top, left, bottom, right] for 2-D.
        let window = Window {
            input,
            kh: u(ks[0], "kernel height")?,
            kw: u(ks[1], "kernel width")?,
            stride_h: u(strides[0], "stride")?,
            stride_w: u(strides[1], "stride")?,
            pads: [
                u(pads[0], "pad")?,
                u(pads[1], "pad")?,
                u(pads[2], "pad")?,
                u(pads[3], "pad")?,
            ],
        };
        window.check(nname)?;
        Ok(window)
    }
}

/// A bias of `n` values from a tensor of n values or one (broadcast).
fn broadcast(b: &[f32], n: usize, node: &str) -> Result<Vec<f32>, ModelError> {
    match b.len() {
        1 => Ok(vec![b[0]; n]),
        len if len == n => Ok(b.to_vec()),
        len => Err(structure(
            node,
            format!("bias has {len} values for {n} outputs"),
        )),
    }
}

/// The shape a Reshape to `target` (ONNX semantics: 0 copies, -1 infers) gives, batch kept.
fn reshape(from: Shape, target: &[i64], node: &str) -> Result<Shape, ModelError> {
    let total = from.len();
    let dims: Vec<i64> = match target.first() {
        Some(1) | Some(-1) | Some(0) if target.len() > 1 => target[1..].to_vec(),
        _ if target.len() == 1 => target.to_vec(),
        _ => return Err(structure(node, "Reshape must keep a batch dimension of 1")),
    };
    let from_dims = [from.c, from.h, from.w];
    let mut known = 1usize;
    let mut infer = None;
    let mut out = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        let v = match *d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 => *from_dims
                .get(i)
                .ok_or_else(|| structure(node, "Reshape 0 past the input's rank"))?,
            d if d > 0 => to_usize(d, node, "dimension")?,
            _ => return Err(structure(node, "invalid Reshape target")),
        };
        known = known
            .checked_mul(v)
            .ok_or_else(|| structure(node, "Reshape target too large"))?;
        out.push(v);
    }
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(structure(node, "Reshape cannot infer a dimension"));
        }
        out[i] = total / known;
    }
    let shape = match out.as_slice() {
        [n] => Shape::flat(*n),
        [h, w] => Shape { c: 1, h: *h, w: *w },
        [c, h, w] => Shape {
            c: *c,
            h: *h,
            w: *w,
        },
        _ => return Err(structure(node, "Reshape to rank above 4 is not supported")),
    };
    if shape.len() != total {
        return Err(structure(
            node,
            format!("Reshape from {total} to {} elements", shape.len()),
        ));
    }
    Ok(shape)
}
