"""CUDA convolution. Both kernels read only the live input channels of each sample and
compute only its active output channels; an inactive channel is written as exact 0.0.

groups == 1 (`conv_tile`): a thread computes one output pixel for K output channels
(config.CUDA_CONV_CHANNELS) in registers, so each input value it loads serves K kernels and
each weight it loads is the same for the whole block (a broadcast). The K channels are
positions of the sample's channel order, active channels first (listing.py):
a block whose channels are all inactive only writes zeros, so the work done follows the
active count rounded up to K, not the dense count.

Grouped and depthwise convs (`conv_grouped`): one thread per output element.

Both write output channel c to out[:, c0 + c]: `out` is the whole buffer, so that a conv
writing into a concat takes the concat buffer and its first channel (a ChannelWindow)
rather than a slice of it (see ChannelWindow for why).
"""

import numpy as np
from numba import cuda

from ... import config
from ..macs import conv_macs
from .base import B2, F1, F4, I1, I2, Act, ChannelWindow, CudaKernel, blocks_for, threads_for
from .listing import launch_compact

K = config.CUDA_CONV_CHANNELS


@cuda.jit(cache=True)
def conv_tile(x, w, b, live, order, n_act, sh, sw, pt, pl, dh, dw, relu, out, c0):
    """Grid (pixel blocks, ceil(C_out / K), N); see the module docstring."""
    s = cuda.blockIdx.z
    first = cuda.blockIdx.y * K
    p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    c_out, ho, wo = w.shape[0], out.shape[2], out.shape[3]
    if p >= ho * wo:
        return
    oy, ox = p // wo, p % wo
    na = n_act[s]
    count = min(K, c_out - first)
    if first >= na:
        for k in range(count):
            out[s, c0 + order[s, first + k], oy, ox] = 0.0
        return
    acc = cuda.local.array(K, np.float32)
    chan = cuda.local.array(K, np.int32)
    for k in range(K):
        # Positions past the last active channel compute a duplicate, stored as 0 below.
        chan[k] = order[s, min(first + k, na - 1)]
        acc[k] = b[chan[k]]
    c_in, h, wd = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    for ci in range(c_in):
        if not live[s, ci]:  # uniform over the block: no divergence
            continue
        for i in range(kh):
            iy = oy * sh - pt + i * dh
            if iy < 0 or iy >= h:
                continue
            for j in range(kw):
                ix = ox * sw - pl + j * dw
                if ix < 0 or ix >= wd:
                    continue
                v = x[s, ci, iy, ix]
                for k in range(K):
                    acc[k] += w[chan[k], ci, i, j] * v
    for k in range(count):
        if first + k < na:
            v = acc[k]
            if relu:
                v = max(v, np.float32(0.0))
            out[s, c0 + chan[k], oy, ox] = v
        else:
            out[s, c0 + order[s, first + k], oy, ox] = 0.0


@cuda.jit(cache=True)
def conv_grouped(x, w, b, live, active, sh, sw, pt, pl, dh, dw, groups, relu, out, c0):
    """One thread per output element, for any groups."""
    i = cuda.grid(1)
    n, co, ho, wo = out.shape[0], w.shape[0], out.shape[2], out.shape[3]
    if i >= n * co * ho * wo:
        return
    ox = i % wo
    oy = (i // wo) % ho
    oc = (i // (wo * ho)) % co
    s = i // (wo * ho * co)
    if not active[s, oc]:
        out[s, c0 + oc, oy, ox] = 0.0
        return
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    h, wd = x.shape[2], x.shape[3]
    g = oc // (co // groups)
    acc = b[oc]
    for ci in range(cg):
        ic = g * cg + ci
        if not live[s, ic]:
            continue
        for ki in range(kh):
            iy = oy * sh - pt + ki * dh
            if iy < 0 or iy >= h:
                continue
            for kj in range(kw):
                ix = ox * sw - pl + kj * dw
                if 0 <= ix < wd:
                    acc += w[oc, ci, ki, kj] * x[s, ic, iy, ix]
    if relu:
        acc = max(acc, np.float32(0.0))
    out[s, c0 + oc, oy, ox] = acc

_GEOMETRY = "int64, int64, int64, int64, int64, int64"
PTX_SIGNATURES = [
    (conv_tile, f"void({F4}, {F4}, {F1}, {B2}, {I2}, {I1}, {_GEOMETRY}, boolean, {F4}, int64)"),
    (conv_grouped, f"void({F4}, {F4}, {F1}, {B2}, {B2}, {_GEOMETRY}, int64, boolean, {F4}, int64)"),
]


class ConvKernel(CudaKernel):
    """Weights are copied to the GPU once. A following ReLU can be fused (`fused_relu`), and
    the output can be a ChannelWindow of a concat buffer (`out`)."""

    def __init__(self, device, node, a, in_shapes, out_shape):
        super().__init__(device, node, a, in_shapes, out_shape)
        self.weight = self.upload(node.weights["weight"])
        self.bias = self.upload(node.weights["bias"])
        self.weight_shape = node.weights["weight"].shape
        self.groups = a["groups"]
        self.geometry = (*a["stride"], a["padding"][0], a["padding"][1], *a["dilation"])
        self.fused_relu = False

    def run(self, xs, ctx, out=None):
        return Act(self.convolve(xs[0], None, out), None)

    def convolve(self, x, active, out=None, listed=None):
        """Convolve x (an Act) computing only the `active` (N, C_out) channels, a GPU mask
        (None: all), into `out` (a ChannelWindow) or a reused buffer; returns the output.
        listed: (order, n_act) of `active` as listing.py lists them, where the caller has them."""
        n = x.data.shape[0]
        co, ho, wo = self.out_shape
        own = out is None
        window = ChannelWindow(self.buffer("out", (n, *self.out_shape)), 0, co) if own else out
        out, c0 = window.buffer, window.first
        live = self.live_or_ones(x)
        if self.groups == 1:
            if active is None:
                order, n_act = self._every_channel(n)
            elif listed is not None:
                order, n_act = listed
            else:
                order, n_act = self.buffer("order", (n, co), np.int32), self.buffer("n_act", (n,), np.int32)
                launch_compact(self, active, order, n_act)
            threads = threads_for(ho * wo)
            self.launch(conv_tile, (blocks_for(ho * wo, threads), -(-co // K), n), threads, x.data,
                        self.weight, self.bias, live, order, n_act, *self.geometry, self.fused_relu, out, c0)
        else:
            active = active if active is not None else self.device.ones(n, co)
            self.launch_flat(conv_grouped, n * co * ho * wo, x.data, self.weight, self.bias, live, active,
                             *self.geometry, self.groups, self.fused_relu, out, c0)
        return out if own else window

    def _every_channel(self, n):
        """The order and active count of a dense conv (every channel active), made once per n."""
        cached = self._buffers.get("every")
        if cached is None or cached[1].shape[0] != n:
            co = self.out_shape[0]
            cached = self._buffers["every"] = (self.upload(np.tile(np.arange(co), (n, 1)), np.int32),
                                               self.upload(np.full(n, co), np.int32))
        return cached

    def macs(self, xs, y):
        return conv_macs(self.weight_shape, self.groups, self.out_shape, xs[0].data.shape[0],
                         xs[0].live, y.live)
