"""Conv2d and GatedConv2d (DESIGN.md section 1).

Padding is (top, left, bottom, right); weights are (C_out, C_in / groups, kh, kw); the
bias is always stored (zeros where the source had none) so every conv has one layout.
"""

import math

import numpy as np

from .. import config
from .base import LIVE_ALL, LIVE_GATE, Attr, Op, require_rank, window_out_size

CONV_ATTRS = (
    Attr("out_channels", "int", low=1, high=config.MAX_CHANNELS),
    Attr("kernel_size", "ints", length=2, low=1, high=config.MAX_WINDOW),
    Attr("stride", "ints", (1, 1), length=2, low=1, high=config.MAX_WINDOW),
    Attr("padding", "ints", (0, 0, 0, 0), length=4, low=0, high=config.MAX_WINDOW),
    Attr("dilation", "ints", (1, 1), length=2, low=1, high=config.MAX_WINDOW),
    Attr("groups", "int", 1, low=1, high=config.MAX_CHANNELS),
)


def conv_out_hw(a, h, w, ctx):
    (kh, kw), (sh, sw), (dh, dw) = a["kernel_size"], a["stride"], a["dilation"]
    pt, pl, pb, pr = a["padding"]
    return (window_out_size(h, kh, sh, pt, pb, dh, False, ctx, "kernel_size"),
            window_out_size(w, kw, sw, pl, pr, dw, False, ctx, "kernel_size"))


def conv2d_reference(x, weight, bias, stride, padding, dilation, groups):
    """Direct float64 convolution: sum over kernel taps of strided slices."""
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    n, c, h, w = x.shape
    co, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    pt, pl, pb, pr = padding
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    out = np.zeros((n, co, ho, wo))
    cog = co // groups
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
            for g in range(groups):
                out[:, g * cog:(g + 1) * cog] += np.einsum(
                    "nchw,oc->nohw", tap[:, g * cg:(g + 1) * cg], weight[g * cog:(g + 1) * cog, :, i, j])
    return out + np.asarray(bias, np.float64)[None, :, None, None]


class Conv2d(Op):
    name = "Conv2d"
    attrs = CONV_ATTRS
    live_rule = LIVE_ALL

    def check_attrs(self, a, ctx):
        if a["out_channels"] % a["groups"]:
            raise ctx.error("groups", f"out_channels {a['out_channels']} is not divisible by groups {a['groups']}")

    def out_shape(self, a, in_shapes, ctx):
        (shape,) = in_shapes
        require_rank(shape, 3, ctx)
        if shape[0] % a["groups"]:
            raise ctx.error("groups", f"input channels {shape[0]} are not divisible by groups {a['groups']}")
        return (a["out_channels"], *conv_out_hw(a, shape[1], shape[2], ctx))

    def weight_shapes(self, a, in_shapes, ctx):
        c = in_shapes[0][0]
        return {"weight": (a["out_channels"], c // a["groups"], *a["kernel_size"]),
                "bias": (a["out_channels"],)}

    def dense_macs(self, a, in_shapes, out_shape):
        c_out, ho, wo = out_shape
        return c_out * (in_shapes[0][0] // a["groups"]) * math.prod(a["kernel_size"]) * ho * wo

    def reference(self, a, w, xs):
        return conv2d_reference(xs[0], w["weight"], w["bias"], a["stride"], a["padding"],
                                a["dilation"], a["groups"])


def gate_cut(threshold):
    """logit(threshold): sigmoid(z) > t  <=>  z > logit(t), so inference skips the sigmoid.

    t = 0 gives -inf (every kernel active), t = 1 gives +inf (none active). A logit that
    equals the cut is inactive, as sigmoid(z) > t is then false.
    """
    if threshold <= 0.0:
        return -math.inf
    if threshold >= 1.0:
        return math.inf
    return math.log(threshold) - math.log1p(-threshold)


def gate_reference(a, w, x, threshold=None):
    """(logits (N, G), channel mask (N, C_out)) of the gate module, in float64."""
    x = np.asarray(x, np.float64)
    s = x.max(axis=(2, 3)) if a["gate_pool"] == "max" else x.mean(axis=(2, 3))
    if a["gate_hidden"]:
        s = np.maximum(s @ np.asarray(w["gate_hidden_weight"], np.float64).T + w["gate_hidden_bias"], 0.0)
    z = s @ np.asarray(w["gate_weight"], np.float64).T + np.asarray(w["gate_bias"], np.float64)
    t = a["threshold"] if threshold is None else threshold
    return z, np.repeat(z > gate_cut(t), a["group_size"], axis=1)


class GatedConv2d(Conv2d):
    name = "GatedConv2d"
    attrs = CONV_ATTRS + (
        Attr("group_size", "int", 1, low=1, high=config.MAX_CHANNELS),
        Attr("gate_pool", "str", "avg", choices={"avg", "max"}),
        Attr("gate_hidden", "int", 0, low=0, high=config.MAX_CHANNELS),
        Attr("threshold", "float", 0.5, low=0.0, high=1.0),
    )
    live_rule = LIVE_GATE

    def check_attrs(self, a, ctx):
        super().check_attrs(a, ctx)
        if a["out_channels"] % a["group_size"]:
            raise ctx.error("group_size", f"out_channels {a['out_channels']} is not divisible "
                                          f"by group_size {a['group_size']}")

    def weight_shapes(self, a, in_shapes, ctx):
        shapes = super().weight_shapes(a, in_shapes, ctx)
        c, hidden = in_shapes[0][0], a["gate_hidden"]
        groups = a["out_channels"] // a["group_size"]
        if hidden:
            shapes["gate_hidden_weight"] = (hidden, c)
            shapes["gate_hidden_bias"] = (hidden,)
        shapes["gate_weight"] = (groups, hidden or c)
        shapes["gate_bias"] = (groups,)
        return shapes

    def reference(self, a, w, xs, threshold=None):
        _, mask = gate_reference(a, w, xs[0], threshold)
        return super().reference(a, w, xs) * mask[:, :, None, None]
