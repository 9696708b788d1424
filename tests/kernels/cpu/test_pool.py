"""Pooling kernels against the NumPy reference: kernel, stride, asymmetric padding,
ceil_mode, count_include_pad, batch and live patterns."""

import numpy as np
from hypothesis import given, settings, strategies as st

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
