"""SqueezeNet 1.1 (224 x 224, batch 1): pyprune dense and gated against ONNX Runtime on
the same weights. Run: python -m pytest bench --benchmark-json=bench/results.json
then python bench/report.py bench/results.json for the ratio table."""

import pytest

import pyprune

from .conftest import onnxruntime_session

NETS = ["dense", "gated75", "gated50", "gated25"]


@pytest.mark.parametrize("net", NETS)
def test_pyprune(benchmark, squeezenets, batch1, net):
    sess = pyprune.Session(squeezenets[net])
    sess.run(batch1)  # compile or load kernels before timing
    _, stats = sess.run_with_stats(batch1)
    benchmark.extra_info["executed_macs_fraction"] = float(stats.executed_fraction.mean())
    benchmark.group = "squeezenet1_1 batch 1"
    benchmark(sess.run, batch1)


@pytest.mark.parametrize("net", ["dense", "gated50", "gated25"])
@pytest.mark.parametrize("threads", [1, 2])
def test_onnxruntime(benchmark, squeezenets, batch1, net, threads):
    """ORT runs the dense model, and the exported gated model (every kernel computed, then masked)."""
    sess = onnxruntime_session(squeezenets[net], threads)
    feed = {"input": batch1}
    sess.run(None, feed)
    benchmark.group = "squeezenet1_1 batch 1"
    benchmark(sess.run, None, feed)
