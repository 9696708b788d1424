"""CPU convolution: im2col over live input channels + one BLAS GEMM over active kernels
(groups == 1), and a direct loop kernel for grouped / depthwise convolutions.

Both read only the live input channels of each sample and compute only its active output
channels; an inactive channel is written as exact 0.0 (its bias is not added).
"""

import numpy as np
from numba import njit

from ... import config
from ..macs import conv_macs
from .base import Act, CpuKernel
from .window import valid_range


@njit(cache=True, boundscheck=False)
def im2col(x, live_idx, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols):
    """cols[(l*kh + i)*kw + j, oy*wo + ox] = x[live_idx[l], oy*sh - pt + i*dh, ox*sw - pl + j*dw],
    0 where that falls in the padding. Only live channels are read.

    Written for its per-row cost, which dominates on small planes: unsigned offsets (no
    wrap checks), plain loops rather than slice assignments and no row views inside the
    row loop (1.2-1.7x faster than that on SqueezeNet's and MNIST's 3 x 3 convs)."""
    h, w = x.shape[1], x.shape[2]
    uwo, uho = np.uint64(wo), np.uint64(ho)
    for li in range(live_idx.shape[0]):
        src = x[live_idx[li]]
        for i in range(kh):
            ylo, yhi = valid_range(pt, i * dh, sh, h, ho)
            for j in range(kw):
                dst = cols[(li * kh + i) * kw + j]
                xlo, xhi = valid_range(pl, j * dw, sw, w, wo)
                uxlo, uxhi = np.uint64(xlo), np.uint64(xhi)
                count, first, step = np.uint64(xhi - xlo), np.uint64(xlo * sw - pl + j * dw), np.uint64(sw)
                for k in range(np.uint64(ylo) * uwo):
                    dst[k] = 0.0
                for k in range(np.uint64(yhi) * uwo, uho * uwo):
                    dst[k] = 0.0
                for oy in range(ylo, yhi):
                    base, iy = np.uint64(oy) * uwo, np.uint64(oy * sh - pt + i * dh)
                    for k in range(uxlo):
                        dst[base + k] = 0.0
                    for k in range(uxhi, uwo):
                        dst[base + k] = 0.0
                    seg = base + uxlo
                    for k in range(count):
                        dst[seg + k] = src[iy, first + k * step]


@njit(cache=True, boundscheck=False)
def im2col_shifted(x, live_idx, kh, kw, pt, pl, ho, wo, cols):
    """im2col for stride 1, dilation 1 and an output as wide as the input ('same' convs):
    then each row of cols is the whole plane shifted by one flat offset, so it is one long
    copy plus zeroing the columns that fall off the row ends (which the flat copy fills
    from the neighbouring row). 1.4-2x faster than im2col on SqueezeNet's and MNIST's
    3 x 3 convs, whose short rows made im2col's per-row work dominate."""
    h, w = x.shape[1], x.shape[2]
    n = np.uint64(ho * wo)
    for li in range(live_idx.shape[0]):
        src = x[live_idx[li]].ravel()
        for i in range(kh):
            ylo, yhi = valid_range(pt, i, 1, h, ho)
            for j in range(kw):
                dst = cols[(li * kh + i) * kw + j]
                xlo, xhi = valid_range(pl, j, 1, w, wo)
                off = (i - pt) * w + (j - pl)
                q0, q1 = max(ylo * wo, -off), min(yhi * wo, h * w - off)  # src stays in bounds
                q1 = max(q0, q1)
                for k in range(np.uint64(q0)):
                    dst[k] = 0.0
                head, first = dst[q0:], np.uint64(q0 + off)
                for k in range(np.uint64(q1 - q0)):
                    head[k] = src[first + k]
                for k in range(np.uint64(q1), n):
                    dst[k] = 0.0
                if xlo > 0 or xhi < wo:
                    for oy in range(ylo, yhi):
                        b = oy * wo
                        for ox in range(xlo):
                            dst[b + ox] = 0.0
                        for ox in range(xhi, wo):
                            dst[b + ox] = 0.0


@njit(cache=True, boundscheck=False)
def conv_direct(x, wt, b, live, active, sh, sw, pt, pl, dh, dw, groups, out):
    """Direct convolution for any groups; live (N, C_in) and active (N, C_out) are bool."""
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    co, cg, kh, kw = wt.shape
    ho, wo = out.shape[2], out.shape[3]
    cog = co // groups
    for s in range(n):
        for oc in range(co):
            if not active[s, oc]:
                out[s, oc, :, :] = 0.0
                continue
            out[s, oc, :, :] = b[oc]
            g = oc // cog
            for ci in range(cg):
                ic = g * cg + ci
                if not live[s, ic]:
                    continue
                for i in range(kh):
                    for j in range(kw):
                        wv = wt[oc, ci, i, j]
                        for oy in range(ho):
                            iy = oy * sh - pt + i * dh
                            if iy < 0 or iy >= h:
                                continue
                            for ox in range(wo):
                                ix = ox * sw - pl + j * dw
                                if 0 <= ix < w:
                                    out[s, oc, oy, ox] += wv * x[s, ic, iy, ix]


@njit(cache=True, boundscheck=False)
def gather_weights(w2, kk, act_idx, live_idx, out):
    """out[i, l*kk + k] = w2[act_idx[i], live_idx[l]*kk + k]: the GEMM's left operand.
    Unsigned offsets and flat rows keep the copies free of wrap checks."""
    ukk = np.uint64(kk)
    for i in range(act_idx.shape[0]):
        src = w2[act_idx[i]]
        dst = out[i]
        for li in range(live_idx.shape[0]):
            s0, d0 = np.uint64(live_idx[li]) * ukk, np.uint64(li) * ukk
            for k in range(ukk):
                dst[d0 + k] = src[s0 + k]


@njit(cache=True, boundscheck=False)
def gather_rows(w2_t, kk, live_idx, out):
    """out[l*kk + k] = w2_t[live_idx[l]*kk + k]: the live channels' rows of the transposed
    weights (C_in * kk, C_out), whole contiguous rows, copied by an explicit loop (row
    assignment went through Numba's generic setitem: 0.085 vs 0.05 ms for conv10's 256 live rows)."""
    n = np.uint64(w2_t.shape[1])
    for li in range(live_idx.shape[0]):
        for k in range(kk):
            src, dst = w2_t[live_idx[li] * kk + k], out[li * kk + k]
            for j in range(n):
                dst[j] = src[j]


@njit(cache=True, boundscheck=False)
def gather_channels(x2, live_idx, out):
    """out[l] = x2[live_idx[l]] for x2 of shape (C, H*W): a 1x1 convolution's right operand."""
    hw = np.uint64(x2.shape[1])
    for li in range(live_idx.shape[0]):
        src, dst = x2[live_idx[li]], out[li]
        for k in range(hw):
            dst[k] = src[k]


@njit(cache=True, boundscheck=False)
def indices_of(mask, buf):
    """Write the ascending indices of mask's True entries into buf; return their count
    (np.flatnonzero without its allocation and call overhead: about 1 us a call)."""
    k = 0
    for i in range(mask.shape[0]):
        if mask[i]:
            buf[k] = i
            k += 1
    return k


@njit(cache=True, boundscheck=False)
def scatter_rows(y, act_idx, bias, relu, out, zero):
    """out[act_idx[i]] = y[i] + bias[act_idx[i]] (ReLU'd if asked), every other row 0: an
    inactive channel ends as exact zeros, without its bias. act_idx is ascending. Rows
    with zero[c] set are known to hold zeros already (a reused buffer) and are not written."""
    i = 0
    for c in range(out.shape[0]):
        dst = out[c]
        if i < act_idx.shape[0] and act_idx[i] == c:
            src, b = y[i], bias[c]
            if relu:
                for k in range(src.shape[0]):
                    dst[k] = max(src[k] + b, 0.0)
            else:
                for k in range(src.shape[0]):
                    dst[k] = src[k] + b
            i += 1
        elif not zero[c]:
            for k in range(dst.shape[0]):
                dst[k] = 0.0


@njit(cache=True, boundscheck=False)
def add_bias(out, bias, relu):
    for c in range(out.shape[0]):
        b = bias[c]
        row = out[c]
        if relu:
            for k in range(row.shape[0]):
                row[k] = max(row[k] + b, 0.0)
        else:
            for k in range(row.shape[0]):
                row[k] += b


class ConvKernel(CpuKernel):
    """Weights are packed once; per call, each sample's active rows and live columns are
    gathered into reused work buffers (a session runs one call at a time). A following
    ReLU can be fused (`fused_relu`), and the output can be a slice of a concat buffer.
    When a max pool alone reads the output, the plan hands it the bias and the ReLU
    (`hand_epilogue_to_pool`): both commute with the max and cost a quarter as much on
    the pooled tensor.

    Outputs the caller never sees are kept across calls (the plan sets `reuse_output` on
    the conv, or on the concat it writes into), and then `track_zero_rows` keeps which
    output rows the last call left as zeros, so that an inactive channel that was inactive
    last time is not zeroed again."""

    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        self.weight = np.ascontiguousarray(node.weights["weight"], np.float32)
        self.bias = np.ascontiguousarray(node.weights["bias"], np.float32)
        co, cg, kh, kw = self.weight.shape
        self.groups = a["groups"]
        self.geometry = (*a["stride"], a["padding"][0], a["padding"][1], *a["dilation"])
        self.pointwise = (kh, kw) == (1, 1) and a["stride"] == (1, 1) and a["padding"] == (0, 0, 0, 0)
        self.shifted = a["stride"] == (1, 1) and a["dilation"] == (1, 1) and out_shape[2] == in_shapes[0][2]
        # (C_out, C_in, kh*kw): rows of active kernels x columns of live channels are
        # gathered from here, in the same order im2col writes its rows.
        self.w3 = self.weight.reshape(co, cg, kh * kw)
        self.w2 = self.weight.reshape(co, -1)
        self.w2_t = None  # (C_in * kh * kw, C_out), made on first need (gather_rows)
        self.all_in = np.arange(in_shapes[0][0])
        self.all_out = np.arange(co)
        self.live_buf, self.act_buf = np.empty_like(self.all_in), np.empty_like(self.all_out)
        self.fused_relu = False
        self.epilogue_bias = self.bias  # zeros once a pool adds the bias instead
        self.track_zero_rows = False
        self._zero_rows, self._zero_rows_of = None, None  # (N, C_out) rows known 0.0, in which buffer
        self.no_zero_rows = np.zeros(co, np.bool_)
        hw = out_shape[1] * out_shape[2]
        if self.groups == 1:
            self.cols_buf = np.empty((cg * kh * kw, hw), np.float32)
            self.w_buf = np.empty(co * cg * kh * kw, np.float32)
            self.y_buf = np.empty(co * hw, np.float32)

    def run(self, xs, ctx, out=None):
        return Act(self.convolve(xs[0], None, out), None)

    def hand_epilogue_to_pool(self):
        """Stop adding the bias and applying a fused ReLU; return (bias, relu) for the pool."""
        relu, self.fused_relu = self.fused_relu, False
        self.epilogue_bias = np.zeros_like(self.bias)
        return self.bias, relu

    def convolve(self, x, active, out=None):
        """Convolve x (an Act) computing only `active` (N, C_out) channels (None: all),
        into `out` (N, C_out, Ho, Wo; may be a channel slice of a bigger buffer) or a new array."""
        n = x.data.shape[0]
        if out is None:
            out = self.output_array(n)
        buffer = out if out.base is None else out.base
        zero = None
        if self.track_zero_rows and self._zero_rows_of is buffer and len(self._zero_rows) == n:
            zero = self._zero_rows
        if self.groups != 1:
            live = x.live if x.live is not None else self.ones(n, x.data.shape[1])
            act = active if active is not None else self.ones(n, self.out_shape[0])
            conv_direct(x.data, self.weight, self.epilogue_bias, live, act, *self.geometry, self.groups, out)
            if self.fused_relu:
                np.maximum(out, 0.0, out=out)
        else:
            for s in range(n):
                live_idx = self.all_in if x.live is None else self.live_buf[:indices_of(x.live[s], self.live_buf)]
                act_idx = self.all_out if active is None else self.act_buf[:indices_of(active[s], self.act_buf)]
                self._gemm_sample(x.data[s], live_idx, act_idx, out[s], self.no_zero_rows if zero is None else zero[s])
        if self.track_zero_rows:
            self._zero_rows = np.zeros((n, self.out_shape[0]), np.bool_) if active is None else ~active
            self._zero_rows_of = buffer
        return out

    def _gemm_sample(self, x, live_idx, act_idx, out, zero):
        co, ho, wo = self.out_shape
        hw = ho * wo
        na, nl = len(act_idx), len(live_idx)
        full_out, full_in = na == co, nl == len(self.all_in)
        flat = out.reshape(co, hw)
        if na == 0 or nl == 0:  # nothing active, or only zeros in: out is 0, or the bias
            y = self.y_buf[:na * hw].reshape(na, hw)
            y[...] = 0.0
            scatter_rows(y, act_idx, self.epilogue_bias, self.fused_relu, flat, zero)
            return
        kk = self.w3.shape[2]
        if self.pointwise and not full_in and \
                na * (len(self.all_in) - nl) <= config.POINTWISE_GATHER_RATIO * nl:
            # Few kernels over many channels: multiplying the dead (all-zero) channels costs
            # less than copying the live ones out (measured, config.POINTWISE_GATHER_RATIO).
            live_idx, nl, full_in = self.all_in, len(self.all_in), True
            full_out = na == co
        if self.pointwise and full_in:
            cols = x.reshape(x.shape[0], hw)
        elif self.pointwise:
            cols = self.cols_buf[:nl]
            gather_channels(x.reshape(x.shape[0], hw), live_idx, cols)
        else:
            cols = self.cols_buf[:nl * kk]
            kh, kw = self.weight.shape[2:]
            if self.shifted:
                im2col_shifted(x, live_idx, kh, kw, self.geometry[2], self.geometry[3], ho, wo, cols)
            else:
                im2col(x, live_idx, kh, kw, *self.geometry, ho, wo, cols)
        if full_in and full_out:
            w = self.w2
        elif full_out:
            # Every kernel, some input channels: copy whole rows of the transposed weights
            # (contiguous, 3x faster than picking elements out of each kernel's row) and let
            # BLAS read them transposed.
            if self.w2_t is None:
                self.w2_t = np.ascontiguousarray(self.w2.T)
            wt = self.w_buf[:nl * kk * na].reshape(nl * kk, na)
            gather_rows(self.w2_t, kk, live_idx, wt)
            w = wt.T
        else:
            w = self.w_buf[:na * nl * kk].reshape(na, nl * kk)
            gather_weights(self.w2, kk, act_idx, live_idx, w)
        if full_out:
            np.matmul(w, cols, out=flat)
            if self.epilogue_bias is self.bias:  # else the pool after adds bias and ReLU
                add_bias(flat, self.bias, self.fused_relu)
        else:
            y = self.y_buf[:na * hw].reshape(na, hw)
            np.matmul(w, cols, out=y)
            scatter_rows(y, act_idx, self.epilogue_bias, self.fused_relu, flat, zero)

    def macs(self, xs, y):
        """MACs per sample that the masks leave (active kernels x live inputs per group), and
        the dense count. A 1x1 conv that multiplies dead channels instead of gathering the
        live ones (POINTWISE_GATHER_RATIO) runs a few more, which are not counted."""
        return conv_macs(self.weight.shape, self.groups, self.out_shape, xs[0].data.shape[0],
                         xs[0].live, y.live)
