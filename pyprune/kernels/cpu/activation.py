"""CPU element-wise kernels, Softmax and standalone BatchNorm. Element-wise ops work on the
flat array: a dead channel's zeros map to f(0), which is 0 for the ops whose live rule is
'same' (their output keeps the input's live mask)."""

import numpy as np
from numba import njit

from ...ops.norm import batchnorm_scale_shift
from .base import Act, CpuKernel, kept


@njit(cache=True, nogil=True)
def relu(x, out):
    for i in range(x.size):
        out[i] = x[i] if x[i] > 0.0 else 0.0


@njit(cache=True, nogil=True)
def clip(x, lo, hi, out):
    for i in range(x.size):
        out[i] = min(max(x[i], lo), hi)


@njit(cache=True, nogil=True)
def leaky_relu(x, alpha, out):
    for i in range(x.size):
        out[i] = x[i] if x[i] >= 0.0 else alpha * x[i]


@njit(cache=True, nogil=True)
def sigmoid(x, out):
    for i in range(x.size):
        out[i] = 1.0 / (1.0 + np.exp(-np.float64(x[i])))


@njit(cache=True, nogil=True)
def softmax(x, out):
    """Softmax over axis 1 of x viewed as (N, C, P)."""
    n, c, p = x.shape
    for s in range(n):
        for k in range(p):
            m = x[s, 0, k]
            for ch in range(1, c):
                m = max(m, x[s, ch, k])
            total = 0.0
            for ch in range(c):
                e = np.exp(np.float64(x[s, ch, k]) - m)
                out[s, ch, k] = e
                total += e
            for ch in range(c):
                out[s, ch, k] = out[s, ch, k] / total


@njit(cache=True, nogil=True)
def scale_shift(x, scale, shift, out):
    """out[s, c] = x[s, c] * scale[c] + shift[c] on x viewed as (N, C, P)."""
    n, c, p = x.shape
    for s in range(n):
        for ch in range(c):
            for k in range(p):
                out[s, ch, k] = x[s, ch, k] * scale[ch] + shift[ch]


class ElementwiseKernel(CpuKernel):
    keeps_live = True

    def run(self, xs, ctx):
        x = xs[0]
        out = np.empty_like(x.data)
        self.apply(x.data.reshape(-1), out.reshape(-1))
        return Act(out, x.live if self.keeps_live else None)

    def bind(self, xs, phase, store, pair=None):
        """apply() into a kept output (CpuKernel.bind)."""
        x = xs[0]
        if not x.data.flags.c_contiguous:
            return None
        out = kept(store, "out", x.data.shape)
        return ((self.apply, (x.data.reshape(-1), out.reshape(-1))),), Act(out, x.live if self.keeps_live else None)


class ReluKernel(ElementwiseKernel):
    def apply(self, x, out):
        relu(x, out)


class ClipKernel(ElementwiseKernel):
    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        self.lo, self.hi = np.float32(a["min"]), np.float32(a["max"])
        self.keeps_live = a["min"] <= 0.0 <= a["max"]

    def apply(self, x, out):
        clip(x, self.lo, self.hi, out)


class LeakyReluKernel(ElementwiseKernel):
    def apply(self, x, out):
        leaky_relu(x, np.float32(self.attrs["alpha"]), out)


class SigmoidKernel(ElementwiseKernel):
    keeps_live = False

    def apply(self, x, out):
        sigmoid(x, out)


class IdentityKernel(CpuKernel):
    """Dropout at inference."""

    def run(self, xs, ctx):
        return xs[0]

    def bind(self, xs, phase, store, pair=None):
        return (), xs[0]


class SoftmaxKernel(CpuKernel):
    def run(self, xs, ctx):
        x = xs[0].data
        out = np.empty_like(x)
        softmax(x.reshape(x.shape[0], x.shape[1], -1), out.reshape(x.shape[0], x.shape[1], -1))
        return Act(out, None)


class BatchNormKernel(CpuKernel):
    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        scale, shift = batchnorm_scale_shift(a, node.weights)
        self.scale, self.shift = scale.astype(np.float32), shift.astype(np.float32)

    def run(self, xs, ctx):
        x = xs[0].data
        out = np.empty_like(x)
        n, c = x.shape[:2]
        scale_shift(x.reshape(n, c, -1), self.scale, self.shift, out.reshape(n, c, -1))
        return Act(out, None)


@njit(cache=True, nogil=True)
def lrn(x, size, alpha, beta, bias, out):
    """ONNX LRN on x viewed as (N, C, P); the window is [c - (size-1)//2, c + ceil((size-1)/2)]."""
    n, c, p = x.shape
    lo, hi = (size - 1) // 2, size // 2
    for s in range(n):
        for k in range(p):
            for ch in range(c):
                acc = 0.0
                for j in range(max(0, ch - lo), min(c, ch + hi + 1)):
                    acc += np.float64(x[s, j, k]) * x[s, j, k]
                out[s, ch, k] = x[s, ch, k] / (bias + alpha / size * acc) ** beta


class ChannelAffineKernel(CpuKernel):
    """Scale (live channels kept) and AddBias (every channel live) on (N, C, ...)."""

    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        c = in_shapes[0][0]
        self.scale = np.ascontiguousarray(node.weights.get("scale", np.ones(c)), np.float32)
        self.shift = np.ascontiguousarray(node.weights.get("bias", np.zeros(c)), np.float32)
        self.keeps_live = node.op == "Scale"

    def run(self, xs, ctx):
        x = xs[0]
        out = np.empty_like(x.data)
        n, c = x.data.shape[:2]
        scale_shift(x.data.reshape(n, c, -1), self.scale, self.shift, out.reshape(n, c, -1))
        return Act(out, x.live if self.keeps_live else None)


class LrnKernel(CpuKernel):
    def run(self, xs, ctx):
        x, a = xs[0], self.attrs
        out = np.empty_like(x.data)
        n, c = x.data.shape[:2]
        lrn(x.data.reshape(n, c, -1), a["size"], a["alpha"], a["beta"], a["bias"], out.reshape(n, c, -1))
        return Act(out, x.live)
