"""CUDA pooling: one thread per output element for windowed pools; for global pools one
block per (sample, channel) plane (a shared-memory tree reduction), or one thread per
plane when planes are small. Dead channels are not
read: their output is written as 0.0, as on the CPU."""

import math

import numpy as np
from numba import cuda

from ... import config
from .base import B2, D2, F2, F4, Act, CudaKernel, threads_for

REDUCE_THREADS = config.CUDA_THREADS  # the shared array's size; blocks use a power of two <= it


@cuda.jit(cache=True)
def window_pool(x, live, kh, kw, sh, sw, pt, pl, pb, pr, mode, out):
    """mode 0: max; 1: average over the input elements in the window; 2: average counting
    the declared padding too (PyTorch's count_include_pad; not the ceil_mode overhang)."""
    i = cuda.grid(1)
    n, c, ho, wo = out.shape
    h, w = x.shape[2], x.shape[3]
    if i >= n * c * ho * wo:
        return
    ox = i % wo
    oy = (i // wo) % ho
    ch = (i // (wo * ho)) % c
    s = i // (wo * ho * c)
    if not live[s, ch]:
        out[s, ch, oy, ox] = 0.0
        return
    y0, x0 = oy * sh - pt, ox * sw - pl
    ya, yb, xa, xb = max(y0, 0), min(y0 + kh, h), max(x0, 0), min(x0 + kw, w)
    if mode == 0:
        m = -math.inf
        for iy in range(ya, yb):
            for ix in range(xa, xb):
                m = max(m, x[s, ch, iy, ix])
        out[s, ch, oy, ox] = m
        return
    acc = np.float32(0.0)
    for iy in range(ya, yb):
        for ix in range(xa, xb):
            acc += x[s, ch, iy, ix]
    if mode == 2:
        count = (min(y0 + kh, h + pb) - y0) * (min(x0 + kw, w + pr) - x0)
    else:
        count = (yb - ya) * (xb - xa)
    out[s, ch, oy, ox] = acc * np.float32(1.0 / count)


@cuda.jit(cache=True)
def global_pool(x, live, use_max, out):
    """Grid (C, N), one block per plane: out[s, ch] = max or mean of x[s, ch] (float64
    arithmetic, a shared-memory tree reduction), 0 for dead channels. `out` is float32 for
    GlobalAvg/MaxPool and float64 for a gate's input features (as the CPU computes them).
    The body is written inline: compile_ptx cannot build device functions without a GPU."""
    shared = cuda.shared.array(REDUCE_THREADS, np.float64)
    ch, s = cuda.blockIdx.x, cuda.blockIdx.y
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    if not live[s, ch]:  # uniform over the block: no thread waits at a barrier
        if t == 0:
            out[s, ch] = 0.0
        return
    h, w = x.shape[2], x.shape[3]
    acc = -math.inf if use_max else 0.0
    for k in range(t, h * w, nt):
        v = np.float64(x[s, ch, k // w, k % w])
        acc = max(acc, v) if use_max else acc + v
    shared[t] = acc
    cuda.syncthreads()
    step = nt // 2
    while step > 0:
        if t < step:
            shared[t] = max(shared[t], shared[t + step]) if use_max else shared[t] + shared[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        out[s, ch] = shared[0] if use_max else shared[0] / (h * w)


@cuda.jit(cache=True)
def global_pool_small(x, live, use_max, out):
    """global_pool with one thread per plane, for small planes: no barriers, and few threads
    (barriers are slow in the simulator too)."""
    i = cuda.grid(1)
    n, c, h, w = x.shape
    if i >= n * c:
        return
    s, ch = i // c, i % c
    if not live[s, ch]:
        out[s, ch] = 0.0
        return
    acc = -math.inf if use_max else 0.0
    for iy in range(h):
        for ix in range(w):
            v = np.float64(x[s, ch, iy, ix])
            acc = max(acc, v) if use_max else acc + v
    out[s, ch] = acc if use_max else acc / (h * w)


PTX_SIGNATURES = [
    (window_pool, f"void({F4}, {B2}, int64, int64, int64, int64, int64, int64, int64, int64, int64, {F4})"),
    (global_pool, f"void({F4}, {B2}, boolean, {F2})"),
    (global_pool, f"void({F4}, {B2}, boolean, {D2})"),
    (global_pool_small, f"void({F4}, {B2}, boolean, {F2})"),
    (global_pool_small, f"void({F4}, {B2}, boolean, {D2})"),
]


def launch_global_pool(kernel, x, live, use_max, out):
    """Pool each plane of x (N, C, H, W) into out (N, C) on behalf of `kernel`: a block per
    plane for large planes, a thread per plane for small ones."""
    n, c, h, w = x.shape
    if h * w >= config.CUDA_BLOCK_REDUCE_MIN:
        kernel.launch(global_pool, (c, n), threads_for(h * w), x, live, use_max, out)
    else:
        kernel.launch_flat(global_pool_small, n * c, x, live, use_max, out)


class PoolKernel(CudaKernel):
    def run(self, xs, ctx):
        x, a = xs[0], self.attrs
        n = x.data.shape[0]
        out = self.buffer("out", (n, *self.out_shape))
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = a["kernel_size"], a["stride"], a["padding"]
        mode = 0 if "count_include_pad" not in a else (2 if a["count_include_pad"] else 1)
        self.launch_flat(window_pool, out.size, x.data, self.live_or_ones(x), kh, kw, sh, sw,
                         pt, pl, pb, pr, mode, out)
        return Act(out, x.live)


class GlobalPoolKernel(CudaKernel):
    def __init__(self, device, node, a, in_shapes, out_shape):
        super().__init__(device, node, a, in_shapes, out_shape)
        self.use_max = node.op == "GlobalMaxPool"

    def run(self, xs, ctx):
        x = xs[0]
        n, c = x.data.shape[:2]
        out = self.buffer("out", (n, c, 1, 1))
        launch_global_pool(self, x.data, self.live_or_ones(x), self.use_max, out.reshape(n, c))
        return Act(out, x.live)


__all__ = ["PoolKernel", "GlobalPoolKernel", "launch_global_pool"]
