"""CPU pooling kernels. Dead channels are not read: their output is written as 0.0."""

import numpy as np
from numba import njit

from .base import Act, CpuKernel
from .window import valid_range


@njit(cache=True, boundscheck=False)
def max_pool(x, live, kh, kw, sh, sw, pt, pl, out):
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for s in range(n):
        for ch in range(c):
            plane = out[s, ch]
            if not live[s, ch]:
                plane[:, :] = 0.0
                continue
            plane[:, :] = -np.inf
            src = x[s, ch]
            for i in range(kh):
                ylo, yhi = valid_range(pt, i, sh, h, ho)
                for j in range(kw):
                    xlo, xhi = valid_range(pl, j, sw, w, wo)
                    # Unsigned offsets: Numba then drops its negative-index wrap checks
                    # and the loop vectorises (about 2x faster here).
                    count, first, step = np.uint64(xhi - xlo), np.uint64(xlo * sw - pl + j), np.uint64(sw)
                    for oy in range(ylo, yhi):
                        row = src[oy * sh - pt + i]
                        dst = plane[oy, xlo:]
                        for k in range(count):
                            dst[k] = max(dst[k], row[first + k * step])


@njit(cache=True, boundscheck=False)
def avg_pool(x, live, kh, kw, sh, sw, pt, pl, pb, pr, count_include_pad, out):
    """count_include_pad divides by the window clipped to the padded input (PyTorch rule)."""
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    scale = np.empty((ho, wo), np.float32)
    for oy in range(ho):
        y0 = oy * sh - pt
        for ox in range(wo):
            x0 = ox * sw - pl
            if count_include_pad:
                count = (min(y0 + kh, h + pb) - y0) * (min(x0 + kw, w + pr) - x0)
            else:
                count = (min(y0 + kh, h) - max(y0, 0)) * (min(x0 + kw, w) - max(x0, 0))
            scale[oy, ox] = 1.0 / count
    for s in range(n):
        for ch in range(c):
            plane = out[s, ch]
            plane[:, :] = 0.0
            if not live[s, ch]:
                continue
            src = x[s, ch]
            for i in range(kh):
                ylo, yhi = valid_range(pt, i, sh, h, ho)
                for j in range(kw):
                    xlo, xhi = valid_range(pl, j, sw, w, wo)
                    count, first, step = np.uint64(xhi - xlo), np.uint64(xlo * sw - pl + j), np.uint64(sw)
                    for oy in range(ylo, yhi):
                        row = src[oy * sh - pt + i]
                        dst = plane[oy, xlo:]
                        for k in range(count):
                            dst[k] += row[first + k * step]
            for oy in range(ho):
                for ox in range(wo):
                    plane[oy, ox] *= scale[oy, ox]


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
