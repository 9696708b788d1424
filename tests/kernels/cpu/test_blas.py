"""sgemm called from Numba (kernels/cpu/blas.py) against NumPy, and the check that
gemm_conv writes only into a channel slice of its buffer."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from pyprune.kernels.cpu import blas
from pyprune.kernels.cpu.conv_gemm import conv_plan, gemm_conv

pytestmark = pytest.mark.skipif(not blas.AVAILABLE, reason="NumPy's BLAS cannot be called from Numba here")


@njit(cache=False)
def call_sgemm(trans_a, a, b, c, first_col):
    """c[:, first_col:first_col + n] = op(a) @ b, c wider than the product (ldc > n)."""
    k, n = b.shape
    m = a.shape[1] if trans_a else a.shape[0]
    blas.sgemm(trans_a, m, n, k, a, a.shape[1], b, n, c[:, first_col:], c.shape[1])


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 70), k=st.integers(1, 50), trans_a=st.booleans(),
       pad=st.integers(0, 5), seed=st.integers(0, 2**31))
def test_sgemm_matches_numpy(m, n, k, trans_a, pad, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    c = np.full((m, n + 2 * pad), 7.0, np.float32)
    call_sgemm(trans_a, a, b, c, pad)
    want = (a.T if trans_a else a).astype(np.float64) @ b
    np.testing.assert_allclose(c[:, pad:pad + n], want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    assert (c[:, :pad] == 7.0).all() and (c[:, pad + n:] == 7.0).all(), "wrote outside its columns"


def test_gemm_conv_rejects_an_output_outside_its_buffer():
    x = np.ones((1, 2, 3, 3), np.float32)
    w2 = np.ones((4, 2), np.float32)
    ones = lambda *s: np.ones(s, np.bool_)  # noqa: E731
    buffer, elsewhere = np.zeros((1, 8, 3, 3), np.float32), np.zeros((1, 4, 3, 3), np.float32)
    plan = conv_plan((1, 1), (1, 1, 0, 0, 1, 1), (3, 3), shifted=True, pointwise=True, gather_ratio=4)
    args = (x, ones(1, 2), ones(1, 4), w2, w2.T.copy(), np.zeros(4, np.float32), plan, np.empty(6, np.int64),
            np.empty((2, 9), np.float32), np.empty(8, np.float32), np.empty(36, np.float32))
    written = np.ones((1, 4), np.bool_)
    gemm_conv(*args, buffer, buffer[:, 4:], written)
    assert (buffer[:, 4:] == 2.0).all() and (buffer[:, :4] == 0.0).all()
    for out in (elsewhere, buffer[:, 6:]):
        with pytest.raises(ValueError, match="channel slice"):
            gemm_conv(*args, buffer, out, written)
