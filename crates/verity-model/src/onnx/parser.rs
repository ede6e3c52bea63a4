//! Walking the decoded graph from its input to the logits, one node at a time, into layers.

use std::collections::BTreeMap;

use tract_onnx::pb;

use super::tensor::{
    DOUBLE, FLOAT, attr, attr_float, attr_int, attr_ints, broadcast, node_name, reshape, structure,
    tensor_f32, tensor_i64, to_usize,
};
use super::{
    BODY_OPS, FloatLayer, FloatModel, HEAD_OPS, MAX_LAYERS, MAX_TENSOR_ELEMENTS, Shape, Window,
};
use crate::error::{ModelError, UnsupportedOp};

pub(super) struct Parser<'a> {
    graph: &'a pb::GraphProto,
    inits: BTreeMap<&'a str, &'a pb::TensorProto>,
    consumers: BTreeMap<&'a str, Vec<usize>>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(proto: &'a pb::ModelProto) -> Result<Parser<'a>, ModelError> {
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
        let (shape, mut full) = input_shape(&input.name, t)?;
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

    pub(super) fn parse(
        &self,
        name: &str,
        source_hash: String,
        proto: pb::ModelProto,
    ) -> Result<FloatModel, ModelError> {
        self.check_ops()?;
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
            let Some((node, nname, out)) = self.next(&cur)? else {
                break cur;
            };
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
                "Add" => self.add_bias(node, &nname, &cur, &mut layers)?,
                _ => {
                    let layer = self.layer(node, &nname, shape)?;
                    shape = layer.output_shape(shape);
                    layers.push((nname, layer));
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

    /// Refuses a graph with any op Verity does not compile, listing every one with its node.
    fn check_ops(&self) -> Result<(), ModelError> {
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
        Ok(())
    }

    /// The layer a Relu, MatMul, Gemm, Flatten, Reshape, Conv or pooling node computes on an
    /// input of `shape`.
    fn layer(
        &self,
        node: &pb::NodeProto,
        nname: &str,
        shape: Shape,
    ) -> Result<FloatLayer, ModelError> {
        Ok(match node.op_type.as_str() {
            "Relu" => FloatLayer::Relu,
            "MatMul" | "Gemm" => self.dense(node, nname, shape)?,
            "Flatten" => {
                if attr_int(node, "axis", 1) != 1 {
                    return Err(structure(nname, "Flatten is supported with axis 1"));
                }
                FloatLayer::Reshape {
                    to: Shape::flat(shape.len()),
                }
            }
            "Reshape" => {
                let target = tensor_i64(
                    self.init(node.input.get(1).map(String::as_str).unwrap_or(""), nname)?,
                )?;
                FloatLayer::Reshape {
                    to: reshape(shape, &target, nname)?,
                }
            }
            "Conv" => self.conv(node, nname, shape)?,
            "MaxPool" | "AveragePool" => self.pool(node, nname, shape)?,
            other => {
                return Err(structure(
                    nname,
                    format!("{other} cannot appear before the logits"),
                ));
            }
        })
    }

    /// What follows tensor `cur` in the chain: nothing when `cur` is the logits (a graph
    /// output, or what only a classification head reads), else the one node that reads it,
    /// with its name and output tensor.
    #[allow(clippy::type_complexity)]
    fn next(&self, cur: &str) -> Result<Option<(&'a pb::NodeProto, String, String)>, ModelError> {
        let cons = self.consumers(cur);
        if cons.is_empty() {
            if self.is_graph_output(cur) {
                return Ok(None);
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
            if !self.only_head_after(cur) {
                return Err(structure(
                    cur,
                    "only a classification head may follow the logits",
                ));
            }
            return Ok(None);
        }
        let [idx] = cons else {
            return Err(structure(
                cur,
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
        if node.input.first().map(String::as_str) != Some(cur)
            && !(node.op_type == "Add" && node.input.get(1).map(String::as_str) == Some(cur))
        {
            return Err(structure(
                &nname,
                format!("expected '{cur}' as the first input"),
            ));
        }
        Ok(Some((node, nname, out)))
    }

    /// A MatMul or Gemm node as a dense layer on `shape` (weights stored output-major; a
    /// Gemm's alpha and beta folded in).
    fn dense(
        &self,
        node: &pb::NodeProto,
        nname: &str,
        shape: Shape,
    ) -> Result<FloatLayer, ModelError> {
        // MatMul is a Gemm with no bias, alpha 1 and weights not transposed.
        let gemm = node.op_type == "Gemm";
        if gemm && attr_int(node, "transA", 0) != 0 {
            return Err(structure(nname, "Gemm with transA is not supported"));
        }
        let trans_b = gemm && attr_int(node, "transB", 0) != 0;
        let (alpha, beta) = (
            attr_float(node, "alpha", 1.0),
            attr_float(node, "beta", 1.0),
        );
        let w = self.init(node.input.get(1).map(String::as_str).unwrap_or(""), nname)?;
        if w.dims.len() != 2 {
            return Err(structure(
                nname,
                format!("{} weights must be 2-D", node.op_type),
            ));
        }
        let (r, c) = (
            to_usize(w.dims[0], nname, "rows")?,
            to_usize(w.dims[1], nname, "columns")?,
        );
        let (n_in, n_out) = if trans_b { (c, r) } else { (r, c) };
        if n_in != shape.len() {
            return Err(structure(
                nname,
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
            Some(b) => broadcast(&tensor_f32(self.init(b, nname)?)?, n_out, nname)?
                .into_iter()
                .map(|v| v * beta)
                .collect(),
            None => vec![0.0; n_out],
        };
        Ok(FloatLayer::Dense {
            n_in,
            n_out,
            weights,
            bias,
        })
    }

    /// An Add node: the bias of the MatMul, Gemm or Conv before it (`cur` is that layer's
    /// output), folded into that layer.
    fn add_bias(
        &self,
        node: &pb::NodeProto,
        nname: &str,
        cur: &str,
        layers: &mut [(String, FloatLayer)],
    ) -> Result<(), ModelError> {
        let other = if node.input.first().map(String::as_str) == Some(cur) {
            node.input.get(1)
        } else {
            node.input.first()
        };
        let b = tensor_f32(self.init(other.map(String::as_str).unwrap_or(""), nname)?)?;
        let (n, bias) = match layers.last_mut() {
            Some((_, FloatLayer::Dense { n_out, bias, .. })) => (*n_out, bias),
            Some((_, FloatLayer::Conv { c_out, bias, .. })) => (*c_out, bias),
            _ => {
                return Err(structure(
                    nname,
                    "Add is supported only as the bias of MatMul, Gemm or Conv",
                ));
            }
        };
        for (dst, v) in bias.iter_mut().zip(broadcast(&b, n, nname)?) {
            *dst += v;
        }
        Ok(())
    }

    /// A 2-D Conv node on `shape` (no groups, no dilation).
    fn conv(
        &self,
        node: &pb::NodeProto,
        nname: &str,
        shape: Shape,
    ) -> Result<FloatLayer, ModelError> {
        if attr_int(node, "group", 1) != 1 {
            return Err(structure(nname, "grouped convolutions are not supported"));
        }
        if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|v| *v != 1)) {
            return Err(structure(nname, "dilated convolutions are not supported"));
        }
        let w = self.init(node.input.get(1).map(String::as_str).unwrap_or(""), nname)?;
        if w.dims.len() != 4 {
            return Err(structure(
                nname,
                "Conv weights must be 4-D (2-D convolution)",
            ));
        }
        let c_out = to_usize(w.dims[0], nname, "output channels")?;
        if to_usize(w.dims[1], nname, "input channels")? != shape.c {
            return Err(structure(
                nname,
                format!(
                    "weights take {} channels; the input has {}",
                    w.dims[1], shape.c
                ),
            ));
        }
        let window = self.window(node, nname, shape, Some((w.dims[2], w.dims[3])))?;
        let weights = tensor_f32(w)?;
        let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => broadcast(&tensor_f32(self.init(b, nname)?)?, c_out, nname)?,
            None => vec![0.0; c_out],
        };
        Ok(FloatLayer::Conv {
            window,
            c_out,
            weights,
            bias,
        })
    }

    /// A MaxPool or AveragePool node on `shape` (no indices output, no ceil mode, no dilation).
    fn pool(
        &self,
        node: &pb::NodeProto,
        nname: &str,
        shape: Shape,
    ) -> Result<FloatLayer, ModelError> {
        if node.output.len() > 1 && !node.output[1].is_empty() {
            return Err(structure(nname, "MaxPool indices are not supported"));
        }
        if attr_int(node, "ceil_mode", 0) != 0 {
            return Err(structure(nname, "ceil_mode is not supported"));
        }
        if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|v| *v != 1)) {
            return Err(structure(nname, "dilated pooling is not supported"));
        }
        let window = self.window(node, nname, shape, None)?;
        Ok(if node.op_type == "MaxPool" {
            FloatLayer::MaxPool { window }
        } else {
            FloatLayer::AvgPool {
                window,
                count_include_pad: attr_int(node, "count_include_pad", 0) != 0,
            }
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

/// The shape of a model input (batch dimension dropped) and its full dims (batch 1): rank 1
/// to 4, every dimension known.
fn input_shape(name: &str, t: &pb::type_proto::Tensor) -> Result<(Shape, Vec<usize>), ModelError> {
    let dims: Vec<Option<i64>> = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let fixed = |i: usize| -> Result<usize, ModelError> {
        let v = dims[i].ok_or_else(|| {
            ModelError::Malformed(format!("input '{}' has an unknown dimension {i}", name))
        })?;
        to_usize(v, name, "input dimension")
    };
    let (shape, full) = match dims.len() {
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
                name
            )));
        }
    };
    if dims.len() > 1 && dims[0].is_some_and(|b| b != 1) {
        return Err(ModelError::Malformed(format!(
            "input '{}' has a fixed batch size other than 1",
            name
        )));
    }
    Ok((shape, full))
}
