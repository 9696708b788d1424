"""A dense conv and the max pool that alone reads it, run in bands (kernels/cpu/conv_pool.py),
against the float64 reference on random geometries, and where the plan fuses them."""

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import pyprune
from pyprune import config, models
from pyprune.kernels.cpu.base import Act
from pyprune.kernels.cpu.conv_pool import ConvPoolKernel, banded_fits, channels_first
from pyprune.kernels.cpu.conv_steps import im2col
from pyprune.reference import run_reference

from ...helpers import assert_matches


@st.composite
def stems(draw):
    k, stride, dilation = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 2))
    pk, ps = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    span = dilation * (k - 1) + 1
    size = draw(st.integers(max(span - 2 * padding, 1) + 0, 20))
    conv_out = (size + 2 * padding - span) // stride + 1
    if conv_out < pk:
        size += (pk - conv_out) * stride
    return dict(c_in=draw(st.integers(1, 4)), c_out=draw(st.integers(1, 6)), k=k, stride=stride, padding=padding,
                dilation=dilation, size=size, pool=dict(kernel_size=(pk, pk), stride=(ps, ps),
                padding=(draw(st.sampled_from([0, 0, 1])) if pk > 1 else 0,  # above: not banded
                         draw(st.integers(0, pk - 1)), 0, draw(st.integers(0, pk - 1))),
                ceil_mode=draw(st.booleans())),
                relu=draw(st.booleans()), batch=draw(st.integers(1, 2)), band_pixels=draw(st.integers(1, 40)),
                seed=draw(st.integers(0, 2**31)))


def stem_model(case):
    b = models.GraphBuilder("stem", (case["c_in"], case["size"], case["size"]), seed=case["seed"] % 1000)
    y = b.conv("input", case["c_out"], case["k"], stride=case["stride"], padding=case["padding"],
               dilation=case["dilation"], name="conv")
    if case["relu"]:
        y = b.op("Relu", y, name="relu")
    return b.build([b.op("MaxPool2d", y, name="pool", **case["pool"])])


def conv_magnitude(model, x):
    """The conv on |x| with |weights| and |bias|: the scale of its terms, which a float32 sum
    is accurate to where they cancel (helpers.rel_error; one output of 12 terms came out
    1.3e-7 from 0.0097 on MKL)."""
    absolute = copy.deepcopy(model)
    conv = absolute.node("conv")
    conv.weights = {k: np.abs(v) for k, v in conv.weights.items()}
    absolute.outputs = list(conv.outputs)
    return run_reference(absolute, {"input": np.abs(x)})[0][conv.outputs[0]]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=stems())
def test_banded_conv_pool_matches_reference(case, monkeypatch, conv_path):
    """Any conv geometry and max pool (left/right padding, ceil mode), in bands as small as
    one pool row, gives the reference's answer; the plan fuses exactly where banded_fits
    says, and the pair run one after the other (banded off) agrees too."""
    monkeypatch.setattr(config, "CONV_POOL_BAND_MIN_BYTES", 0)
    monkeypatch.setattr(config, "CONV_POOL_BAND_PIXELS", case["band_pixels"])
    model = stem_model(case)
    sess = pyprune.Session(model)
    fused = [s.kernel for s in sess._steps if isinstance(s.kernel, ConvPoolKernel)]
    info = sess.info
    fits = banded_fits(info.shapes[model.node("conv").outputs[0]], info.attrs["pool"], info.shapes["pool"])
    assert bool(fused) == fits
    x = np.random.default_rng(case["seed"]).normal(size=(case["batch"], case["c_in"], case["size"],
                                                         case["size"])).astype(np.float32)
    expected, _ = run_reference(model, {"input": x})
    y = sess.run(x)
    assert_matches(y, expected["pool"], magnitude=conv_magnitude(model, x))
    if fused:
        fused[0].banded = False
        np.testing.assert_allclose(sess.run(x), y, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(co=st.integers(1, 40), extra=st.integers(0, 9), n=st.integers(1, 40), at=st.integers(0, 9),
       gap=st.integers(0, 9), seed=st.integers(0, 2**31))
def test_channels_first_is_a_transpose_that_writes_nothing_else(co, extra, n, at, gap, seed):
    """The pool's way back to channels first: 8 x 8 blocks in registers (the last along a
    side that is not a multiple of 8 overlapping the one before; scalar below 8),
    any channel count, padded rows and row length, into planes at any offset and stride."""
    cp, plane = co + extra, n + gap
    src = np.random.default_rng(seed).normal(size=n * cp).astype(np.float32)
    dst = np.full(at + co * plane, np.nan, np.float32)
    channels_first(src, cp, co, n, dst, at, plane)
    got = dst[at:].reshape(co, plane)
    np.testing.assert_array_equal(got[:, :n], src.reshape(n, cp)[:, :co].T)
    assert np.isnan(got[:, n:]).all() and np.isnan(dst[:at]).all()


def test_squeezenet_conv1_runs_with_pool1_in_bands():
    """SqueezeNet's stem is the case this is for: conv1 (+ ReLU) and pool1 become conv1's
    step, which stats report with conv1's MACs."""
    model = models.squeezenet1_1(num_classes=10)
    sess = pyprune.Session(model)
    by_node = {s.node.name: s for s in sess._steps}
    assert "pool1" not in by_node and isinstance(by_node["conv1"].kernel, ConvPoolKernel)
    assert by_node["conv1"].kernel.in_place  # no padding: the tiles read the input where it lies
    assert by_node["conv1"].output == "pool1" and sess.placement["pool1"] == "cpu"
    x = models.synthetic_images(2, seed=1)
    y, stats = sess.run_with_stats(x)
    conv1 = next(layer for layer in stats.layers if layer.name == "conv1")
    assert conv1.dense_macs == 64 * 3 * 3 * 3 * 111 * 111
    by_node["conv1"].kernel.banded = False
    np.testing.assert_allclose(sess.run(x), y, rtol=1e-6, atol=1e-6)


def test_live_input_channels_take_the_two_kernels():
    """The bands assume every input channel live; with a live mask the conv and the pool
    run one after the other (and still skip the dead channels)."""
    model = models.squeezenet1_1(num_classes=10)
    sess = pyprune.Session(model)
    kernel = next(s.kernel for s in sess._steps if isinstance(s.kernel, ConvPoolKernel))
    x = models.synthetic_images(1, seed=2)
    live = np.array([[True, False, True]])
    masked = Act(np.ascontiguousarray(x * live[:, :, None, None]), live)
    got = kernel.run([masked], sess._context(None, None))
    want = kernel.run([Act(masked.data, None)], sess._context(None, None))
    np.testing.assert_allclose(got.data, want.data, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reader", ["relu", "output"])
def test_a_conv_output_read_elsewhere_is_not_banded(reader, monkeypatch):
    monkeypatch.setattr(config, "CONV_POOL_BAND_MIN_BYTES", 0)
    b = models.GraphBuilder("shared", (3, 12, 12), seed=1)
    y = b.conv("input", 4, 3, name="conv")
    pooled = b.op("MaxPool2d", y, name="pool", kernel_size=(2, 2), stride=(2, 2))
    outputs = [pooled, b.op("Relu", y, name="also")] if reader == "relu" else [pooled, y]
    sess = pyprune.Session(b.build(outputs))
    assert not any(isinstance(s.kernel, ConvPoolKernel) for s in sess._steps)
