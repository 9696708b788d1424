"""CPU pooling kernels. Dead channels are not read: their output is written as 0.0."""

import numpy as np
from numba import njit

from .base import Act, CpuKernel


@njit(cache=True, boundscheck=False)
def max_pool(x, live, kh, kw, sh, sw, pt, pl, out):
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for s in range(n):
        for ch in range(c):
            if not live[s, ch]:
                out[s, ch, :, :] = 0.0
                continue
            for oy in range(ho):
                y0 = oy * sh - pt
                for ox in range(wo):
                    x0 = ox * sw - pl
                    m = -np.inf
                    for iy in range(max(y0, 0), min(y0 + kh, h)):
                        for ix in range(max(x0, 0), min(x0 + kw, w)):
                            if x[s, ch, iy, ix] > m:
                                m = x[s, ch, iy, ix]
                    out[s, ch, oy, ox] = m


@njit(cache=True, boundscheck=False)
def avg_pool(x, live, kh, kw, sh, sw, pt, pl, pb, pr, count_include_pad, out):
    """count_include_pad divides by the window clipped to the padded input (PyTorch rule)."""
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for s in range(n):
        for ch in range(c):
            if not live[s, ch]:
                out[s, ch, :, :] = 0.0
                continue
            for oy in range(ho):
                y0 = oy * sh - pt
                ya, yb = max(y0, 0), min(y0 + kh, h)
                for ox in range(wo):
                    x0 = ox * sw - pl
                    xa, xb = max(x0, 0), min(x0 + kw, w)
                    acc = 0.0
                    for iy in range(ya, yb):
                        for ix in range(xa, xb):
                            acc += x[s, ch, iy, ix]
                    if count_include_pad:
                        count = (min(y0 + kh, h + pb) - y0) * (min(x0 + kw, w + pr) - x0)
                    else:
                        count = (yb - ya) * (xb - xa)
                    out[s, ch, oy, ox] = acc / count


@njit(cache=True, boundscheck=False)
def global_pool(x, live, use_max, out):
    n, c = x.shape[0], x.shape[1]
    hw = x.shape[2] * x.shape[3]
    for s in range(n):
        for ch in range(c):
            if not live[s, ch]:
                out[s, ch] = 0.0
                continue
            plane = x[s, ch].ravel()
            if use_max:
                m = plane[0]
                for k in range(1, hw):
                    if plane[k] > m:
                        m = plane[k]
                out[s, ch] = m
            else:
                acc = 0.0
                for k in range(hw):
                    acc += plane[k]
                out[s, ch] = acc / hw


class PoolKernel(CpuKernel):
    def run(self, xs, ctx):
        x = xs[0]
        n, c = x.data.shape[:2]
        live = x.live if x.live is not None else self.ones(n, c)
        out = np.empty((n, *self.out_shape), np.float32)
        a = self.attrs
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = a["kernel_size"], a["stride"], a["padding"]
        if "count_include_pad" in a:
            avg_pool(x.data, live, kh, kw, sh, sw, pt, pl, pb, pr, a["count_include_pad"], out)
        else:
            max_pool(x.data, live, kh, kw, sh, sw, pt, pl, out)
        return Act(out, x.live)


class GlobalPoolKernel(CpuKernel):
    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        self.use_max = node.op == "GlobalMaxPool"

    def run(self, xs, ctx):
        x = xs[0]
        n, c = x.data.shape[:2]
        live = x.live if x.live is not None else self.ones(n, c)
        out = np.empty((n, c), np.float32)
        global_pool(x.data, live, self.use_max, out)
        return Act(out.reshape(n, c, 1, 1), x.live)
