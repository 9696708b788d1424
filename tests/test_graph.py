"""Graph validation of in-memory models and the errors and checks at run time."""

import numpy as np
import pytest

import pyprune
from pyprune import InputError, ModelError, models
from pyprune.graph import Model, Node


def test_nodes_out_of_order_are_sorted_topologically():
    model = models.tiny_net()
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32)
    expected = pyprune.Session(model).run(x)
    shuffled = Model(model.inputs, model.outputs, list(reversed(model.nodes)))
    np.testing.assert_array_equal(pyprune.Session(shuffled).run(x), expected)


def test_partial_live_inference():
    info = pyprune.analyze(models.tiny_net(gated=True))
    assert not info.partial["conv1"] and info.partial["gconv2"] and info.partial["relu3"]
    assert not info.partial["fc"]
    assert not any(pyprune.analyze(models.tiny_net(gated=False)).partial.values())


def simple(nodes, inputs=None, outputs=("y",)):
    return Model(inputs or {"x": (2, 4, 4)}, list(outputs), nodes)


@pytest.mark.parametrize("model, fragments", [
    (simple([Node("a", "Relu", ["x"], ["y"]), Node("b", "Relu", ["x"], ["y"])]), ["'y' is produced twice"]),
    (simple([Node("a", "Relu", ["x"], ["y"]), Node("a", "Relu", ["y"], ["z"])]), ["node name used twice"]),
    (simple([Node("a", "Add", ["x"], ["y"])]), ["node 'a' (Add)", "takes 2 inputs"]),
    (simple([Node("a", "Relu", ["x"], ["y", "z"])]), ["exactly one output"]),
    (simple([Node("a", "Relu", ["x"], ["y"])], outputs=("nope",)), ["'nope' is not produced"]),
    (simple([Node("a", "Relu", ["x"], ["y"])], inputs={"x": (2, 0, 4)}), ["input 'x'", "positive"]),
    (simple([Node("a", "Linear", ["x"], ["y"], {"out_features": 3},
                  {"weight": np.zeros((3, 2), np.float32), "bias": np.zeros(3, np.float32)})]), ["(F,) feature vectors"]),
    (simple([Node("a", "MaxPool2d", ["x"], ["y"], {"kernel_size": (9, 9)})]), ["field 'kernel_size'", "does not fit"]),
    (simple([Node("a", "MaxPool2d", ["x"], ["y"], {"kernel_size": (2, 2), "padding": (2, 0, 0, 0)})]), ["field 'padding'"]),
    (simple([Node("a", "Conv2d", ["x"], ["y"], {"out_channels": 3, "kernel_size": (1, 1), "groups": 2})]), ["not divisible"]),
    (simple([Node("a", "Clip", ["x"], ["y"], {"min": 2.0, "max": 1.0})]), ["field 'min'"]),
    (simple([Node("a", "GatedConv2d", ["x"], ["y"], {"out_channels": 4, "kernel_size": (1, 1), "gate_pool": "median"})]),
     ["field 'gate_pool'", "avg"]),
    (simple([Node("a", "GatedConv2d", ["x"], ["y"], {"out_channels": 4, "kernel_size": (1, 1), "threshold": 1.5})]),
     ["field 'threshold'"]),
    (simple([Node("a", "Conv2d", ["x"], ["y"], {"out_channels": 2, "kernel_size": (1, 1)},
                  {"weight": np.full((2, 2, 1, 1), np.inf, np.float32), "bias": np.zeros(2, np.float32)})]), ["NaN or Inf"]),
    (simple([Node("a", "BatchNorm2d", ["x"], ["y"], {}, {k: (np.ones(2) * v).astype(np.float32) for k, v in
                                                         dict(scale=1, bias=0, mean=0, var=-1).items()})]), ["field 'var'"]),
])
def test_invalid_graphs_are_rejected(model, fragments):
    with pytest.raises(ModelError) as err:
        pyprune.Session(model)
    for f in fragments:
        assert f in str(err.value), str(err.value)


def test_batchnorm_after_gated_conv_must_be_its_only_reader():
    model = models.resnet_block(gated=True)
    bn = next(n for n in model.nodes if n.op == "BatchNorm2d" and n.inputs == ["conv_b"])
    model.outputs.append("conv_b")
    with pytest.raises(ModelError, match="mask applies after this batch norm"):
        pyprune.Session(model)
    assert bn.name in str(pytest.raises(ModelError, pyprune.analyze, model).value)


@pytest.mark.parametrize("x, fragment", [
    (np.zeros((1, 3, 16, 16)), "must be float32"),
    (np.zeros((1, 3, 8, 8), np.float32), "shape (N, 3, 16, 16)"),
    (np.zeros((3, 16, 16), np.float32), "shape (N, 3, 16, 16)"),
    (np.zeros((0, 3, 16, 16), np.float32), "N >= 1"),
    ([[1.0]], "numpy array"),
    (np.full((1, 3, 16, 16), np.nan, np.float32), "NaN"),
    ({"other": np.zeros((1, 3, 16, 16), np.float32)}, "unknown ['other']"),
])
def test_bad_run_inputs(x, fragment):
    with pytest.raises(InputError) as err:
        pyprune.Session(models.tiny_net()).run(x)
    assert fragment in str(err.value)


@pytest.mark.parametrize("threshold, fragment", [
    (1.5, "in [0, 1]"), (float("nan"), "in [0, 1]"), ("high", "in [0, 1]"), ({"conv1": 0.5}, "not gated"),
])
def test_bad_thresholds(threshold, fragment):
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        pyprune.Session(models.tiny_net()).run(np.zeros((1, 3, 16, 16), np.float32), threshold=threshold)
