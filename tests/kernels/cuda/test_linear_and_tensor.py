"""CUDA Linear, Concat, Add and Flatten with their live masks: the CPU twins' checks."""

from hypothesis import given, strategies as st

from ...helpers import PATTERNS
from ..cpu.test_linear_and_tensor import check_add, check_concat, check_flatten, check_linear, common
from .device import ON_CUDA, SIMULATED


@SIMULATED
@given(f=st.integers(1, 40), out=st.integers(1, 20), **common)
def test_linear_matches_reference(f, out, n, live, seed):
    check_linear(f, out, n, live, seed, ON_CUDA)


@SIMULATED
@given(parts=st.lists(st.tuples(st.integers(1, 4), st.sampled_from(PATTERNS + ("full",))), min_size=1, max_size=4),
       h=st.integers(1, 4), w=st.integers(1, 4), n=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_concat_matches_reference_and_joins_live_masks(parts, h, w, n, seed):
    check_concat(parts, h, w, n, seed, ON_CUDA)


@SIMULATED
@given(c=st.integers(1, 6), hw=st.integers(1, 5), la=st.sampled_from(PATTERNS + ("full",)),
       lb=st.sampled_from(PATTERNS + ("full",)), n=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_add_matches_reference_with_union_of_live(c, hw, la, lb, n, seed):
    check_add(c, hw, la, lb, n, seed, ON_CUDA)


@SIMULATED
@given(c=st.integers(1, 6), h=st.integers(1, 5), w=st.integers(1, 5), **common)
def test_flatten_matches_reference_and_expands_live(c, h, w, n, live, seed):
    check_flatten(c, h, w, n, live, seed, ON_CUDA)
