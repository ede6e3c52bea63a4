"""Writes the synthetic MNIST-size MLP (784 -> 128 -> 10, random weights) as ONNX, with inputs.

    python scripts/mnist_size_model.py DIR     # DIR/mnist.onnx, DIR/calibration.json, DIR/x.json

A development tool for the EZKL comparison (`scripts/ezkl_compare.sh`): the issue's third
benchmark model, the same shape as `verity-model`'s inference bench builds in code, as a file
both provers can read. Weights are random (seeded) normal values scaled by 1/sqrt(fan-in), so
the quantized model uses its int8 range; inputs are pixel-like values in [0, 1]. Needs numpy
and onnx (the comparison's venv has both).
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(784128)
    w1 = (rng.standard_normal((784, 128)) / np.sqrt(784)).astype(np.float32)
    b1 = (rng.standard_normal(128) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((128, 10)) / np.sqrt(128)).astype(np.float32)
    b2 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["a"]),
        helper.make_node("MatMul", ["a", "w2"], ["o"]),
        helper.make_node("Add", ["o", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mnist_size_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 784])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "mnist.onnx"))
    samples = rng.random((20, 784)).round(3).tolist()
    with open(os.path.join(out, "calibration.json"), "w") as f:
        json.dump({"inputs": samples}, f)
    with open(os.path.join(out, "x.json"), "w") as f:
        json.dump(samples[0], f)


if __name__ == "__main__":
    main()
