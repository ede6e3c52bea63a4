//! The float model run by tract, the reference the quantized model is measured against.

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::error::ModelError;
use crate::onnx::FloatModel;

/// The float logits tract computes for each sample. The graph is cut at the logits first
/// (the classification head is not needed, and tract does not run every head op).
pub fn float_logits(model: &FloatModel, samples: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ModelError> {
    // Tract is a large dependency fed with untrusted files: contain any panic.
    std::panic::catch_unwind(|| run(model, samples))
        .unwrap_or_else(|_| Err(ModelError::Reference("tract panicked on this model".into())))
}

fn run(model: &FloatModel, samples: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ModelError> {
    let err = |e: TractError| ModelError::Reference(format!("{e:#}"));
    let mut proto = model.proto.clone();
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| ModelError::Reference("no graph".into()))?;
    // Keep the nodes up to the logits (the body is a chain, so: until the node producing them).
    let end = graph
        .node
        .iter()
        .position(|n| n.output.contains(&model.logits_name))
        .ok_or_else(|| ModelError::Reference("no node produces the logits".into()))?;
    graph.node.truncate(end + 1);
    graph.output = vec![pb::ValueInfoProto {
        name: model.logits_name.clone(),
        ..Default::default()
    }];
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .map_err(err)?
        .with_input_fact(0, f32::fact(&model.input_dims).into())
        .map_err(err)?
        .into_optimized()
        .map_err(err)?
        .into_runnable()
        .map_err(err)?;
    samples
        .iter()
        .map(|x| {
            let input = tract_ndarray::ArrayD::from_shape_vec(model.input_dims.clone(), x.clone())
                .map_err(|e| ModelError::Reference(e.to_string()))?;
            let out = plan.run(tvec!(input.into_tensor().into())).map_err(err)?;
            let view = out[0].to_array_view::<f32>().map_err(err)?;
            Ok(view.iter().copied().collect())
        })
        .collect()
}
