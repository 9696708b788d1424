"""Whole networks against ONNX Runtime on the same weights (exported with pyprune's
ONNX writer): plain SqueezeNet 1.1 at 224 x 224, a ResNet-style block with Add and
BatchNorm, and gated networks (ONNX computes every kernel and multiplies by the mask)."""

import pytest

import pyprune
from pyprune import models

from .helpers import assert_matches
from .test_session import images

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test extra: pip install -e '.[test]'")
pytest.importorskip("onnx")
from pyprune.converters.onnx_export import to_onnx  # noqa: E402


def run_ort(model, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(to_onnx(model).SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize("build, batch", [
    (models.squeezenet1_1, 1), (models.squeezenet1_1, 2), (models.resnet_block, 4), (models.tiny_net, 3),
])
def test_plain_networks_match_onnxruntime(build, batch):
    model = build(gated=False)
    x = images(model, batch)
    assert_matches(pyprune.Session(model).run(x), run_ort(model, x), tol=1e-4)


@pytest.mark.parametrize("build", [models.resnet_block, models.tiny_net])
def test_gated_networks_match_onnxruntime(build):
    model = build(gated=True)
    x = images(model, 4)
    assert_matches(pyprune.Session(model).run(x), run_ort(model, x), tol=1e-4)


def test_gated_squeezenet_matches_onnxruntime():
    model = models.squeezenet1_1(gated=True)
    x = images(model, 2)
    models.calibrate_gates(model, x, 0.5)
    y, stats = pyprune.Session(model).run_with_stats(x)
    assert 0.25 < stats.executed_fraction.mean() < 0.5
    assert_matches(y, run_ort(model, x), tol=1e-4)
