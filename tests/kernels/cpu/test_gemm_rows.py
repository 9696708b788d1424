"""A GEMM over some kernels padded with zero rows to a multiple of 4 (conv_gemm.gemm_rows,
config.GEMM_ROW_PAD): the rule itself, and convs that pad against the reference, with the
shared work buffers full of NaN so that a padding row that was not zeroed, or a padded
row written out, shows."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyprune import config
from pyprune.kernels.cpu import blas
from pyprune.kernels.cpu.conv_gemm import EMPTY, FULL, PARTIAL, TILED, TRANSPOSED, gemm_rows
from pyprune.ops.conv import conv2d_reference

from ...helpers import ON_CPU, ON_CPU_PYTHON_GEMM, assert_matches, live_act
from .test_conv import magnitude


@settings(deadline=None)  # the first call compiles
@given(mode=st.sampled_from([EMPTY, FULL, TRANSPOSED, PARTIAL, TILED]), na=st.integers(0, 300),
       co=st.integers(1, 300), row_pad=st.integers(0, 3))
def test_gemm_rows_pads_only_partial_gemms_to_a_multiple_of_four(mode, na, co, row_pad):
    na = min(na, co)
    rows = gemm_rows(mode, na, co, row_pad)
    if mode in (FULL, TRANSPOSED):
        assert rows == co
    elif mode != PARTIAL:
        assert rows == na
    else:
        assert na <= rows <= co and rows - na <= row_pad
        up = -(-na // 4) * 4
        assert rows == (up if up - na <= row_pad and up <= co else na)


def test_the_blas_in_use_sets_the_kernels_padding():
    kernel, _ = ON_CPU.kernel("Conv2d", dict(out_channels=8, kernel_size=(1, 1)),
                              {"weight": np.ones((8, 4, 1, 1), np.float32), "bias": np.zeros(8, np.float32)},
                              [(4, 5, 5)])
    assert kernel.row_pad == config.GEMM_ROW_PAD.get(blas.BACKEND, 0)


@settings(max_examples=60, deadline=None)
@given(co=st.integers(4, 24), c=st.integers(1, 12), size=st.integers(2, 12), kernel_size=st.sampled_from([1, 3]),
       row_pad=st.integers(0, 3), seed=st.integers(0, 2**31), data=st.data())
@pytest.mark.parametrize("on", [ON_CPU, ON_CPU_PYTHON_GEMM], ids=["one_call", "python_gemm"])
def test_a_conv_over_some_kernels_matches_the_reference_at_any_padding(on, co, c, size, kernel_size, row_pad, seed,
                                                                       data):
    rng = np.random.default_rng(seed)
    na = data.draw(st.integers(1, co - 1), label="active kernels")
    a = dict(out_channels=co, kernel_size=(kernel_size, kernel_size), padding=(kernel_size // 2,) * 4)
    w = {"weight": rng.normal(size=(co, c, kernel_size, kernel_size)).astype(np.float32),
         "bias": rng.normal(size=co).astype(np.float32)}
    kernel, _ = on.kernel("Conv2d", a, w, [(c, size, size)])
    kernel.row_pad = row_pad
    for buf in (kernel.w_buf, kernel.y_buf):
        buf[:] = np.nan
    active = np.zeros((2, co), bool)
    for s in range(2):
        active[s, rng.choice(co, na, replace=False)] = True
    x = live_act(rng.normal(size=(2, c, size, size)), None)
    y = on.convolve(kernel, x, active)
    dense = conv2d_reference(x.data, w["weight"], w["bias"], (1, 1), a["padding"], (1, 1), 1)
    assert (y[~active] == 0.0).all(), "an inactive kernel must give exactly 0.0"
    assert_matches(y, dense * active[:, :, None, None], magnitude=magnitude(x.data, w, dict(a, stride=(1, 1),
                                                                                           dilation=(1, 1),
                                                                                           groups=1)))
