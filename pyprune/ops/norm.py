"""BatchNorm2d (inference form). Folded into a preceding conv at load (pyprune.passes)."""

import numpy as np

from .base import LIVE_ALL, Attr, Op, require_rank


def batchnorm_scale_shift(a, w):
    """(scale, shift) with bn(x) = scale * x + shift, per channel, in float64."""
    scale = np.asarray(w["scale"], np.float64) / np.sqrt(np.asarray(w["var"], np.float64) + a["epsilon"])
    return scale, np.asarray(w["bias"], np.float64) - np.asarray(w["mean"], np.float64) * scale


class BatchNorm2d(Op):
    name = "BatchNorm2d"
    attrs = (Attr("epsilon", "float", 1e-5, low=0.0, high=1.0),)
    live_rule = LIVE_ALL  # bn(0) = shift, not 0

    def check_attrs(self, a, ctx):
        if a["epsilon"] <= 0.0:
            raise ctx.error("epsilon", "must be > 0")

    def out_shape(self, a, in_shapes, ctx):
        require_rank(in_shapes[0], 3, ctx)
        return in_shapes[0]

    def weight_shapes(self, a, in_shapes, ctx):
        c = in_shapes[0][0]
        return {"scale": (c,), "bias": (c,), "mean": (c,), "var": (c,)}

    def check_weights(self, a, w, ctx):
        if (np.asarray(w["var"]) < 0).any():
            raise ctx.error("var", "variance must be >= 0")

    def reference(self, a, w, xs):
        scale, shift = batchnorm_scale_shift(a, w)
        return np.asarray(xs[0], np.float64) * scale[None, :, None, None] + shift[None, :, None, None]
