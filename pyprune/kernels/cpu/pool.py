"""CPU pooling kernels. Dead channels are not read: their output is written as 0.0."""

import numpy as np
from numba import njit

from .base import Act, CpuKernel
from .window import valid_range


@njit(cache=True, boundscheck=False)
def max_pool(x, live, kh, kw, sh, sw, pt, pl, out):
    """Separable: a vertical max over whole contiguous rows (vectorised), then a strided
    horizontal max over kw taps; 3 + 3 instead of 9 strided compares for 3 x 3."""
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    tmp = np.empty(w, np.float32)
    for s in range(n):
        for ch in range(c):
            plane = out[s, ch]
            if not live[s, ch]:
                plane[:, :] = 0.0
                continue
            src = x[s, ch]
            for oy in range(ho):
                y0 = oy * sh - pt
                ya, yb = max(y0, 0), min(y0 + kh, h)
                tmp[:] = src[ya]
                for iy in range(ya + 1, yb):
                    row = src[iy]
                    for k in range(w):
                        tmp[k] = max(tmp[k], row[k])
                dst = plane[oy]
                dst[:] = -np.inf
                for j in range(kw):
                    xlo, xhi = valid_range(pl, j, sw, w, wo)
                    count, first, step = np.uint64(xhi - xlo), np.uint64(xlo * sw - pl + j), np.uint64(sw)
                    seg = dst[xlo:]
                    for k in range(count):
                        seg[k] = max(seg[k], tmp[first + k * step])


@njit(cache=True, boundscheck=False)
def avg_pool(x, live, kh, kw, sh, sw, pt, pl, pb, pr, count_include_pad, out):
    """Separable sums like max_pool; count_include_pad divides by the window clipped to the
    padded input (PyTorch rule), otherwise by the number of input elements in it."""
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
    tmp = np.empty(w, np.float32)
    for s in range(n):
        for ch in range(c):
            plane = out[s, ch]
            plane[:, :] = 0.0
            if not live[s, ch]:
                continue
            src = x[s, ch]
            for oy in range(ho):
                y0 = oy * sh - pt
                tmp[:] = 0.0
                for iy in range(max(y0, 0), min(y0 + kh, h)):
                    row = src[iy]
                    for k in range(w):
                        tmp[k] += row[k]
                dst = plane[oy]
                for j in range(kw):
                    xlo, xhi = valid_range(pl, j, sw, w, wo)
                    count, first, step = np.uint64(xhi - xlo), np.uint64(xlo * sw - pl + j), np.uint64(sw)
                    seg = dst[xlo:]
                    for k in range(count):
                        seg[k] += tmp[first + k * step]
                for ox in range(wo):
                    dst[ox] *= scale[oy, ox]


@njit(cache=True, boundscheck=False, fastmath={"reassoc"})
def global_pool(x, live, use_max, out):
    """Max or mean of each plane of x viewed as (N, C, H*W). The mean sums in float64, so
    letting LLVM reorder (vectorise) the sum costs no accuracy that float32 would notice
    (7x faster than the sequential sum on 1000 x 13 x 13)."""
    n, c, hw = x.shape
    for s in range(n):
        for ch in range(c):
            if not live[s, ch]:
                out[s, ch] = 0.0
                continue
            plane = x[s, ch]
            if use_max:
                m = plane[0]
                for k in range(1, hw):
                    m = max(m, plane[k])
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
        global_pool(x.data.reshape(n, c, -1), live, self.use_max, out)
        return Act(out.reshape(n, c, 1, 1), x.live)
