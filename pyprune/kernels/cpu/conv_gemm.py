"""A groups == 1 convolution per sample: `prepare_sample` (live and active indices, im2col
or the live channels of a 1x1 conv, the gathered weights) decides which GEMM to run;
`gemm_conv` runs the whole batch as one compiled call with sgemm called from Numba
(blas.py) and the epilogue. The Python path in conv.py runs prepare_sample, np.matmul and
the epilogue as separate calls; one compiled call saves their dispatch, 3-4 us per conv
call, which is most of a small gated layer's fixed cost.

A conv's geometry and settings reach the compiled code as one int64 array, the conv plan
(indices below): Numba's dispatcher costs about 0.1 us per argument, and a gated conv once
passed 27 of them."""

import numpy as np
from numba import njit

from .blas import sgemm
from .conv_steps import (add_bias, gather_channels, gather_rows, gather_weights, im2col, im2col_shifted,
                         indices_of, scatter_rows)


# What prepare_sample left for the GEMM of a sample:
EMPTY = 0       # nothing active, or only zeros in: the output is 0, or the bias
FULL = 1        # every kernel over every channel: w2 @ cols
TRANSPOSED = 2  # every kernel, some channels: w_buf as (k, C_out), read transposed
PARTIAL = 3     # some kernels: w_buf as (na, k), into y, then scattered to their rows

# The conv plan: kernel size, stride, padding (top, left), dilation, output size, then the settings:
KH, KW, SH, SW, PT, PL, DH, DW, HO, WO = range(10)
SHIFTED = 10        # 1: im2col_shifted (stride 1, dilation 1, output as wide as the input)
POINTWISE = 11      # 1: a 1x1 stride-1 unpadded conv (its right operand is x's channels)
RELU = 12           # 1: a ReLU fused into the epilogue
ADD_FULL_BIAS = 13  # 0: a pool after the conv adds the bias (and ReLU) to a full output
GATHER_RATIO = 14   # config.POINTWISE_GATHER_RATIO, read when the kernel is made


def conv_plan(kernel_size, geometry, out_size, shifted, pointwise, gather_ratio):
    """A new conv plan; geometry is (sh, sw, pt, pl, dh, dw); the epilogue starts as bias
    without ReLU."""
    return np.array([*kernel_size, *geometry, *out_size, shifted, pointwise, False, True, gather_ratio], np.int64)


@njit(cache=True, nogil=True, boundscheck=False)
def prepare_sample(x, live, active, w2, w2_t, plan, index_buf, cols_flat, w_buf):
    """For one sample x (C_in, H, W) with masks live (C_in,) and active (C_out,): the live
    then the active indices into index_buf (C_in + C_out), the GEMM's right operand and,
    where the GEMM needs them gathered, its weights into w_buf. Returns (mode, na, k, cols):
    na active kernels, k rows of cols."""
    kh, kw, sh, sw, pt, pl, dh, dw, ho, wo = plan[KH], plan[KW], plan[SH], plan[SW], plan[PT], plan[PL], \
        plan[DH], plan[DW], plan[HO], plan[WO]
    shifted, pointwise, gather_ratio = plan[SHIFTED] != 0, plan[POINTWISE] != 0, plan[GATHER_RATIO]
    c_in, co = x.shape[0], w2.shape[0]
    hw, kk = ho * wo, kh * kw
    live_buf, act_buf = index_buf[:c_in], index_buf[c_in:c_in + co]
    nl = indices_of(live, live_buf)
    na = indices_of(active, act_buf)
    if na == 0 or nl == 0:
        return EMPTY, na, 0, cols_flat[:0].reshape(0, hw)
    full_in, full_out = nl == c_in, na == co
    if pointwise and not full_in and na * (c_in - nl) <= gather_ratio * nl:
        # Few kernels over many channels: multiplying the dead (all-zero) channels
        # costs less than copying the live ones out (config.POINTWISE_GATHER_RATIO).
        for i in range(c_in):
            live_buf[i] = i
        nl, full_in = c_in, True
    live_idx = live_buf[:nl]
    k = nl * kk
    if pointwise and full_in:
        cols = x.reshape(c_in, hw)
    elif pointwise:
        cols = cols_flat[:k * hw].reshape(k, hw)
        gather_channels(x.reshape(c_in, hw), live_idx, cols)
    else:
        cols = cols_flat[:k * hw].reshape(k, hw)
        if shifted:
            im2col_shifted(x, live_idx, kh, kw, pt, pl, ho, wo, cols)
        else:
            im2col(x, live_idx, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols)
    if full_in and full_out:
        return FULL, na, k, cols
    if full_out:
        # Every kernel, some input channels: whole contiguous rows of the transposed
        # weights (3x faster to copy than elements of each kernel's row), read transposed.
        gather_rows(w2_t, kk, live_idx, w_buf[:k * co].reshape(k, co))
        return TRANSPOSED, na, k, cols
    gather_weights(w2, kk, act_buf[:na], live_idx, w_buf[:na * k].reshape(na, k))
    return PARTIAL, na, k, cols


@njit(cache=True, nogil=True, boundscheck=False)
def gemm_conv(x, live, active, w2, w2_t, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out, written):
    """x (N, C_in, H, W) C-contiguous; live (N, C_in) and active (N, C_out) bool; w2 the
    weights as (C_out, C_in*kh*kw) and w2_t its transpose; plan the conv plan (above);
    buffer (N, C_total, Ho, Wo) C-contiguous, and out the (N, C_out, Ho, Wo) channel slice
    of it to write (or buffer itself); written (N, C_out): the rows that may hold non-zeros
    (the others hold zeros already)."""
    co, hw = w2.shape[0], plan[HO] * plan[WO]
    relu, add_full_bias = plan[RELU] != 0, plan[ADD_FULL_BIAS] != 0
    act_buf = index_buf[x.shape[1]:x.shape[1] + co]
    n, c_total = buffer.shape[0], buffer.shape[1]
    first = (out.ctypes.data - buffer.ctypes.data) // (4 * hw)
    if out.shape[1] != co or (out.ctypes.data - buffer.ctypes.data) % (4 * hw) != 0 \
            or first < 0 or first + co > c_total:
        raise ValueError("out must be a channel slice of buffer")
    planes = buffer.reshape(n, c_total, hw)
    cols_flat = cols_buf.reshape(cols_buf.size)
    for s in range(x.shape[0]):
        dst = planes[s][first:first + co]
        mode, na, k, cols = prepare_sample(x[s], live[s], active[s], w2, w2_t, plan, index_buf, cols_flat, w_buf)
        if mode == FULL or mode == TRANSPOSED:
            if mode == FULL:
                sgemm(False, co, hw, k, w2, k, cols, hw, dst, hw)
            else:
                sgemm(True, co, hw, k, w_buf[:k * co].reshape(k, co), co, cols, hw, dst, hw)
            if add_full_bias:
                add_bias(dst, bias, relu)
            continue
        y = y_buf[:na * hw].reshape(na, hw)
        if mode == EMPTY:
            y[:] = 0.0
        else:
            sgemm(False, na, hw, k, w_buf[:na * k].reshape(na, k), k, cols, hw, y, hw)
        scatter_rows(y, act_buf[:na], bias, relu, dst, written[s])
