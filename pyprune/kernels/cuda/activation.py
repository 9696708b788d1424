"""CUDA element-wise kernels, Softmax, LRN and the per-channel affine ops (standalone
BatchNorm, Scale, AddBias). One thread per element (per position for Softmax). The live
masks follow the same rules as on the CPU (kernels/cpu/activation.py)."""

import math

import numpy as np
from numba import cuda

from ...ops.norm import batchnorm_scale_shift
from .base import F1, F3, Act, CudaKernel, channels_view, flat

RELU, CLIP, LEAKY, SIGMOID = 0, 1, 2, 3


@cuda.jit(cache=True)
def unary(x, kind, a, b, out):
    i = cuda.grid(1)
    if i < x.shape[0]:
        v = x[i]
        if kind == RELU:
            v = max(v, np.float32(0.0))
        elif kind == CLIP:
            v = min(max(v, a), b)
        elif kind == LEAKY:
            if v < 0:
                v = a * v
        else:
            v = np.float32(1.0 / (1.0 + math.exp(-np.float64(v))))
        out[i] = v


@cuda.jit(cache=True)
def scale_shift(x, scale, shift, out):
    """out[s, c, k] = x[s, c, k] * scale[c] + shift[c] on (N, C, P) views."""
    i = cuda.grid(1)
    n, c, p = x.shape
    if i < n * c * p:
        s, r = i // (c * p), i % (c * p)
        ch, k = r // p, r % p
        out[s, ch, k] = x[s, ch, k] * scale[ch] + shift[ch]


@cuda.jit(cache=True)
def softmax(x, out):
    """Softmax over channels, one thread per (sample, position) of (N, C, P) views."""
    i = cuda.grid(1)
    n, c, p = x.shape
    if i < n * p:
        s, k = i // p, i % p
        m = x[s, 0, k]
        for ch in range(1, c):
            m = max(m, x[s, ch, k])
        total = 0.0
        for ch in range(c):
            total += math.exp(np.float64(x[s, ch, k]) - m)
        for ch in range(c):
            out[s, ch, k] = math.exp(np.float64(x[s, ch, k]) - m) / total


@cuda.jit(cache=True)
def lrn(x, size, alpha, beta, bias, out):
    """ONNX LRN on (N, C, P) views; the window is [c - (size-1)//2, c + size//2]."""
    i = cuda.grid(1)
    n, c, p = x.shape
    if i < n * c * p:
        s, r = i // (c * p), i % (c * p)
        ch, k = r // p, r % p
        acc = 0.0
        for j in range(max(0, ch - (size - 1) // 2), min(c, ch + size // 2 + 1)):
            v = np.float64(x[s, j, k])
            acc += v * v
        out[s, ch, k] = x[s, ch, k] / (bias + alpha / size * acc) ** beta


PTX_SIGNATURES = [
    (unary, f"void({F1}, int64, float32, float32, {F1})"),
    (scale_shift, f"void({F3}, {F1}, {F1}, {F3})"),
    (softmax, f"void({F3}, {F3})"),
    (lrn, f"void({F3}, int64, float64, float64, float64, {F3})"),
]


class UnaryKernel(CudaKernel):
    def __init__(self, device, node, a, in_shapes, out_shape):
        super().__init__(device, node, a, in_shapes, out_shape)
        op = node.op
        self.kind = {"Relu": RELU, "Clip": CLIP, "Relu6": CLIP, "LeakyRelu": LEAKY, "Sigmoid": SIGMOID}[op]
        self.a = np.float32(a.get("min", a.get("alpha", 0.0)))
        self.b = np.float32(a.get("max", 0.0))
        self.keeps_live = op != "Sigmoid" and (self.kind != CLIP or a["min"] <= 0.0 <= a["max"])

    def run(self, xs, ctx):
        x = xs[0]
        out = self.buffer("out", x.data.shape)
        self.launch_flat(unary, x.data.size, flat(x.data), self.kind, self.a, self.b, flat(out))
        return Act(out, x.live if self.keeps_live else None)


class IdentityKernel(CudaKernel):
    """Dropout at inference."""

    def run(self, xs, ctx):
        return xs[0]


class ChannelAffineKernel(CudaKernel):
    """Standalone BatchNorm and AddBias (every channel live after), Scale (live kept)."""

    def __init__(self, device, node, a, in_shapes, out_shape):
        super().__init__(device, node, a, in_shapes, out_shape)
        c = in_shapes[0][0]
        if node.op == "BatchNorm2d":
            scale, shift = batchnorm_scale_shift(a, node.weights)
        else:
            scale, shift = node.weights.get("scale", np.ones(c)), node.weights.get("bias", np.zeros(c))
        self.scale, self.shift = self.upload(scale), self.upload(shift)
        self.keeps_live = node.op == "Scale"

    def run(self, xs, ctx):
        x = xs[0]
        out = self.buffer("out", x.data.shape)
        self.launch_flat(scale_shift, x.data.size, channels_view(x.data), self.scale, self.shift,
                         channels_view(out))
        return Act(out, x.live if self.keeps_live else None)


class SoftmaxKernel(CudaKernel):
    def run(self, xs, ctx):
        x = xs[0].data
        out = self.buffer("out", x.shape)
        view = channels_view(x)
        self.launch_flat(softmax, view.shape[0] * view.shape[2], view, channels_view(out))
        return Act(out, None)


class LrnKernel(CudaKernel):
    def run(self, xs, ctx):
        x, a = xs[0], self.attrs
        out = self.buffer("out", x.data.shape)
        self.launch_flat(lrn, x.data.size, channels_view(x.data), a["size"], float(a["alpha"]),
                         float(a["beta"]), float(a["bias"]), channels_view(out))
        return Act(out, x.live)
