"""Element-wise activations and Softmax. Each keeps a channel's zeros (live rule 'same')
exactly when f(0) = 0."""

import numpy as np

from .base import LIVE_ALL, LIVE_SAME, Attr, Op

FLOAT32_MAX = float(np.finfo(np.float32).max)


class Elementwise(Op):
    live_rule = LIVE_SAME

    def out_shape(self, a, in_shapes, ctx):
        return in_shapes[0]


class Relu(Elementwise):
    name = "Relu"

    def reference(self, a, w, xs):
        return np.maximum(np.asarray(xs[0], np.float64), 0.0)


class Clip(Elementwise):
    name = "Clip"
    attrs = (Attr("min", "float", -FLOAT32_MAX), Attr("max", "float", FLOAT32_MAX))

    def check_attrs(self, a, ctx):
        if a["min"] > a["max"]:
            raise ctx.error("min", f"min {a['min']} is greater than max {a['max']}")

    def live_rule_for(self, a):
        return LIVE_SAME if a["min"] <= 0.0 <= a["max"] else LIVE_ALL

    def reference(self, a, w, xs):
        return np.clip(np.asarray(xs[0], np.float64), a["min"], a["max"])


class Relu6(Clip):
    """Clip to [0, 6], the MobileNet activation."""
    name = "Relu6"
    attrs = ()

    def check_attrs(self, a, ctx):
        a.update(min=0.0, max=6.0)


class LeakyRelu(Elementwise):
    name = "LeakyRelu"
    attrs = (Attr("alpha", "float", 0.01, low=-1e6, high=1e6),)

    def reference(self, a, w, xs):
        x = np.asarray(xs[0], np.float64)
        return np.where(x >= 0, x, a["alpha"] * x)


class Sigmoid(Elementwise):
    name = "Sigmoid"
    live_rule = LIVE_ALL  # sigmoid(0) = 0.5

    def reference(self, a, w, xs):
        return 1.0 / (1.0 + np.exp(-np.asarray(xs[0], np.float64)))


class Softmax(Elementwise):
    """Softmax over the channel axis (axis 1 of the batched tensor), per position."""
    name = "Softmax"
    live_rule = LIVE_ALL

    def reference(self, a, w, xs):
        x = np.asarray(xs[0], np.float64)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


class Dropout(Elementwise):
    """Identity at inference; `ratio` is kept so that exporters can write it back."""
    name = "Dropout"
    attrs = (Attr("ratio", "float", 0.5, low=0.0, high=1.0),)

    def reference(self, a, w, xs):
        return np.asarray(xs[0], np.float64)
