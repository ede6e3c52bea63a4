"""Trains and exports the digits example models (a development tool: Verity never runs it).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install scikit-learn skl2onnx onnx numpy
    /tmp/venv/bin/python examples/models/digits/train.py

Writes, next to this script:
  mlp.onnx          scikit-learn MLPClassifier 64 -> 32 -> 10 (ReLU), exported by skl2onnx with
                    its usual head (Softmax, ArgMax, ArrayFeatureExtractor, Cast, ZipMap)
  cnn.onnx          Conv(8 filters 3x3, pad 1) -> Relu -> MaxPool 2x2 -> Flatten -> Gemm(10);
                    the filters are fixed random features, the Gemm is trained (logistic
                    regression), built with onnx.helper
  calibration.json  200 training images (pixels 0..16), to choose quantization scales
  test.json         the held-out test set: {"inputs": [[64 floats], ...], "labels": [...]}
  x.json            one test image, as `verity infer --input` takes it
The data is scikit-learn's bundled 8x8 digits set (load_digits), so nothing is downloaded.
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)

digits = load_digits()
x = digits.data.astype(np.float32)  # 1797 x 64, values 0..16
y = digits.target
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)

# --- MLP -------------------------------------------------------------------------------
mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=600, random_state=0)
mlp.fit(x_train, y_train)
print(f"mlp: test accuracy {mlp.score(x_test, y_test):.4f}")
onx = to_onnx(mlp, x_train[:1], target_opset=13)
onnx.save(onx, os.path.join(HERE, "mlp.onnx"))

# --- CNN -------------------------------------------------------------------------------
filters = rng.normal(0, 0.3, size=(8, 1, 3, 3)).astype(np.float32)
conv_bias = rng.normal(0, 0.1, size=(8,)).astype(np.float32)


def features(images):
    imgs = images.reshape(-1, 1, 8, 8)
    padded = np.pad(imgs, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((imgs.shape[0], 8, 8, 8), dtype=np.float32)
    for f in range(8):
        for i in range(8):
            for j in range(8):
                out[:, f, i, j] = (padded[:, 0, i:i + 3, j:j + 3] * filters[f, 0]).sum(axis=(1, 2)) + conv_bias[f]
    out = np.maximum(out, 0)
    pooled = out.reshape(-1, 8, 4, 2, 4, 2).max(axis=(3, 5))
    return pooled.reshape(-1, 128)


head = LogisticRegression(max_iter=5000, C=0.5)
head.fit(features(x_train), y_train)
print(f"cnn: test accuracy {head.score(features(x_test), y_test):.4f}")

nodes = [
    helper.make_node("Reshape", ["input", "shape"], ["image"], name="to_image"),
    helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
    helper.make_node("MaxPool", ["relu"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1),
    helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
]
inits = [
    numpy_helper.from_array(np.array([1, 1, 8, 8], dtype=np.int64), "shape"),
    numpy_helper.from_array(filters, "conv_w"),
    numpy_helper.from_array(conv_bias, "conv_b"),
    numpy_helper.from_array(head.coef_.astype(np.float32), "fc_w"),
    numpy_helper.from_array(head.intercept_.astype(np.float32), "fc_b"),
]
graph = helper.make_graph(
    nodes, "digits_cnn",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 64])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
    inits,
)
cnn = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="verity-examples")
onnx.checker.check_model(cnn)
onnx.save(cnn, os.path.join(HERE, "cnn.onnx"))

# --- data ------------------------------------------------------------------------------
with open(os.path.join(HERE, "calibration.json"), "w") as f:
    json.dump({"inputs": x_train[:200].tolist()}, f)
with open(os.path.join(HERE, "test.json"), "w") as f:
    json.dump({"inputs": x_test.tolist(), "labels": y_test.tolist()}, f)
with open(os.path.join(HERE, "x.json"), "w") as f:
    json.dump(x_test[0].tolist(), f)
print(f"x.json is a {y_test[0]}")
