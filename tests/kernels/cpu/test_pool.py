"""Pooling kernels against the NumPy reference: kernel, stride, asymmetric padding,
ceil_mode, count_include_pad, batch and live patterns."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyprune.kernels.cpu.pool import FLAT_POOL_MAX_WIDTH

from pyprune.ops import OPS

from ...helpers import ON_CPU, PATTERNS, assert_matches, live_act, make_kernel, mask, same_mask


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)),
               draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)))
    attrs = dict(kernel_size=(kh, kw), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                 padding=padding, ceil_mode=draw(st.booleans()))
    h = draw(st.integers(max(1, kh - padding[0] - padding[2]), 10))
    w = draw(st.integers(max(1, kw - padding[1] - padding[3]), 10))
    return dict(attrs=attrs, n=draw(st.integers(1, 3)), c=draw(st.integers(1, 5)), h=h, w=w,
                live=draw(st.sampled_from(PATTERNS)), include_pad=draw(st.booleans()),
                seed=draw(st.integers(0, 2**31)))


def check_pool(op, case, attrs, on=ON_CPU):
    rng = np.random.default_rng(case["seed"])
    n, c = case["n"], case["c"]
    kernel, a = on.kernel(op, attrs, {}, [(c, case["h"], case["w"])])
    live = mask(rng, n, c, case["live"])
    x = live_act(rng.normal(size=(n, c, case["h"], case["w"])), live)
    y = on.run(kernel, [x])
    assert_matches(y.data, OPS[op].reference(a, {}, [x.data]))
    assert same_mask(y.live, live)


@settings(max_examples=200, deadline=None)
@given(pool_cases())
def test_max_pool_matches_reference(case):
    check_pool("MaxPool2d", case, case["attrs"])


@settings(max_examples=100, deadline=None)
@given(pool_cases(), st.integers(0, 1), st.integers(0, 1))
def test_max_pool_2x2_stride_2_matches_reference(case, pad_top, pad_left):
    """The direct 2 x 2 / 2 kernel, with its interior loop and padded/ceil-mode edges."""
    attrs = dict(kernel_size=(2, 2), stride=(2, 2), padding=(pad_top, pad_left, pad_top, pad_left),
                 ceil_mode=case["attrs"]["ceil_mode"])
    check_pool("MaxPool2d", {**case, "h": max(case["h"], 2), "w": max(case["w"], 2)}, attrs)


@settings(max_examples=150, deadline=None)
@given(pool_cases(), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2))
def test_max_pool_3x3_stride_2_matches_reference(case, pad_top, pad_left, pad_bottom, pad_right):
    """The 3 x 3 / 2 kernel: its flat horizontal pass over interior rows of any width, and
    the padded, ceil-mode and too-small edges around them."""
    attrs = dict(kernel_size=(3, 3), stride=(2, 2), padding=(pad_top, pad_left, pad_bottom, pad_right),
                 ceil_mode=case["attrs"]["ceil_mode"])
    h = max(case["h"] + 4 * (case["seed"] % 5), 3 - pad_top - pad_bottom, 1)
    w = max(case["w"] + 4 * (case["seed"] % 7), 3 - pad_left - pad_right, 1)
    check_pool("MaxPool2d", {**case, "h": h, "w": w}, attrs)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_wide_3x3_stride_2_pools_take_the_general_kernel(ceil_mode):
    """Rows wider than FLAT_POOL_MAX_WIDTH outputs go to max_pool, whose own 3-row fast path
    then runs: it too against the reference."""
    h, w = 70, 2 * FLAT_POOL_MAX_WIDTH + 9
    case = dict(n=2, c=3, h=h, w=w, live="all", seed=11)
    check_pool("MaxPool2d", case, dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 0, 1, 0), ceil_mode=ceil_mode))


@settings(max_examples=200, deadline=None)
@given(pool_cases())
def test_avg_pool_matches_reference(case):
    check_pool("AvgPool2d", case, {**case["attrs"], "count_include_pad": case["include_pad"]})


@settings(max_examples=200, deadline=None)
@given(pool_cases(), st.sampled_from(["GlobalAvgPool", "GlobalMaxPool"]))
def test_global_pools_match_reference(case, op):
    check_pool(op, case, {})


def test_ceil_mode_adds_the_partial_window():
    kernel, _ = make_kernel("MaxPool2d", dict(kernel_size=(3, 3), stride=(2, 2), ceil_mode=True), {}, [(1, 6, 6)])
    assert kernel.out_shape == (1, 3, 3)  # floor mode would give 2 x 2
