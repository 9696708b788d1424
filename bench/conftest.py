"""Shared fixtures for the benchmark suites: the same weights for every engine."""

import numpy as np
import pytest

from pyprune import models
from pyprune.models import synthetic_images


@pytest.fixture(scope="session")
def images():
    return synthetic_images(8, seed=0)


@pytest.fixture(scope="session")
def squeezenets(images):
    """Dense SqueezeNet 1.1 and gated copies at 75/50/25% of fire-module kernels active."""
    nets = {"dense": models.squeezenet1_1(gated=False, seed=0)}
    for p in (0.75, 0.5, 0.25):
        gated = models.squeezenet1_1(gated=True, seed=0)
        nets[f"gated{int(p * 100)}"] = models.calibrate_gates(gated, images, p)
    return nets


def onnxruntime_session(model, threads):
    ort = pytest.importorskip("onnxruntime", reason="peer not installed: pip install onnxruntime onnx")
    from pyprune.convert.onnx_export import to_onnx
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(to_onnx(model).SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.fixture
def batch1(images):
    return np.ascontiguousarray(images[:1])
