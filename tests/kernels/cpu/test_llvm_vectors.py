"""The LLVM IR pieces of llvm_vectors.py that no kernel test reaches on every path."""

import numpy as np
from hypothesis import given, settings, strategies as st
from numba import njit

from pyprune.kernels.cpu.llvm_vectors import move_floats


@njit(cache=True)
def _move(arr, dst, src, n):
    move_floats(arr, dst, src, n)


@settings(max_examples=80, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_move_floats_is_a_memmove_within_one_array(size, data):
    """Forward and backward, overlapping or not, and nothing outside the destination."""
    n = data.draw(st.integers(0, size))
    src, dst = data.draw(st.integers(0, size - n)), data.draw(st.integers(0, size - n))
    arr = np.random.default_rng(size).normal(size=size).astype(np.float32)
    want = arr.copy()
    want[dst:dst + n] = arr[src:src + n].copy()
    _move(arr, dst, src, n)
    np.testing.assert_array_equal(arr, want)
