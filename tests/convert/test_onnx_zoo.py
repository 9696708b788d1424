"""Older model-zoo CNNs that ship inside the onnx package (backend/test/data/light: opset 9
files of AlexNet, DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19,
ZFNet-512, their weights replaced by constants): each imports and matches ONNX Runtime on
the logits (the input of the final Softmax; with constant weights the logits of all classes
nearly tie, so the Softmax itself amplifies float32 rounding), or is refused with the reason."""

import glob
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

import pyprune  # noqa: E402
from onnx import helper  # noqa: E402
from pyprune.converters.onnx_import import import_onnx  # noqa: E402

from ..helpers import assert_matches  # noqa: E402

ZOO = sorted(glob.glob(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", "*.onnx")))
REFUSED = {"light_shufflenet.onnx": r"\(Transpose\): operator not supported"}  # channel shuffle: 5-D reshape and transpose


@pytest.mark.parametrize("path", ZOO, ids=[os.path.basename(p) for p in ZOO])
def test_zoo_model(path):
    name = os.path.basename(path)
    proto = onnx.load(path)
    if name in REFUSED:
        with pytest.raises(pyprune.ModelError, match=REFUSED[name]):
            import_onnx(proto, name)
        return
    model = import_onnx(proto, name)
    last = proto.graph.node[-1]
    logits = last.input[0] if last.op_type == "Softmax" else last.output[0]
    probe = onnx.ModelProto.FromString(proto.SerializeToString())
    probe.graph.output.append(helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, *next(iter(model.inputs.values())))).astype(np.float32)
    expected = sess.run([logits], {sess.get_inputs()[0].name: x})[0]
    model.outputs = [logits]
    assert_matches(pyprune.Session(model).run(x).reshape(expected.shape), expected, tol=1e-4)


def test_zoo_is_there():
    assert len(ZOO) >= 8, "the onnx package no longer ships the light model zoo"
