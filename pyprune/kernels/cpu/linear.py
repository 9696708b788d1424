"""CPU Linear, one sample at a time: each sample reads only the weight rows of its live
features, and gets bitwise the same result alone as inside any batch (DESIGN.md). One BLAS
GEMM over the batch would read the weights once, but its rounding depends on how many rows
it has (OpenBLAS took another path for one row than for two), and a CNN's classifier is a
small share of its work."""

import numpy as np
from numba import njit

from ..macs import linear_macs
from .base import Act, CpuKernel, kept


@njit(cache=True, nogil=True, boundscheck=False)
def live_rows_gemv(x, live, wt, bias, idx, out):
    """out[s] = bias + sum over live l of x[s, l] * wt[l], four weight rows per pass over out[s]
    (one pass per row ran at half the speed of BLAS's GEMV; four match it). Reads each
    sample's live rows once: at batch 1 that beat BLAS on all features (the dead ones are
    zeros) at every live fraction, and gathering the rows first at every size."""
    n, f = x.shape
    m = wt.shape[1]
    for s in range(n):
        nl = 0
        for l in range(f):
            if live[s, l]:
                idx[nl] = l
                nl += 1
        acc = out[s]
        for o in range(m):
            acc[o] = bias[o]
        q = 0
        while q + 4 <= nl:
            v0, v1, v2, v3 = x[s, idx[q]], x[s, idx[q + 1]], x[s, idx[q + 2]], x[s, idx[q + 3]]
            r0, r1, r2, r3 = wt[idx[q]], wt[idx[q + 1]], wt[idx[q + 2]], wt[idx[q + 3]]
            for o in range(m):
                acc[o] += v0 * r0[o] + v1 * r1[o] + v2 * r2[o] + v3 * r3[o]
            q += 4
        while q < nl:
            v, r = x[s, idx[q]], wt[idx[q]]
            for o in range(m):
                acc[o] += v * r[o]
            q += 1


class LinearKernel(CpuKernel):
    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        self.weight = np.ascontiguousarray(node.weights["weight"], np.float32)
        self.weight_t = np.ascontiguousarray(self.weight.T)  # (F, out): a feature's weights are a row
        self.bias = np.ascontiguousarray(node.weights["bias"], np.float32)
        self.idx = np.empty(self.weight.shape[1], np.int64)

    def run(self, xs, ctx):
        x = xs[0]
        out = np.empty((x.data.shape[0], self.weight.shape[0]), np.float32)
        live_rows_gemv(x.data, self.live_of(x), self.weight_t, self.bias, self.idx, out)
        return Act(out, None)

    def bind(self, xs, phase, store, pair=None):
        """live_rows_gemv into a kept output (CpuKernel.bind)."""
        x = xs[0]
        if not x.data.flags.c_contiguous:
            return None
        out = kept(store, "out", (x.data.shape[0], self.weight.shape[0]))
        return ((live_rows_gemv, (x.data, self.live_of(x), self.weight_t, self.bias, self.idx, out)),), Act(out, None)

    def macs(self, xs, y):
        """MACs of the live features."""
        return linear_macs(xs[0].live, xs[0].data.shape, self.weight.shape[0])
