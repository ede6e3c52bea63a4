"""Trains and exports the iris example model (a development tool: Verity never runs it).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install scikit-learn skl2onnx onnx numpy
    /tmp/venv/bin/python examples/models/iris/train.py

A tabular model with four features, small enough for a *public* input (the VM's public stack
holds 16 values): `verity model import mlp.onnx --calibrate calibration.json --public-input`.
Writes, next to this script:
  mlp.onnx          scikit-learn MLPClassifier 4 -> 16 -> 3 (ReLU), exported by skl2onnx with
                    its usual head; the class labels are the species names
  calibration.json  the training set's measurements (cm), to choose quantization scales
  test.json         the held-out test set: {"inputs": [[4 floats], ...], "labels": [...]}
  x.json            one test flower, as `verity infer --input` takes it
The data is scikit-learn's bundled iris set (load_iris), so nothing is downloaded.
"""
import json
import os

import numpy as np
import onnx
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = os.path.dirname(os.path.abspath(__file__))

iris = load_iris()
x = iris.data.astype(np.float32)  # 150 x 4: sepal length, sepal width, petal length, petal width (cm)
y = np.array([iris.target_names[t] for t in iris.target])
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=1, stratify=y)

mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3000, random_state=0)
mlp.fit(x_train, y_train)
print(f"mlp: test accuracy {mlp.score(x_test, y_test):.4f}")
onx = to_onnx(mlp, x_train[:1], target_opset=13)
onnx.save(onx, os.path.join(HERE, "mlp.onnx"))

with open(os.path.join(HERE, "calibration.json"), "w") as f:
    json.dump({"inputs": x_train.tolist()}, f)
with open(os.path.join(HERE, "test.json"), "w") as f:
    json.dump({"inputs": x_test.tolist(), "labels": y_test.tolist()}, f)
with open(os.path.join(HERE, "x.json"), "w") as f:
    json.dump(x_test[0].tolist(), f)
print(f"x.json is a {y_test[0]}")
