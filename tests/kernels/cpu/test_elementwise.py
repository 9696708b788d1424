"""Element-wise activations, Softmax, BatchNorm, Dropout against the NumPy reference,
and their live-channel rules."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyprune.ops import OPS

from ...helpers import ON_CPU, PATTERNS, assert_matches, live_act, mask, same_mask

CASES = {
    "Relu": {}, "Relu6": {}, "Clip": {"min": -0.5, "max": 1.5}, "LeakyRelu": {"alpha": 0.2},
    "Sigmoid": {}, "Softmax": {}, "Dropout": {"ratio": 0.3}, "BatchNorm2d": {"epsilon": 1e-3},
    "Scale": {}, "AddBias": {}, "LRN": {"size": 3, "alpha": 0.01, "beta": 0.75, "bias": 2.0},
}


@st.composite
def tensors(draw):
    rank = draw(st.sampled_from([1, 3]))
    shape = (draw(st.integers(1, 6)),) + tuple(draw(st.integers(1, 7)) for _ in range(rank - 1))
    return dict(n=draw(st.integers(1, 3)), shape=shape, live=draw(st.sampled_from(PATTERNS)),
                scale=draw(st.sampled_from([1.0, 10.0, 100.0])), seed=draw(st.integers(0, 2**31)))


def check_elementwise(op, case, on):
    shape = case["shape"] if op != "BatchNorm2d" else (case["shape"][0], 3, 4)
    rng = np.random.default_rng(case["seed"])
    c = shape[0]
    weights = {}
    if op == "BatchNorm2d":
        weights = {"scale": rng.normal(size=c), "bias": rng.normal(size=c),
                   "mean": rng.normal(size=c), "var": rng.uniform(0, 2, c)}
        weights = {k: v.astype(np.float32) for k, v in weights.items()}
    elif op in ("Scale", "AddBias"):
        weights = {{"Scale": "scale", "AddBias": "bias"}[op]: rng.normal(size=c).astype(np.float32)}
    kernel, a = on.kernel(op, CASES[op], weights, [shape])
    live = mask(rng, case["n"], c, case["live"])
    x = live_act(case["scale"] * rng.normal(size=(case["n"], *shape)), live)
    y = on.run(kernel, [x])
    assert_matches(y.data, OPS[op].reference(a, weights, [x.data]))
    keeps = OPS[op].live_rule_for(a) == "same"
    assert same_mask(y.live, live if keeps else None)
    if keeps:  # f(0) = 0: dead channels stay exactly zero
        assert not y.data[~live].any()


@pytest.mark.parametrize("op", sorted(CASES))
@settings(max_examples=200, deadline=None)
@given(case=tensors())
def test_elementwise_matches_reference(op, case):
    check_elementwise(op, case, ON_CPU)


def check_clip_away_from_zero(on):
    kernel, _ = on.kernel("Clip", {"min": 1.0, "max": 2.0}, {}, [(2, 2, 2)])
    live = np.array([[True, False]])
    y = on.run(kernel, [live_act(np.zeros((1, 2, 2, 2)), live)])
    assert y.live is None and (y.data == 1.0).all()


def test_clip_away_from_zero_makes_every_channel_live():
    check_clip_away_from_zero(ON_CPU)


def check_lrn(size, c, seed, live, on):
    rng = np.random.default_rng(seed)
    attrs = {"size": size, "alpha": float(rng.uniform(1e-4, 1)), "beta": float(rng.uniform(0.5, 1)), "bias": 1.0}
    kernel, a = on.kernel("LRN", attrs, {}, [(c, 3, 2)])
    m = mask(rng, 2, c, live)
    x = live_act(3 * rng.normal(size=(2, c, 3, 2)), m)
    y = on.run(kernel, [x])
    assert_matches(y.data, OPS["LRN"].reference(a, {}, [x.data]))
    assert not y.data[~m].any()


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 6), c=st.integers(1, 8), seed=st.integers(0, 2**31), live=st.sampled_from(PATTERNS))
def test_lrn_window_sizes_match_reference(size, c, seed, live):
    check_lrn(size, c, seed, live, ON_CPU)
