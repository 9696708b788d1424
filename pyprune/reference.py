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
    masks = {}
    for node in info.order:
        a, op = info.attrs[node.name], OPS[node.op]
        xs = [values[t] for t in node.inputs]
        if node.op == "GatedConv2d":
            _, masks[node.name] = gate_reference(a, node.weights, xs[0], threshold)
            values[node.outputs[0]] = op.reference(a, node.weights, xs, threshold)
        else:
            values[node.outputs[0]] = op.reference(a, node.weights, xs)
    return {t: values[t] for t in model.outputs}, masks
