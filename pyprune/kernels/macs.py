"""Work counts shared by the kernels of every device: the MACs a node executes per sample
given its masks (host NumPy arrays), and its dense count. Stats report these, so a layer
counts the same on the CPU and the GPU."""

import numpy as np


def _mask_or_ones(mask, n, c):
    return mask if mask is not None else np.ones((n, c), np.bool_)


def conv_macs(weight_shape, groups, out_shape, n, live, active):
    """Active kernels x live inputs, per group, per sample; live (N, C_in) and active
    (N, C_out) are bool or None (all)."""
    co, cg, kh, kw = weight_shape
    per_pair = kh * kw * out_shape[1] * out_shape[2]
    live_g = _mask_or_ones(live, n, cg * groups).reshape(n, groups, cg).sum(axis=2)
    active_g = _mask_or_ones(active, n, co).reshape(n, groups, co // groups).sum(axis=2)
    return (live_g * active_g).sum(axis=1) * per_pair, co * cg * per_pair


def gate_macs(c_in, hidden, n_groups):
    """MACs of a gate module's one or two small layers (the pooling is not counted)."""
    return hidden * c_in + n_groups * (hidden or c_in)


def linear_macs(live, in_shape, out_features):
    n, f = in_shape
    live_count = np.full(n, f) if live is None else live.sum(axis=1)
    return live_count * out_features, f * out_features


def node_dense_macs(info, node):
    """Dense MACs per sample of one node of an analyzed model (`info` from graph.analyze)."""
    from ..ops import OPS
    return OPS[node.op].dense_macs(info.attrs[node.name], [info.shapes[t] for t in node.inputs],
                                   info.shapes[node.outputs[0]])


def model_dense_macs(info):
    """Dense MACs per sample of a model: every kernel active over every channel."""
    return sum(node_dense_macs(info, node) for node in info.order)
