"""Per-channel affine ops (what ONNX Mul/Add/Sub/Div with a constant become) and LRN."""

import numpy as np

from .. import config
from .base import LIVE_ALL, LIVE_SAME, Attr, Op


def _channel_view(x):
    """(N, C, ...) -> (N, C, P) float64: per-sample rank 1 or 3 alike."""
    x = np.asarray(x, np.float64)
    return x.reshape(x.shape[0], x.shape[1], -1)


class PerChannel(Op):
    """An op with one weight vector of one value per channel (axis 1)."""
    weight = ""

    def out_shape(self, a, in_shapes, ctx):
        return in_shapes[0]

    def weight_shapes(self, a, in_shapes, ctx):
        return {self.weight: (in_shapes[0][0],)}

    def reference(self, a, w, xs):
        v = np.asarray(w[self.weight], np.float64)[None, :, None]
        return self.apply(_channel_view(xs[0]), v).reshape(np.shape(xs[0]))


class Scale(PerChannel):
    """y[:, c] = x[:, c] * scale[c] (a zero channel stays zero)."""
    name, weight, live_rule = "Scale", "scale", LIVE_SAME

    @staticmethod
    def apply(x, v):
        return x * v


class AddBias(PerChannel):
    """y[:, c] = x[:, c] + bias[c]."""
    name, weight, live_rule = "AddBias", "bias", LIVE_ALL

    @staticmethod
    def apply(x, v):
        return x + v


class LRN(Op):
    """Local response normalisation across channels (ONNX / AlexNet):
    y = x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels) ** beta."""
    name = "LRN"
    attrs = (Attr("size", "int", low=1, high=config.MAX_CHANNELS), Attr("alpha", "float", 1e-4),
             Attr("beta", "float", 0.75), Attr("bias", "float", 1.0))
    live_rule = LIVE_SAME

    def out_shape(self, a, in_shapes, ctx):
        return in_shapes[0]

    def reference(self, a, w, xs):
        x = np.asarray(xs[0], np.float64)
        c = x.shape[1]
        lo, hi = (a["size"] - 1) // 2, -(-(a["size"] - 1) // 2)
        sq = np.zeros_like(x)
        for ch in range(c):
            sq[:, ch] = (x[:, max(0, ch - lo): min(c, ch + hi + 1)] ** 2).sum(axis=1)
        return x / (a["bias"] + a["alpha"] / a["size"] * sq) ** a["beta"]
