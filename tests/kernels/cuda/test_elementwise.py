"""CUDA element-wise ops, Softmax, BatchNorm, Scale, AddBias, LRN: the CPU twins' checks."""

import pytest
from hypothesis import given, strategies as st

from ...helpers import PATTERNS
from ..cpu.test_elementwise import CASES, check_clip_away_from_zero, check_elementwise, check_lrn, tensors
from .device import ON_CUDA, SIMULATED


@pytest.mark.parametrize("op", sorted(CASES))
@SIMULATED
@given(case=tensors())
def test_elementwise_matches_reference(op, case):
    check_elementwise(op, case, ON_CUDA)


def test_clip_away_from_zero_makes_every_channel_live():
    check_clip_away_from_zero(ON_CUDA)


@SIMULATED
@given(size=st.integers(1, 6), c=st.integers(1, 8), seed=st.integers(0, 2**31), live=st.sampled_from(PATTERNS))
def test_lrn_window_sizes_match_reference(size, c, seed, live):
    check_lrn(size, c, seed, live, ON_CUDA)
