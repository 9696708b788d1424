"""CUDA pooling: the CPU twins' checks (tests/kernels/cpu/test_pool.py)."""

import pytest
from hypothesis import given, strategies as st

from pyprune import config

from ..cpu.test_pool import check_pool, pool_cases
from .device import ON_CUDA, SIMULATED


@SIMULATED
@given(pool_cases())
def test_max_pool_matches_reference(case):
    check_pool("MaxPool2d", case, case["attrs"], ON_CUDA)


@SIMULATED
@given(pool_cases())
def test_avg_pool_matches_reference(case):
    check_pool("AvgPool2d", case, {**case["attrs"], "count_include_pad": case["include_pad"]}, ON_CUDA)


@SIMULATED
@given(pool_cases(), st.sampled_from(["GlobalAvgPool", "GlobalMaxPool"]))
def test_global_pools_match_reference(case, op):
    check_pool(op, case, {}, ON_CUDA)


@pytest.mark.parametrize("op", ["GlobalAvgPool", "GlobalMaxPool"])
def test_large_planes_take_the_block_reduction(op):
    """Planes of config.CUDA_BLOCK_REDUCE_MIN elements or more are reduced by a whole block
    (shared memory and barriers); the strategies above only draw small planes."""
    assert 16 * 17 >= config.CUDA_BLOCK_REDUCE_MIN
    case = dict(n=1, c=3, h=16, w=17, live="random", seed=5)
    check_pool(op, case, {}, ON_CUDA)
