"""The layer graph: nodes, tensors, topological order, shape and live-channel inference.

A `Model` is plain data (what a file holds). `analyze` checks it completely and returns a
`GraphInfo` with the parsed attributes, every tensor's per-sample shape and whether the
tensor can have dead channels at run time. Nothing runs on a model that failed `analyze`.
"""

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from . import config
from .errors import ModelError
from .ops import OPS
from .ops.base import LIVE_ALL, LIVE_CONCAT, LIVE_GATE, LIVE_SAME, LIVE_UNION, NodeContext, check_elements


@dataclass
class Node:
    """One op application. `weights` maps names to float32 arrays."""
    name: str
    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)


@dataclass
class Model:
    """A network: graph inputs (name -> per-sample shape, batch excluded), outputs, nodes."""
    inputs: dict
    outputs: list
    nodes: list
    name: str = "model"

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


@dataclass
class GraphInfo:
    order: list          # nodes in topological order
    attrs: dict          # node name -> parsed attributes (defaults filled in)
    shapes: dict         # tensor name -> per-sample shape
    partial: dict        # tensor name -> True when some channels may be dead at run time
    consumers: dict      # tensor name -> names of the nodes that read it


def analyze(model, check_values=True):
    """Validate `model` in full and infer shapes and live-channel behaviour.

    Weights may be anything with `.shape` and `.dtype` (h5py datasets, for checks before
    reading); `check_values` also rejects NaN/Inf and out-of-range values, which needs data.
    Raises ModelError naming the node and field at the first problem.
    """
    shapes, partial = _check_inputs(model)
    if len(model.nodes) > config.MAX_NODES:
        raise ModelError(f"{len(model.nodes)} nodes is over the limit of {config.MAX_NODES}")
    order = _topological_order(model, set(shapes))
    attrs, consumers = {}, {}
    for node in order:
        ctx = NodeContext(node.name, node.op)
        op = _check_signature(node, ctx)
        a = attrs[node.name] = op.parse_attrs(dict(node.attrs), ctx)
        in_shapes = [shapes[t] for t in node.inputs]
        out = tuple(op.out_shape(a, in_shapes, ctx))
        check_elements(out, ctx, "outputs")
        _check_weights(node, op.weight_shapes(a, in_shapes, ctx), ctx)
        if check_values:
            check_weight_values(node, op, a, ctx)
        shapes[node.outputs[0]] = out
        partial[node.outputs[0]] = _may_be_partial(op.live_rule_for(a), [partial[t] for t in node.inputs])
        for t in node.inputs:
            consumers.setdefault(t, []).append(node.name)
    for t in model.outputs:
        if t not in shapes:
            raise ModelError(f"graph output '{t}' is not produced by any node", field="outputs")
    _check_gated_batchnorms(model, order, consumers)
    return GraphInfo(order, attrs, shapes, partial, consumers)


def _check_inputs(model):
    if not model.inputs:
        raise ModelError("the graph has no inputs", field="inputs")
    if not model.outputs:
        raise ModelError("the graph has no outputs", field="outputs")
    shapes, partial = {}, {}
    for name, shape in model.inputs.items():
        shape = tuple(shape)
        if len(shape) not in (1, 2, 3) or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
            raise ModelError(f"input '{name}' must have a per-sample shape (C, H, W), (C, L) or (F,) "
                             f"of positive integers, got {shape}", field="inputs")
        if math.prod(shape) > config.MAX_TENSOR_ELEMENTS:
            raise ModelError(f"input '{name}' declares {math.prod(shape)} elements per sample, "
                             f"over the limit of {config.MAX_TENSOR_ELEMENTS}", field="inputs")
        shapes[name] = tuple(int(d) for d in shape)
        partial[name] = False
    return shapes, partial


def _topological_order(model, graph_inputs):
    """Nodes sorted so that every tensor is produced before it is read."""
    producer, names = {}, set()
    for node in model.nodes:
        if node.name in names:
            raise ModelError("node name used twice", node=node.name, op=node.op, field="name")
        names.add(node.name)
        for t in node.outputs:
            if t in graph_inputs or t in producer:
                raise ModelError(f"tensor '{t}' is produced twice", node=node.name, op=node.op,
                                 field="outputs")
            producer[t] = node
    for node in model.nodes:
        for t in node.inputs:
            if t not in producer and t not in graph_inputs:
                raise ModelError(f"input tensor '{t}' is not defined by any node or graph input",
                                 node=node.name, op=node.op, field="inputs")
    # Kahn's algorithm taking the earliest ready node first: a valid order is kept as is.
    waiting = {}  # node index -> inputs not yet produced
    readers = {}  # tensor -> indices of nodes waiting for it
    for i, node in enumerate(model.nodes):
        pending = {t for t in node.inputs if t not in graph_inputs}
        waiting[i] = len(pending)
        for t in pending:
            readers.setdefault(t, []).append(i)
    ready = [i for i, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(model.nodes[i])
        for t in model.nodes[i].outputs:
            for j in readers.get(t, ()):
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
    if len(order) < len(model.nodes):
        placed = {id(n) for n in order}
        stuck = ", ".join([f"'{n.name}'" for n in model.nodes if id(n) not in placed][:5])
        raise ModelError(f"the graph has a cycle through nodes {stuck}", field="inputs")
    return order


def _check_signature(node, ctx):
    op = OPS.get(node.op)
    if op is None:
        raise ctx.error("op", f"unknown op '{node.op}' (known: {', '.join(sorted(OPS))})")
    low, high = op.inputs
    if len(node.inputs) < low or (high is not None and len(node.inputs) > high):
        want = f"{low}" if low == high else f"{low} or more" if high is None else f"{low} to {high}"
        raise ctx.error("inputs", f"{op.name} takes {want} inputs, got {len(node.inputs)}")
    if len(node.outputs) != 1:
        raise ctx.error("outputs", f"{op.name} has exactly one output, got {len(node.outputs)}")
    return op


def _check_weights(node, expected, ctx):
    missing = sorted(set(expected) - set(node.weights))
    if missing:
        raise ctx.error(missing[0], f"missing weight (expected {sorted(expected)})")
    extra = sorted(set(node.weights) - set(expected))
    if extra:
        raise ctx.error(extra[0], f"unexpected weight (expected {sorted(expected) or 'none'})")
    for name, want in expected.items():
        w = node.weights[name]
        if np.dtype(w.dtype) != np.float32:
            raise ctx.error(name, f"weights must be float32, got {np.dtype(w.dtype)}")
        if tuple(w.shape) != tuple(want):
            raise ctx.error(name, f"shape {tuple(w.shape)} contradicts the attributes and input "
                                  f"channels, which require {tuple(want)}")


def check_weight_values(node, op, a, ctx):
    """NaN or Inf in weights is an error: it would silently poison every output."""
    for name, w in node.weights.items():
        if not np.isfinite(w).all():
            raise ctx.error(name, "weights contain NaN or Inf")
    if hasattr(op, "check_weights"):
        op.check_weights(a, node.weights, ctx)


def _check_gated_batchnorms(model, order, consumers):
    """A batch norm after a gated conv belongs to it: the mask applies after the batch norm
    (DESIGN.md section 1), so it must be the conv output's only reader."""
    gated = {n.outputs[0] for n in order if n.op == "GatedConv2d"}
    for node in order:
        t = node.inputs[0] if node.inputs else None
        if node.op == "BatchNorm2d" and t in gated and (len(consumers[t]) > 1 or t in model.outputs):
            raise ModelError(f"reads gated conv output '{t}', which has other readers or is a graph "
                             f"output; the gate's mask applies after this batch norm, so it must be "
                             f"the only reader", node=node.name, op=node.op, field="inputs")


def _may_be_partial(rule, inputs_partial):
    if rule == LIVE_GATE:
        return True
    if rule == LIVE_ALL:
        return False
    if rule == LIVE_UNION:
        return all(inputs_partial)  # a fully live input makes the union full
    if rule in (LIVE_SAME, LIVE_CONCAT):
        return any(inputs_partial)
    raise AssertionError(rule)
