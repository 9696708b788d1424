"""Graph rewrites applied when a session is built."""

import numpy as np

from .graph import Node, Model
from .ops.norm import batchnorm_scale_shift

CONV_OPS = ("Conv2d", "GatedConv2d")


def fold_batchnorm(model, info, only_gated=False):
    """Fold every BatchNorm2d that alone reads a conv's output into that conv
    (with `only_gated`, only those after gated convs, where folding is required).

    bn(conv(x)) = scale * conv(x) + shift per channel, so W' = W * scale and
    b' = b * scale + shift. For a gated conv the mask applies after the batch norm
    (DESIGN.md section 1), so a skipped channel stays exactly 0.0 after folding.
    Returns a new Model; the given one is not changed.
    """
    producer = {n.outputs[0]: n for n in info.order}
    folded, replaced = {}, set()
    for bn in info.order:
        if bn.op != "BatchNorm2d":
            continue
        conv = producer.get(bn.inputs[0])
        if (conv is None or conv.op not in CONV_OPS or len(info.consumers[bn.inputs[0]]) != 1
                or bn.inputs[0] in model.outputs or (only_gated and conv.op != "GatedConv2d")):
            continue
        scale, shift = batchnorm_scale_shift(info.attrs[bn.name], bn.weights)
        weights = dict(conv.weights)
        weights["weight"] = (np.asarray(conv.weights["weight"], np.float64)
                             * scale[:, None, None, None]).astype(np.float32)
        weights["bias"] = (np.asarray(conv.weights["bias"], np.float64) * scale + shift).astype(np.float32)
        folded[conv.name] = Node(conv.name, conv.op, list(conv.inputs), list(bn.outputs),
                                 dict(conv.attrs), weights)
        replaced.add(bn.name)
    if not folded:
        return model
    nodes = [folded.get(n.name, n) for n in info.order if n.name not in replaced]
    return Model(dict(model.inputs), list(model.outputs), nodes, model.name)
