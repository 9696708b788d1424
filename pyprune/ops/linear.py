"""Linear (fully connected): y = x W^T + b on (N, F) inputs."""

import numpy as np

from .. import config
from .base import LIVE_ALL, Attr, Op, require_rank


class Linear(Op):
    name = "Linear"
    attrs = (Attr("out_features", "int", low=1, high=config.MAX_CHANNELS),)
    live_rule = LIVE_ALL

    def out_shape(self, a, in_shapes, ctx):
        require_rank(in_shapes[0], 1, ctx)
        return (a["out_features"],)

    def weight_shapes(self, a, in_shapes, ctx):
        return {"weight": (a["out_features"], in_shapes[0][0]), "bias": (a["out_features"],)}

    def dense_macs(self, a, in_shapes, out_shape):
        return in_shapes[0][0] * a["out_features"]

    def reference(self, a, w, xs):
        return np.asarray(xs[0], np.float64) @ np.asarray(w["weight"], np.float64).T + w["bias"]
