"""Recognise the gated-conv subgraph that pyprune's ONNX writer emits (onnx_export.py):

    Conv(x) --------------------------------------------------------------> Mul -> y
    GlobalAveragePool|GlobalMaxPool(x) -> Flatten -> [Gemm -> Relu] -> Gemm    ^
        -> Greater(cut) -> Cast -> MatMul(group-to-channel 0/1 matrix) -> Reshape

and import it as one GatedConv2d with threshold sigmoid(cut). Every intermediate tensor
must have exactly one reader; anything else is imported node by node.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .onnx_ops import Unsupported, attrs_of, conv_attrs


@dataclass
class Fusions:
    skip: set = field(default_factory=set)   # ids of nodes folded into a gated conv
    at: dict = field(default_factory=dict)   # id of the Mul node -> emits the gated conv


def find_gated_convs(nodes, imp):
    """Fusions keyed by id() of the node objects in the list `nodes`."""
    producer = {out: n for n in nodes for out in n.output}
    readers = {}
    for n in nodes:
        for t in n.input:
            readers[t] = readers.get(t, 0) + 1
    fusions = Fusions()
    for mul in nodes:
        if mul.op_type != "Mul":
            continue
        match = _match(mul, producer, readers, imp)
        if match is not None:
            chain, emit = match
            fusions.skip.update(id(n) for n in chain)
            fusions.at[id(mul)] = emit
    return fusions


def _step(t, op_types, producer, readers):
    node = producer.get(t)
    if node is None or node.op_type not in op_types or readers.get(t, 0) != 1:
        return None
    return node


def _match(mul, producer, readers, imp):
    for conv_out, mask in (mul.input, mul.input[::-1]):
        conv = _step(conv_out, ("Conv",), producer, readers)
        reshape = _step(mask, ("Reshape",), producer, readers)
        matmul = reshape and _step(reshape.input[0], ("MatMul",), producer, readers)
        cast = matmul and _step(matmul.input[0], ("Cast",), producer, readers)
        greater = cast and _step(cast.input[0], ("Greater",), producer, readers)
        gemm = greater and _step(greater.input[0], ("Gemm",), producer, readers)
        if not (conv and gemm):
            continue
        feat, hidden = gemm.input[0], None
        relu = _step(feat, ("Relu",), producer, readers)
        if relu is not None:
            hidden = _step(relu.input[0], ("Gemm",), producer, readers)
            if hidden is None:
                continue
            feat = hidden.input[0]
        flatten = _step(feat, ("Flatten",), producer, readers)
        pool = flatten and _step(flatten.input[0], ("GlobalAveragePool", "GlobalMaxPool"), producer, readers)
        if not pool or pool.input[0] != conv.input[0]:
            continue
        chain = [n for n in (conv, pool, flatten, hidden, relu, gemm, greater, cast, matmul, reshape) if n]
        return chain, _emitter(conv, pool, hidden, gemm, greater, matmul, mul)
    return None


def _emitter(conv, pool, hidden, gemm, greater, matmul, mul):
    def emit(imp):
        for g in (hidden, gemm):
            a = g and attrs_of(g)
            if g is not None and (a.get("transB", 0) != 1 or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0
                                  or a.get("beta", 1.0) != 1.0):
                raise Unsupported("gate Gemm must be x W^T + b (transB = 1, alpha = beta = 1)")
        consts = [greater.input[1], matmul.input[1], gemm.input[1], gemm.input[2]] + \
            ([hidden.input[1], hidden.input[2]] if hidden else [])
        if not all(imp.is_const(t) for t in consts):
            raise Unsupported("gate weights, threshold and expansion must be constants")
        expand = np.asarray(imp.const(matmul.input[1]))
        groups, channels = expand.shape
        size = channels // groups
        if channels % groups or not np.array_equal(expand, np.repeat(np.eye(groups), size, axis=1)):
            raise Unsupported("the gate's group-to-channel matrix is not a block of ones per group")
        cut = float(np.asarray(imp.const(greater.input[1])).reshape(-1)[0])
        threshold = 0.0 if cut == -math.inf else 1.0 if cut == math.inf else 1.0 / (1.0 + math.exp(-cut))
        attrs, weights = conv_attrs(imp, conv)
        attrs.update(group_size=size, gate_pool="max" if pool.op_type == "GlobalMaxPool" else "avg",
                     gate_hidden=0, threshold=threshold)
        weights.update(gate_weight=imp.const(gemm.input[1]), gate_bias=imp.const(gemm.input[2]))
        if hidden is not None:
            attrs["gate_hidden"] = int(imp.const(hidden.input[1]).shape[0])
            weights.update(gate_hidden_weight=imp.const(hidden.input[1]), gate_hidden_bias=imp.const(hidden.input[2]))
        imp.emit("GatedConv2d", [conv.input[0]], mul.output[0], attrs, weights, name=conv.name or mul.output[0])
    return emit
