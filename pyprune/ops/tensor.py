"""Ops that move data without arithmetic on it (Concat, Flatten) and Add."""

import math

import numpy as np

from .base import LIVE_CONCAT, LIVE_SAME, LIVE_UNION, Op


class Concat(Op):
    """Concatenation along channels (axis 1 of the batched tensor)."""
    name = "Concat"
    inputs = (1, None)
    live_rule = LIVE_CONCAT

    def out_shape(self, a, in_shapes, ctx):
        first = in_shapes[0]
        for i, shape in enumerate(in_shapes[1:], 1):
            if len(shape) != len(first) or shape[1:] != first[1:]:
                raise ctx.error(f"inputs[{i}]", f"shape {shape} cannot be concatenated on "
                                                f"channels with {first}")
        return (sum(s[0] for s in in_shapes), *first[1:])

    def reference(self, a, w, xs):
        return np.concatenate([np.asarray(x, np.float64) for x in xs], axis=1)


class Add(Op):
    name = "Add"
    inputs = (2, 2)
    live_rule = LIVE_UNION

    def out_shape(self, a, in_shapes, ctx):
        if in_shapes[0] != in_shapes[1]:
            raise ctx.error("inputs", f"shapes {in_shapes[0]} and {in_shapes[1]} differ")
        return in_shapes[0]

    def reference(self, a, w, xs):
        return np.asarray(xs[0], np.float64) + xs[1]


class Flatten(Op):
    """(N, C, H, W) -> (N, C*H*W); channel c's zeros become features c*H*W ... (c+1)*H*W - 1."""
    name = "Flatten"
    live_rule = LIVE_SAME

    def out_shape(self, a, in_shapes, ctx):
        return (math.prod(in_shapes[0]),)

    def reference(self, a, w, xs):
        return np.asarray(xs[0], np.float64).reshape(len(xs[0]), -1)
