"""Max and average pooling, windowed and global. Pooling keeps a zero channel zero, so the
live channels pass through unchanged."""

import numpy as np

from .. import config
from .base import LIVE_SAME, Attr, Op, require_rank, window_out_size

POOL_ATTRS = (
    Attr("kernel_size", "ints", length=2, low=1, high=config.MAX_WINDOW),
    Attr("stride", "ints", (1, 1), length=2, low=1, high=config.MAX_WINDOW),
    Attr("padding", "ints", (0, 0, 0, 0), length=4, low=0, high=config.MAX_WINDOW),
    Attr("ceil_mode", "bool", False),
)


def pool_out_hw(a, h, w, ctx):
    (kh, kw), (sh, sw) = a["kernel_size"], a["stride"]
    pt, pl, pb, pr = a["padding"]
    return (window_out_size(h, kh, sh, pt, pb, 1, a["ceil_mode"], ctx, "kernel_size"),
            window_out_size(w, kw, sw, pl, pr, 1, a["ceil_mode"], ctx, "kernel_size"))


def _taps(x, a, ho, wo, fill, padding=None):
    """Every kernel tap as a strided (N, C, Ho, Wo) slice of x padded with `fill`."""
    (kh, kw), (sh, sw) = a["kernel_size"], a["stride"]
    pt, pl, pb, pr = a["padding"] if padding is None else padding
    _, _, h, w = x.shape
    extra_h = max(0, (ho - 1) * sh + kh - (h + pt + pb))  # ceil_mode may overhang
    extra_w = max(0, (wo - 1) * sw + kw - (w + pl + pr))
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + extra_h), (pl, pr + extra_w)), constant_values=fill)
    return [xp[:, :, i: i + sh * (ho - 1) + 1: sh, j: j + sw * (wo - 1) + 1: sw]
            for i in range(kh) for j in range(kw)]


class Pool2d(Op):
    live_rule = LIVE_SAME

    def check_attrs(self, a, ctx):
        (kh, kw), (pt, pl, pb, pr) = a["kernel_size"], a["padding"]
        if max(pt, pb) >= kh or max(pl, pr) >= kw:
            raise ctx.error("padding", f"padding {a['padding']} must be smaller than kernel_size "
                                       f"{a['kernel_size']} (a window must see the input)")

    def out_shape(self, a, in_shapes, ctx):
        (shape,) = in_shapes
        require_rank(shape, 3, ctx)
        return (shape[0], *pool_out_hw(a, shape[1], shape[2], ctx))


class MaxPool2d(Pool2d):
    name = "MaxPool2d"
    attrs = POOL_ATTRS

    def reference(self, a, w, xs):
        x = np.asarray(xs[0], np.float64)
        ho, wo = pool_out_hw(a, x.shape[2], x.shape[3], None)
        return np.maximum.reduce(_taps(x, a, ho, wo, -np.inf))


class AvgPool2d(Pool2d):
    """count_include_pad counts the declared padding (not the ceil_mode overhang) in the
    divisor, as PyTorch does."""
    name = "AvgPool2d"
    attrs = POOL_ATTRS + (Attr("count_include_pad", "bool", False),)

    def reference(self, a, w, xs):
        x = np.asarray(xs[0], np.float64)
        _, _, h, wd = x.shape
        ho, wo = pool_out_hw(a, h, wd, None)
        total = np.add.reduce(_taps(x, a, ho, wo, 0.0))
        counted = np.ones((1, 1, h, wd))
        if a["count_include_pad"]:
            pt, pl, pb, pr = a["padding"]
            counted = np.pad(counted, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=1.0)
            counted = np.add.reduce(_taps(counted, a, ho, wo, 0.0, padding=(0, 0, 0, 0)))
        else:
            counted = np.add.reduce(_taps(counted, a, ho, wo, 0.0))
        return total / counted


class GlobalPool(Op):
    live_rule = LIVE_SAME

    def out_shape(self, a, in_shapes, ctx):
        require_rank(in_shapes[0], 3, ctx)
        return (in_shapes[0][0], 1, 1)


class GlobalAvgPool(GlobalPool):
    name = "GlobalAvgPool"

    def reference(self, a, w, xs):
        return np.asarray(xs[0], np.float64).mean(axis=(2, 3), keepdims=True)


class GlobalMaxPool(GlobalPool):
    name = "GlobalMaxPool"

    def reference(self, a, w, xs):
        return np.asarray(xs[0], np.float64).max(axis=(2, 3), keepdims=True)
