"""Per layer: every convolution shape of SqueezeNet 1.1 (batch 1) with 100/75/50/25% of
its output kernels active and of its input channels live, pyprune against ONNX Runtime
running the same dense layer. report.py turns these into speed-ups and into how much of
the MAC reduction became time."""

import numpy as np
import pytest

from pyprune import models
from pyprune.kernels.cpu import Act

from .conftest import onnxruntime_session

NET = models.squeezenet1_1(seed=0)
INFO = __import__("pyprune").analyze(NET)
CONVS = [n for n in INFO.order if n.op == "Conv2d"]
FRACTIONS = [1.0, 0.75, 0.5, 0.25]


@pytest.fixture(autouse=True)
def one_thread():
    """Layers are compared on one thread: pyprune's BLAS and ONNX Runtime alike."""
    import pyprune
    pyprune.set_num_threads(1)
    yield
    pyprune.set_num_threads()


def layer_input(node, fraction, seed=0):
    rng = np.random.default_rng(seed)
    c, h, w = INFO.shapes[node.inputs[0]]
    x = rng.normal(size=(1, c, h, w)).astype(np.float32)
    live = np.zeros((1, c), bool)
    live[0, rng.permutation(c)[:max(1, round(c * fraction))]] = True
    x *= live[:, :, None, None]
    return Act(x, None if fraction == 1.0 else live)


def single_conv(node):
    from pyprune.graph import Model, Node
    return Model({"x": INFO.shapes[node.inputs[0]]}, [node.name],
                 [Node(node.name, "Conv2d", ["x"], [node.name], dict(node.attrs), node.weights)])


@pytest.mark.parametrize("fraction", FRACTIONS, ids=[f"{int(f * 100)}pct" for f in FRACTIONS])
@pytest.mark.parametrize("node", CONVS, ids=[n.name for n in CONVS])
def test_pyprune_layer(benchmark, node, fraction):
    from pyprune.kernels.cpu.conv import ConvKernel
    kernel = ConvKernel(node, INFO.attrs[node.name], [INFO.shapes[node.inputs[0]]], INFO.shapes[node.outputs[0]])
    x = layer_input(node, fraction)
    co = INFO.shapes[node.outputs[0]][0]
    active = None
    if fraction < 1.0:
        active = np.zeros((1, co), bool)
        active[0, np.random.default_rng(1).permutation(co)[:max(1, round(co * fraction))]] = True
    kernel.convolve(x, active)
    executed, dense = kernel.macs([x], Act(None, active if active is not None else np.ones((1, co), bool)))
    benchmark.extra_info.update(layer=node.name, fraction=fraction, executed_macs=int(executed[0]), dense_macs=int(dense))
    benchmark.group = f"layer {node.name}"
    benchmark(kernel.convolve, x, active)


@pytest.mark.parametrize("node", CONVS, ids=[n.name for n in CONVS])
def test_onnxruntime_layer(benchmark, node):
    sess = onnxruntime_session(single_conv(node), 1)
    feed = {"x": layer_input(node, 1.0).data}
    sess.run(None, feed)
    benchmark.extra_info.update(layer=node.name, dense_macs=0)
    benchmark.group = f"layer {node.name}"
    benchmark(sess.run, None, feed)
