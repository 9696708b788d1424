"""GatedCNN <-> pyprune: checkpoints, and the conversion to a pyprune Model.

A checkpoint is a dict saved with torch.save: {"format": "pyprune-gated-cnn", "version": 1,
"config": the GatedCNN config, "state_dict": the weights}. The converter rebuilds the
network from the config and refuses a state dict whose keys or shapes do not match it.
"""

import numpy as np
import torch

from ..errors import ModelError
from ..graph import Model, Node
from .modules import GatedCNN

CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "pyprune-gated-cnn", 1


def save_checkpoint(net, path):
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": net.config,
                "state_dict": net.state_dict()}, path)


def load_checkpoint(path):
    """The GatedCNN saved at `path`, in eval mode. Raises ModelError on any mismatch."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise ModelError(f"cannot read it as a PyTorch checkpoint ({type(e).__name__}: {e})", file=str(path)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"not a pyprune.train checkpoint (expected a dict with format "
                         f"'{CHECKPOINT_FORMAT}', saved by pyprune.train.export.save_checkpoint)",
                         file=str(path), field="format")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ModelError(f"unknown checkpoint version {ckpt.get('version')!r}", file=str(path), field="version")
    try:
        net = GatedCNN(ckpt["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"invalid network config ({type(e).__name__}: {e})", file=str(path), field="config") from None
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise ModelError("missing state_dict", file=str(path), field="state_dict")
    expected = net.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [f"{k}: {tuple(state[k].shape)} instead of {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(getattr(state[k], "shape", ())) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = ([f"missing keys {missing}"] if missing else []) + ([f"unexpected keys {unexpected}"] if unexpected else []) \
            + ([f"wrong shapes: {'; '.join(wrong)}"] if wrong else [])
        raise ModelError("the weights do not match the config: " + ", ".join(parts), file=str(path), field="state_dict")
    net.load_state_dict(state)
    return net.eval()


def _np(t):
    return t.detach().cpu().numpy().astype(np.float32)


def to_pyprune(net, name="gated_cnn"):
    """The pyprune Model that computes what `net` computes in eval mode."""
    net = net.eval()
    nodes, x = [], "input"

    def add(op, inputs, attrs=None, weights=None, node_name=None):
        nodes.append(Node(node_name, op, list(inputs), [node_name], attrs or {}, weights or {}))
        return node_name

    for i, (block, layer) in enumerate(zip(net.blocks, net.config["layers"]), 1):
        conv = block.conv
        attrs = {"out_channels": conv.out_channels, "kernel_size": conv.kernel_size, "stride": conv.stride,
                 "padding": (conv.padding[0], conv.padding[1]) * 2, "dilation": conv.dilation, "groups": conv.groups}
        weights = {"weight": _np(conv.weight), "bias": _np(conv.bias)}
        if block.gated:
            attrs.update(group_size=block.group_size, gate_pool=block.pool, threshold=block.threshold,
                         gate_hidden=block.gate_hidden.out_features if block.gate_hidden is not None else 0)
            weights.update(_gate_weights(block))
        x = add("GatedConv2d" if block.gated else "Conv2d", [x], attrs, weights, f"conv{i}")
        if block.bn is not None:
            bn = block.bn
            x = add("BatchNorm2d", [x], {"epsilon": float(bn.eps)}, {
                "scale": _np(bn.weight), "bias": _np(bn.bias), "mean": _np(bn.running_mean),
                "var": _np(bn.running_var)}, f"bn{i}")
        x = add("Relu", [x], node_name=f"relu{i}")
        if layer.get("pool"):
            p = layer["pool"]
            x = add("MaxPool2d", [x], {"kernel_size": (p, p), "stride": (p, p)}, node_name=f"pool{i}")
    x = add("Flatten", [add("GlobalAvgPool", [x], node_name="gap")], node_name="flatten")
    x = add("Linear", [x], {"out_features": net.fc.out_features}, {"weight": _np(net.fc.weight), "bias": _np(net.fc.bias)}, "fc")
    return Model({"input": tuple(net.config["input"])}, [x], nodes, name)


def _gate_weights(block):
    """The gate's layers with its input standardisation folded into the first of them:
    W ((s - m) / sd) + b = (W / sd) s + (b - W (m / sd))."""
    first = block.gate_hidden if block.gate_hidden is not None else block.gate
    w = first.weight.detach().double()
    m, sd = block.gate_in_mean.double(), block.gate_in_std.double()
    folded_w, folded_b = (w / sd).float(), (first.bias.detach().double() - w @ (m / sd)).float()
    if block.gate_hidden is not None:
        return {"gate_hidden_weight": _np(folded_w), "gate_hidden_bias": _np(folded_b),
                "gate_weight": _np(block.gate.weight), "gate_bias": _np(block.gate.bias)}
    return {"gate_weight": _np(folded_w), "gate_bias": _np(folded_b)}
