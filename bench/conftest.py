"""Shared fixtures for the benchmark suites: the same weights for every engine, and the
peers (ONNX Runtime, PyTorch), each skipped with a message when not installed."""

import numpy as np
import pytest

import pyprune
from pyprune import models

from . import peers


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record which BLAS runs pyprune's GEMMs (MKL or OpenBLAS, single-threaded: blas.py
    picks by the CPU), and how much two threads got done at once when the run began
    (bench/cores.py: the 2-thread timings depend on it here); report.py prints both."""
    from pyprune.kernels.cpu import blas

    from .cores import parallel_throughput
    machine_info["pyprune_blas"] = f"{blas.describe()}, single-threaded"
    machine_info["two_threads_throughput"] = round(parallel_throughput(2), 2)


@pytest.fixture(scope="session")
def images():
    return models.synthetic_images(8, seed=0)


@pytest.fixture(scope="session")
def squeezenets(images):
    """Dense SqueezeNet 1.1 and gated copies keeping 75/50/25% of fire-module kernels."""
    nets = {"dense": models.squeezenet1_1(gated=False, seed=0)}
    for p in (0.75, 0.5, 0.25):
        gated = models.squeezenet1_1(gated=True, seed=0)
        nets[f"gated{int(p * 100)}"] = models.calibrate_gates(gated, images, p)
    return nets


def onnxruntime_session(model, threads):
    pytest.importorskip("onnxruntime", reason="peer ONNX Runtime not installed: pip install onnxruntime onnx")
    return peers.onnxruntime_session(model, threads)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    pyprune.set_num_threads(request.param)
    yield request.param
    pyprune.set_num_threads()


def batch_of(images, n):
    return np.ascontiguousarray(images[:n])
