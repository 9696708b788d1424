"""Run a whole model with the ops' NumPy references, in float64: the oracle for
whole-network tests. Slow by design; use small inputs."""

import numpy as np

from .graph import analyze
from .ops import OPS
from .ops.conv import gate_reference


def run_reference(model, feeds, threshold=None):
    """Return (outputs by name, gate masks by gated node name) for `feeds` (name -> array).

    `threshold` overrides every gate's threshold when given.
    """
    info = analyze(model)
    values = {k: np.asarray(v, np.float64) for k, v in feeds.items()}
    masks, gated = {}, {}  # gated: output tensor -> (dense conv output, channel mask)
    for node in info.order:
        a, op = info.attrs[node.name], OPS[node.op]
        xs = [values[t] for t in node.inputs]
        if node.op == "GatedConv2d":
            _, masks[node.name] = gate_reference(a, node.weights, xs[0], threshold)
            dense = OPS["Conv2d"].reference(a, node.weights, xs)
            gated[node.outputs[0]] = (dense, masks[node.name][:, :, None, None])
            values[node.outputs[0]] = dense * gated[node.outputs[0]][1]
        elif node.op == "BatchNorm2d" and node.inputs[0] in gated:
            # mask * bn(conv(x)): the mask applies after the batch norm (DESIGN.md section 1)
            dense, m = gated[node.inputs[0]]
            values[node.outputs[0]] = op.reference(a, node.weights, [dense]) * m
        else:
            values[node.outputs[0]] = op.reference(a, node.weights, xs)
    return {t: values[t] for t in model.outputs}, masks
