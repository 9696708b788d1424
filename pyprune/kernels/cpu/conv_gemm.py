"""A groups == 1 convolution as one compiled call for the whole batch: per sample, the
live and active indices, im2col (or the live channels of a 1x1 conv), the gathered
weights, sgemm called from Numba (blas.py) and the epilogue. The Python path in conv.py
does the same steps as separate calls with np.matmul between them; this one saves their
dispatch, 3-4 us per conv call, which is most of a small gated layer's fixed cost."""

from numba import njit

from .blas import sgemm
from .conv_steps import (add_bias, gather_channels, gather_rows, gather_weights, im2col, im2col_shifted,
                         indices_of, scatter_rows)


@njit(cache=True, boundscheck=False)
def gemm_conv(x, live, active, w2, w2_t, bias, relu, add_full_bias, geom, shifted, pointwise,
              gather_ratio, live_buf, act_buf, cols_buf, w_buf, y_buf, buffer, out, zero):
    """x (N, C_in, H, W) C-contiguous; live (N, C_in) and active (N, C_out) bool; w2 the
    weights as (C_out, C_in*kh*kw) and w2_t its transpose; geom (kh, kw, sh, sw, pt, pl,
    dh, dw, Ho, Wo); buffer (N, C_total, Ho, Wo) C-contiguous, and out the (N, C_out, Ho, Wo)
    channel slice of it to write (or buffer itself); zero (N, C_out): rows known to hold
    zeros already. add_full_bias is False when a pool after the conv adds the bias (and
    ReLU) to a full output instead."""
    kh, kw, sh, sw, pt, pl, dh, dw, ho, wo = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], \
        geom[6], geom[7], geom[8], geom[9]
    c_in, co = x.shape[1], w2.shape[0]
    hw, kk = ho * wo, kh * kw
    n, c_total = buffer.shape[0], buffer.shape[1]
    first = (out.ctypes.data - buffer.ctypes.data) // (4 * hw)
    if out.shape[1] != co or (out.ctypes.data - buffer.ctypes.data) % (4 * hw) != 0 \
            or first < 0 or first + co > c_total:
        raise ValueError("out must be a channel slice of buffer")
    planes = buffer.reshape(n, c_total, hw)
    cols_flat = cols_buf.reshape(cols_buf.size)
    for s in range(x.shape[0]):
        dst = planes[s][first:first + co]
        nl = indices_of(live[s], live_buf)
        na = indices_of(active[s], act_buf)
        act_idx = act_buf[:na]
        if na == 0 or nl == 0:  # nothing active, or only zeros in: the output is 0, or the bias
            y = y_buf[:na * hw].reshape(na, hw)
            y[:] = 0.0
            scatter_rows(y, act_idx, bias, relu, dst, zero[s])
            continue
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
            cols = x[s].reshape(c_in, hw)
        elif pointwise:
            cols = cols_flat[:k * hw].reshape(k, hw)
            gather_channels(x[s].reshape(c_in, hw), live_idx, cols)
        else:
            cols = cols_flat[:k * hw].reshape(k, hw)
            if shifted:
                im2col_shifted(x[s], live_idx, kh, kw, pt, pl, ho, wo, cols)
            else:
                im2col(x[s], live_idx, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols)
        if full_in and full_out:
            sgemm(False, co, hw, k, w2, k, cols, hw, dst, hw)
        elif full_out:
            # Every kernel, some input channels: whole contiguous rows of the transposed
            # weights (3x faster to copy than elements of each kernel's row), read transposed.
            wt = w_buf[:k * co].reshape(k, co)
            gather_rows(w2_t, kk, live_idx, wt)
            sgemm(True, co, hw, k, wt, co, cols, hw, dst, hw)
        else:
            w = w_buf[:na * k].reshape(na, k)
            gather_weights(w2, kk, act_idx, live_idx, w)
            y = y_buf[:na * hw].reshape(na, hw)
            sgemm(False, na, hw, k, w, k, cols, hw, y, hw)
            scatter_rows(y, act_idx, bias, relu, dst, zero[s])
            continue
        if add_full_bias:
            add_bias(dst, bias, relu)
