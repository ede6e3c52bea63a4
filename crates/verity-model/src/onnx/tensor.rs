//! Reading node attributes and tensors from the protobuf, bounded and checked: every size is
//! validated before anything is allocated from it.

use tract_onnx::pb;

use super::{MAX_TENSOR_ELEMENTS, Shape};
use crate::error::ModelError;

pub(super) fn structure(node: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Structure {
        node: node.into(),
        reason: reason.into(),
    }
}

pub(super) fn node_name(n: &pb::NodeProto, idx: usize) -> String {
    if n.name.is_empty() {
        format!("#{idx} ({})", n.op_type)
    } else {
        n.name.clone()
    }
}

pub(super) fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

pub(super) fn attr_int(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map(|a| a.i).unwrap_or(default)
}

pub(super) fn attr_float(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map(|a| a.f).unwrap_or(default)
}

pub(super) fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

pub(super) fn to_usize(v: i64, node: &str, what: &str) -> Result<usize, ModelError> {
    usize::try_from(v)
        .ok()
        .filter(|v| *v <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| structure(node, format!("{what} {v} is out of range")))
}

/// Element count of a tensor's dims, refusing negative or oversized ones.
pub(super) fn numel(dims: &[i64], name: &str) -> Result<usize, ModelError> {
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

pub(super) const FLOAT: i32 = 1;
pub(super) const INT64: i32 = 7;
pub(super) const DOUBLE: i32 = 11;

/// A float tensor's values (FLOAT or DOUBLE, raw or typed storage), all finite.
pub(super) fn tensor_f32(t: &pb::TensorProto) -> Result<Vec<f32>, ModelError> {
    let n = numel(&t.dims, &t.name)?;
    if t.data_location == Some(1) {
        return Err(ModelError::Malformed(format!(
            "tensor '{}' uses external data, which Verity does not read",
            t.name
        )));
    }
    let values: Vec<f32> = match t.data_type {
        FLOAT if !t.raw_data.is_empty() => {
            raw_values(t, n, "floats", |c: [u8; 4]| f32::from_le_bytes(c))?
        }
        FLOAT => t.float_data.clone(),
        DOUBLE if !t.raw_data.is_empty() => {
            raw_values(t, n, "doubles", |c: [u8; 8]| f64::from_le_bytes(c) as f32)?
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
pub(super) fn tensor_i64(t: &pb::TensorProto) -> Result<Vec<i64>, ModelError> {
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

/// A bias of `n` values from a tensor of n values or one (broadcast).
pub(super) fn broadcast(b: &[f32], n: usize, node: &str) -> Result<Vec<f32>, ModelError> {
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
pub(super) fn reshape(from: Shape, target: &[i64], node: &str) -> Result<Shape, ModelError> {
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

/// `n` little-endian values of `W` bytes each from a tensor's raw data (`what` names them in
/// the error when the length is wrong).
fn raw_values<const W: usize>(
    t: &pb::TensorProto,
    n: usize,
    what: &str,
    value: impl Fn([u8; W]) -> f32,
) -> Result<Vec<f32>, ModelError> {
    if t.raw_data.len() != n * W {
        return Err(ModelError::Malformed(format!(
            "tensor '{}' has {} bytes for {n} {what}",
            t.name,
            t.raw_data.len()
        )));
    }
    Ok(t.raw_data
        .chunks_exact(W)
        .map(|c| value(c.try_into().expect("chunks of W bytes")))
        .collect())
}
