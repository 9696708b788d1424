"""Conv2d and GatedConv2d CPU kernels against the NumPy reference on random shapes,
geometries and live/active patterns."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyprune.ops.conv import conv2d_reference, gate_cut, gate_reference
from pyprune.kernels.cpu.base import Act
from pyprune.kernels.cpu.conv import conv_direct
from pyprune.kernels.cpu.conv_gemm import ADD_FULL_BIAS, RELU, SHIFTED
from pyprune.kernels.cpu.conv_steps import im2col, im2col_shifted
from pyprune.kernels.cpu.gated_conv import _dense_layer, pack_gate, unpack_gate
from pyprune.kernels.cpu.window import valid_range

from ...helpers import ON_CPU, ON_CPU_PYTHON_GEMM, PATTERNS, assert_matches, live_act, make_kernel, mask


@st.composite
def conv_cases(draw, depthwise=None):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    cin_g = draw(st.integers(1, 5))
    cout_g = draw(st.integers(1, 5))
    if depthwise or (depthwise is None and draw(st.booleans()) and draw(st.booleans())):
        groups, cin_g, cout_g = draw(st.integers(1, 6)), 1, draw(st.sampled_from([1, 2]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - padding[0] - padding[2]), 9))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - padding[1] - padding[3]), 9))
    return dict(n=draw(st.integers(1, 3)), c=groups * cin_g, h=h, w=w, attrs=dict(
        out_channels=groups * cout_g, kernel_size=(kh, kw), stride=stride, padding=padding,
        dilation=dilation, groups=groups), live=draw(st.sampled_from(PATTERNS)),
        active=draw(st.sampled_from(PATTERNS + ("none_given",))), seed=draw(st.integers(0, 2**31)))


def magnitude(x, w, a):
    """The conv of |x| with |w|: the size of the terms each output sums."""
    return conv2d_reference(np.abs(x), np.abs(w["weight"]), np.abs(w["bias"]), a["stride"],
                            a["padding"], a["dilation"], a["groups"])


def conv_weights(rng, case):
    a = case["attrs"]
    shape = (a["out_channels"], case["c"] // a["groups"], *a["kernel_size"])
    return {"weight": rng.normal(size=shape).astype(np.float32),
            "bias": rng.normal(size=a["out_channels"]).astype(np.float32)}


def check_conv2d(case, on):
    rng = np.random.default_rng(case["seed"])
    a, n = case["attrs"], case["n"]
    w = conv_weights(rng, case)
    kernel, _ = on.kernel("Conv2d", a, w, [(case["c"], case["h"], case["w"])])
    live = mask(rng, n, case["c"], case["live"])
    x = live_act(rng.normal(size=(n, case["c"], case["h"], case["w"])), live)
    active = None if case["active"] == "none_given" else mask(rng, n, a["out_channels"], case["active"])
    y = on.convolve(kernel, x, active)
    expected = conv2d_reference(x.data, w["weight"], w["bias"], a["stride"], a["padding"],
                                a["dilation"], a["groups"])
    if active is not None:
        expected = expected * active[:, :, None, None]
        assert (y[~active] == 0.0).all(), "an inactive channel must be exactly 0.0"
    assert_matches(y, expected, magnitude=magnitude(x.data, w, a))


@settings(max_examples=200, deadline=None)
@given(conv_cases())
def test_conv2d_matches_reference(case):
    check_conv2d(case, ON_CPU)
    check_conv2d(case, ON_CPU_PYTHON_GEMM)


@settings(max_examples=100, deadline=None)
@given(conv_cases(depthwise=False))
def test_direct_kernel_matches_reference_for_any_groups(case):
    """The direct kernel also serves groups == 1 correctly (it is the generic fallback)."""
    rng = np.random.default_rng(case["seed"])
    a, n = case["attrs"], case["n"]
    w = conv_weights(rng, case)
    kernel, _ = make_kernel("Conv2d", a, w, [(case["c"], case["h"], case["w"])])
    live = mask(rng, n, case["c"], case["live"])
    active = mask(rng, n, a["out_channels"], "random")
    x = live_act(rng.normal(size=(n, case["c"], case["h"], case["w"])), live)
    out = np.empty((n, *kernel.out_shape), np.float32)
    conv_direct(x.data, w["weight"], w["bias"], live, active, *kernel.geometry, a["groups"], out)
    expected = conv2d_reference(x.data, w["weight"], w["bias"], a["stride"], a["padding"],
                                a["dilation"], a["groups"]) * active[:, :, None, None]
    assert_matches(out, expected, magnitude=magnitude(x.data, w, a))


@st.composite
def same_width_cases(draw):
    """Stride 1, dilation 1 and left + right padding = kw - 1: the output is as wide as the
    input, the case im2col_shifted serves (any top/bottom padding)."""
    case = draw(conv_cases())
    a = case["attrs"]
    kh, kw = a["kernel_size"]
    left = draw(st.integers(0, kw - 1))
    a.update(stride=(1, 1), dilation=(1, 1), groups=1, out_channels=draw(st.integers(1, 5)),
             padding=(draw(st.integers(0, kh - 1)), left, draw(st.integers(0, kh - 1)), kw - 1 - left))
    case["c"] = draw(st.integers(1, 5))
    case["h"] = max(case["h"], kh)
    return case


@settings(max_examples=200, deadline=None)
@given(same_width_cases())
def test_shifted_im2col_equals_im2col_and_the_conv_the_reference(case):
    rng = np.random.default_rng(case["seed"])
    a = case["attrs"]
    kernel, _ = make_kernel("Conv2d", a, conv_weights(rng, case), [(case["c"], case["h"], case["w"])])
    assert kernel.shifted
    live = mask(rng, 1, case["c"], case["live"])[0]
    x = rng.normal(size=(case["c"], case["h"], case["w"])).astype(np.float32)
    live_idx = np.flatnonzero(live)
    (kh, kw), (ho, wo) = a["kernel_size"], kernel.out_shape[1:]
    expected = np.empty((len(live_idx) * kh * kw, ho * wo), np.float32)
    im2col(x, live_idx, kh, kw, *kernel.geometry, ho, wo, expected)
    got = np.full_like(expected, np.nan)
    im2col_shifted(x, live_idx, kh, kw, kernel.geometry[2], kernel.geometry[3], ho, wo, got)
    np.testing.assert_array_equal(got, expected)
    check_conv2d(case, ON_CPU)


def test_settings_changed_after_a_call_reach_the_next_one():
    """The compiled conv reads its settings from conv_plan and its arrays from gemm_args,
    made once: turning im2col_shifted off (ab_flag), fusing a ReLU or handing the epilogue
    to a pool after a first call must change the next call."""
    rng = np.random.default_rng(3)
    a = dict(out_channels=4, kernel_size=(3, 3), padding=(1, 1, 1, 1))
    w = {"weight": rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "bias": rng.normal(size=4).astype(np.float32)}
    kernel, parsed = make_kernel("Conv2d", a, w, [(2, 5, 5)])
    x = live_act(rng.normal(size=(1, 2, 5, 5)), None)
    dense = conv2d_reference(x.data, w["weight"], w["bias"], parsed["stride"], parsed["padding"], parsed["dilation"], 1)
    assert kernel.shifted and kernel.conv_plan[SHIFTED] == 1
    assert_matches(ON_CPU.run(kernel, [x]).data, dense)
    kernel.shifted = False
    assert kernel.conv_plan[SHIFTED] == 0
    assert_matches(ON_CPU.run(kernel, [x]).data, dense)
    kernel.fused_relu = True
    assert kernel.conv_plan[RELU] == 1
    assert_matches(ON_CPU.run(kernel, [x]).data, np.maximum(dense, 0.0))
    bias, relu = kernel.hand_epilogue_to_pool()
    assert relu and not kernel.fused_relu and kernel.conv_plan[ADD_FULL_BIAS] == 0
    unbiased = dense - w["bias"][None, :, None, None]
    assert_matches(ON_CPU.run(kernel, [x]).data, unbiased)
    active = np.array([[True, False, True, True]])  # some kernels: the bias goes with the scatter
    assert_matches(ON_CPU.convolve(kernel, x, active), unbiased * active[:, :, None, None])


@pytest.mark.parametrize("hidden", [0, 3])
def test_packed_gate_unpacks_to_its_weights(hidden):
    rng = np.random.default_rng(hidden)
    c, groups = 5, 4
    wh, bh = rng.normal(size=(hidden, c)), rng.normal(size=hidden)
    wg, bg = rng.normal(size=(groups, hidden or c)), rng.normal(size=groups)
    use_max, *weights = unpack_gate(c, *pack_gate(True, wh, bh, wg, bg))
    assert use_max
    for got, want in zip(weights, (wh, bh, wg, bg)):
        np.testing.assert_array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize("inputs, outputs", [(1, 1), (7, 3), (64, 256), (512, 64)])
def test_gate_layer_sums_in_input_order(inputs, outputs):
    """The gate's layers add each output's terms in input order, in float64, exactly as a
    plain loop does (no reordered sum), skipping inputs of 0 (dead channels)."""
    rng = np.random.default_rng(inputs)
    w_t = rng.normal(size=(inputs, outputs)).astype(np.float32)
    b = rng.normal(size=outputs).astype(np.float32)
    feat = rng.normal(size=inputs) * (rng.random(inputs) < 0.6)
    want = np.empty(outputs)
    for j in range(outputs):
        acc = float(b[j])
        for k in range(inputs):
            acc += float(w_t[k, j]) * feat[k]
        want[j] = acc
    got = np.empty(outputs)
    _dense_layer(w_t, b, feat, got)
    np.testing.assert_array_equal(got, want)


@st.composite
def gated_cases(draw):
    case = draw(conv_cases())
    a = case["attrs"]
    sizes = [g for g in range(1, a["out_channels"] + 1) if a["out_channels"] % g == 0]
    a.update(group_size=draw(st.sampled_from(sizes)), gate_pool=draw(st.sampled_from(["avg", "max"])),
             gate_hidden=draw(st.sampled_from([0, 0, 3])), threshold=draw(st.sampled_from([0.5, 0.3, 0.8])))
    case["gates"] = draw(st.sampled_from(PATTERNS + ("natural",)))
    return case


def gate_weights(rng, case, n_groups):
    """Gate weights; for a named pattern the biases are +-50 so the decisions are clear."""
    a, c = case["attrs"], case["c"]
    w = {}
    if a["gate_hidden"]:
        w["gate_hidden_weight"] = rng.normal(size=(a["gate_hidden"], c)).astype(np.float32)
        w["gate_hidden_bias"] = rng.normal(size=a["gate_hidden"]).astype(np.float32)
    scale = 0.01 if case["gates"] != "natural" else 1.0
    w["gate_weight"] = (scale * rng.normal(size=(n_groups, a["gate_hidden"] or c))).astype(np.float32)
    if case["gates"] == "natural":
        w["gate_bias"] = rng.normal(size=n_groups).astype(np.float32)
    else:
        on = mask(rng, 1, n_groups, case["gates"])[0]
        w["gate_bias"] = np.where(on, 50.0, -50.0).astype(np.float32)
    return w


def check_gated_conv2d(case, on):
    rng = np.random.default_rng(case["seed"])
    a, n = case["attrs"], case["n"]
    n_groups = a["out_channels"] // a["group_size"]
    w = {**conv_weights(rng, case), **gate_weights(rng, case, n_groups)}
    kernel, parsed = on.kernel("GatedConv2d", a, w, [(case["c"], case["h"], case["w"])])
    live = mask(rng, n, case["c"], case["live"])
    x = live_act(rng.normal(size=(n, case["c"], case["h"], case["w"])), live)
    y = on.run(kernel, [x])
    z, expected_mask = gate_reference(parsed, w, x.data)
    clear = np.repeat(np.abs(z - gate_cut(parsed["threshold"])) > 1e-4, a["group_size"], axis=1)
    assert (y.live == expected_mask)[clear].all(), "gate decisions differ from the reference"
    dense = conv2d_reference(x.data, w["weight"], w["bias"], a["stride"], a["padding"], a["dilation"], a["groups"])
    assert (y.data[~y.live] == 0.0).all(), "an inactive kernel must give exactly 0.0"
    assert_matches(y.data, dense * y.live[:, :, None, None], magnitude=magnitude(x.data, w, a))
    if case["gates"] == "all":
        assert y.live.all()
    if case["gates"] == "none":
        assert not y.live.any() and not y.data.any()


@settings(max_examples=200, deadline=None)
@given(gated_cases())
def test_gated_conv2d_is_masked_dense_conv(case):
    check_gated_conv2d(case, ON_CPU)
    check_gated_conv2d(case, ON_CPU_PYTHON_GEMM)


@pytest.mark.parametrize("on", [ON_CPU, ON_CPU_PYTHON_GEMM], ids=["one_call", "python_gemm"])
def test_gated_conv_takes_a_strided_input(on):
    """The gate reads planes of a C-contiguous view; a strided input must give the same
    decisions and outputs as its contiguous copy, on both routes."""
    rng = np.random.default_rng(2)
    a = dict(out_channels=4, kernel_size=(3, 3), padding=(1, 1, 1, 1))
    w = {"weight": rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "bias": np.ones(4, np.float32),
         "gate_weight": rng.normal(size=(4, 2)).astype(np.float32),
         "gate_bias": np.array([-2, -1, 1, 2], np.float32)}
    kernel, _ = on.kernel("GatedConv2d", a, w, [(2, 5, 5)])
    strided = rng.normal(size=(1, 2, 5, 10)).astype(np.float32)[..., ::2]
    got = on.run(kernel, [Act(strided)])
    want = on.run(kernel, [Act(np.ascontiguousarray(strided))])
    np.testing.assert_array_equal(got.live, want.live)
    np.testing.assert_array_equal(got.data, want.data)


def check_threshold_override(on):
    rng = np.random.default_rng(1)
    a = dict(out_channels=4, kernel_size=(3, 3), padding=(1, 1, 1, 1))
    w = {"weight": rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "bias": np.ones(4, np.float32),
         "gate_weight": np.zeros((4, 2), np.float32), "gate_bias": np.array([-2, -1, 1, 2], np.float32)}
    kernel, _ = on.kernel("GatedConv2d", a, w, [(2, 5, 5)])
    x = live_act(rng.normal(size=(1, 2, 5, 5)), None)
    assert on.run(kernel, [x]).live.tolist() == [[False, False, True, True]]
    assert on.run(kernel, [x], threshold=0.0).live.all()
    assert not on.run(kernel, [x], threshold=1.0).live.any()
    # sigmoid(-1) = 0.269: a threshold of 0.25 switches the second kernel on.
    assert on.run(kernel, [x], threshold=0.25).live.tolist() == [[False, True, True, True]]


def test_threshold_override_turns_gates_off_and_on():
    check_threshold_override(ON_CPU)


@settings(deadline=None)
@given(pad=st.integers(-6, 6), tap=st.integers(0, 4), stride=st.integers(1, 3), size=st.integers(1, 8),
       out_size=st.integers(0, 8))
def test_valid_range_is_exactly_the_in_bounds_positions(pad, tap, stride, size, out_size):
    """Also where the padding covers every output position (a band of a conv's first rows),
    which once gave lo > out_size and an im2col that wrote past its rows."""
    lo, hi = valid_range(pad, tap, stride, size, out_size)
    inside = [o for o in range(out_size) if 0 <= o * stride - pad + tap < size]
    assert 0 <= lo <= hi <= out_size
    assert list(range(lo, hi)) == inside or (not inside and lo == hi)
