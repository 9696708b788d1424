"""Linear, Concat, Add and Flatten against the NumPy reference, with live-mask propagation."""

import numpy as np
from hypothesis import given, settings, strategies as st

from pyprune.ops import OPS

from ...helpers import ON_CPU, PATTERNS, assert_matches, live_act, mask

common = dict(n=st.integers(1, 4), live=st.sampled_from(PATTERNS), seed=st.integers(0, 2**31))


def check_linear(f, out, n, live, seed, on):
    rng = np.random.default_rng(seed)
    w = {"weight": rng.normal(size=(out, f)).astype(np.float32), "bias": rng.normal(size=out).astype(np.float32)}
    kernel, a = on.kernel("Linear", {"out_features": out}, w, [(f,)])
    m = mask(rng, n, f, live)
    x = live_act(rng.normal(size=(n, f)), m)
    y = on.run(kernel, [x])
    magnitude = np.abs(x.data) @ np.abs(w["weight"]).T + np.abs(w["bias"])
    assert_matches(y.data, OPS["Linear"].reference(a, w, [x.data]), magnitude=magnitude)
    executed, dense = kernel.macs([x], y)
    assert dense == f * out and (executed == m.sum(axis=1) * out).all()


@settings(max_examples=200, deadline=None)
@given(f=st.integers(1, 40), out=st.integers(1, 20), **common)
def test_linear_matches_reference(f, out, n, live, seed):
    check_linear(f, out, n, live, seed, ON_CPU)


def check_concat(parts, h, w, n, seed, on):
    rng = np.random.default_rng(seed)
    xs = [live_act(rng.normal(size=(n, c, h, w)), None if p == "full" else mask(rng, n, c, p)) for c, p in parts]
    kernel, a = on.kernel("Concat", {}, {}, [(c, h, w) for c, _ in parts])
    y = on.run(kernel, xs)
    assert_matches(y.data, OPS["Concat"].reference(a, {}, [x.data for x in xs]))
    if all(p == "full" for _, p in parts):
        assert y.live is None
    else:
        expected = np.concatenate([x.live if x.live is not None else np.ones((n, x.data.shape[1]), bool) for x in xs], 1)
        assert (y.live == expected).all()
        assert not y.data[~y.live].any()


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.tuples(st.integers(1, 4), st.sampled_from(PATTERNS + ("full",))), min_size=1, max_size=4),
       h=st.integers(1, 4), w=st.integers(1, 4), n=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_concat_matches_reference_and_joins_live_masks(parts, h, w, n, seed):
    check_concat(parts, h, w, n, seed, ON_CPU)


def check_add(c, hw, la, lb, n, seed, on):
    rng = np.random.default_rng(seed)
    a_, b_ = (live_act(rng.normal(size=(n, c, hw, hw)), None if p == "full" else mask(rng, n, c, p)) for p in (la, lb))
    kernel, a = on.kernel("Add", {}, {}, [(c, hw, hw)] * 2)
    y = on.run(kernel, [a_, b_])
    assert_matches(y.data, OPS["Add"].reference(a, {}, [a_.data, b_.data]))
    if "full" in (la, lb):
        assert y.live is None
    else:
        assert (y.live == (a_.live | b_.live)).all() and not y.data[~y.live].any()


@settings(max_examples=200, deadline=None)
@given(c=st.integers(1, 6), hw=st.integers(1, 5), la=st.sampled_from(PATTERNS + ("full",)),
       lb=st.sampled_from(PATTERNS + ("full",)), n=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_add_matches_reference_with_union_of_live(c, hw, la, lb, n, seed):
    check_add(c, hw, la, lb, n, seed, ON_CPU)


def check_flatten(c, h, w, n, live, seed, on):
    rng = np.random.default_rng(seed)
    m = mask(rng, n, c, live)
    x = live_act(rng.normal(size=(n, c, h, w)), m)
    kernel, a = on.kernel("Flatten", {}, {}, [(c, h, w)])
    y = on.run(kernel, [x])
    assert_matches(y.data, OPS["Flatten"].reference(a, {}, [x.data]))
    assert y.live.shape == (n, c * h * w) and not y.data[~y.live].any()


@settings(max_examples=200, deadline=None)
@given(c=st.integers(1, 6), h=st.integers(1, 5), w=st.integers(1, 5), **common)
def test_flatten_matches_reference_and_expands_live(c, h, w, n, live, seed):
    check_flatten(c, h, w, n, live, seed, ON_CPU)