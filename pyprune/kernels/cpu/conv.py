"""CPU convolution: im2col over live input channels + one BLAS GEMM over active kernels
(groups == 1), and a direct loop kernel for grouped / depthwise convolutions.

Both read only the live input channels of each sample and compute only its active output
channels; an inactive channel is written as exact 0.0 (its bias is not added).
"""

import numpy as np
from numba import njit

from .base import Act, CpuKernel
from .window import valid_range


@njit(cache=True, boundscheck=False)
def im2col(x, live_idx, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols):
    """cols[(l*kh + i)*kw + j, oy*wo + ox] = x[live_idx[l], oy*sh - pt + i*dh, ox*sw - pl + j*dw],
    0 where that falls in the padding. Only live channels are read."""
    h, w = x.shape[1], x.shape[2]
    for li in range(live_idx.shape[0]):
        src = x[live_idx[li]]
        for i in range(kh):
            ylo, yhi = valid_range(pt, i * dh, sh, h, ho)
            for j in range(kw):
                dst = cols[(li * kh + i) * kw + j]
                xlo, xhi = valid_range(pl, j * dw, sw, w, wo)
                # Unsigned offsets let Numba drop wrap checks and vectorise the copy.
                count, first, step = np.uint64(xhi - xlo), np.uint64(xlo * sw - pl + j * dw), np.uint64(sw)
                dst[:ylo * wo] = 0.0
                dst[yhi * wo:] = 0.0
                for oy in range(ylo, yhi):
                    row = src[oy * sh - pt + i * dh]
                    seg = dst[oy * wo: (oy + 1) * wo]
                    seg[:xlo] = 0.0
                    seg[xhi:] = 0.0
                    seg = seg[xlo:]
                    for k in range(count):
                        seg[k] = row[first + k * step]


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


class ConvKernel(CpuKernel):
    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        self.weight = np.ascontiguousarray(node.weights["weight"], np.float32)
        self.bias = np.ascontiguousarray(node.weights["bias"], np.float32)
        co, cg, kh, kw = self.weight.shape
        self.groups = a["groups"]
        self.geometry = (*a["stride"], a["padding"][0], a["padding"][1], *a["dilation"])
        self.pointwise = (kh, kw) == (1, 1) and a["stride"] == (1, 1) and a["padding"] == (0, 0, 0, 0)
        # (C_out, C_in, kh*kw): rows of active kernels x columns of live channels are
        # gathered from here, in the same order im2col writes its rows.
        self.w3 = self.weight.reshape(co, cg, kh * kw)
        self.all_in = np.arange(in_shapes[0][0])
        self.all_out = np.arange(co)

    def run(self, xs, ctx):
        return Act(self.convolve(xs[0], None), None)

    def convolve(self, x, active):
        """Convolve x (an Act) computing only `active` (N, C_out) channels (None: all)."""
        n = x.data.shape[0]
        out = np.empty((n, *self.out_shape), np.float32)
        if self.groups != 1:
            live = x.live if x.live is not None else self.ones(n, x.data.shape[1])
            act = active if active is not None else self.ones(n, self.out_shape[0])
            conv_direct(x.data, self.weight, self.bias, live, act, *self.geometry, self.groups, out)
            return out
        for s in range(n):
            self._gemm_sample(x.data[s], self.all_in if x.live is None else np.flatnonzero(x.live[s]),
                              self.all_out if active is None else np.flatnonzero(active[s]), out[s])
        return out

    def _gemm_sample(self, x, live_idx, act_idx, out):
        co, ho, wo = self.out_shape
        full_out, full_in = len(act_idx) == co, len(live_idx) == len(self.all_in)
        if not full_out:
            out[...] = 0.0
        if len(act_idx) == 0:
            return
        if len(live_idx) == 0:  # every input channel is zero: the output is the bias
            out[act_idx] = self.bias[act_idx, None, None]
            return
        kk = self.w3.shape[2]
        if self.pointwise:
            cols = x.reshape(x.shape[0], -1) if full_in else x[live_idx].reshape(len(live_idx), -1)
        else:
            cols = np.empty((len(live_idx) * kk, ho * wo), np.float32)
            kh, kw = self.weight.shape[2:]
            im2col(x, live_idx, kh, kw, *self.geometry, ho, wo, cols)
        if full_in and full_out:
            w = self.weight.reshape(co, -1)
        elif full_in:
            w = self.w3[act_idx].reshape(len(act_idx), -1)
        else:
            w = self.w3[np.ix_(act_idx, live_idx)].reshape(len(act_idx), -1)
        if full_out:
            flat = out.reshape(co, ho * wo)
            np.matmul(w, cols, out=flat)
            flat += self.bias[:, None]
        else:
            out[act_idx] = (w @ cols + self.bias[act_idx, None]).reshape(len(act_idx), ho, wo)

    def macs(self, xs, y, stats_ctx=None):
        """Executed MACs per sample (as the kernel runs them) and the dense count."""
        co, cg, kh, kw = self.weight.shape
        per_pair = kh * kw * self.out_shape[1] * self.out_shape[2]
        n = xs[0].data.shape[0]
        live = xs[0].live if xs[0].live is not None else self.ones(n, cg * self.groups)
        active = y.live if y.live is not None else self.ones(n, co)
        live_g = live.reshape(n, self.groups, cg).sum(axis=2)
        active_g = active.reshape(n, self.groups, co // self.groups).sum(axis=2)
        return (live_g * active_g).sum(axis=1) * per_pair, co * cg * per_pair
