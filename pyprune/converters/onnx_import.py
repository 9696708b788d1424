"""Import ONNX CNNs (opsets 7-21) into pyprune models (needs the `onnx` extra).

Constant subgraphs (Constant, ConstantOfShape, Shape/Gather/Unsqueeze/Concat chains, and
any node whose inputs are all constant) are folded with ONNX's reference evaluator; the
batch dimension is carried through Shape as a marker so that `Reshape(x, [N, -1])` is
recognised. Every other node maps to pyprune ops (onnx_ops.py); the gated-conv subgraph
that pyprune's ONNX writer emits becomes one GatedConv2d again (onnx_gate.py). Every
unsupported node is listed in one ModelError, and nothing is written.
"""

import os

import numpy as np

from ..errors import ModelError
from ..graph import Model, Node, analyze

MIN_OPSET, MAX_OPSET = 6, 25  # versions 22-25 of the supported ops only add data types
BATCH = -(2**40) + 7  # stands for the batch size inside folded shape arithmetic


class Importer:
    """State of one import: constants, activation shapes, emitted nodes, problems."""

    def __init__(self, proto, opset):
        self.proto, self.opset = proto, opset
        self.consts, self.shapes, self.alias = {}, {}, {}
        self.nodes, self.problems, self.used_names = [], [], set()
        # Tensors something reads (a node or the graph's outputs): optional outputs that
        # nothing reads, like Dropout's mask, do not block an import.
        self.read = {t for n in proto.graph.node for t in n.input} | {o.name for o in proto.graph.output}

    # -- helpers used by the op converters --
    def name(self, t):
        while t in self.alias:
            t = self.alias[t]
        return t

    def is_const(self, t):
        return t == "" or self.name(t) in self.consts

    def const(self, t):
        return None if t == "" else self.consts[self.name(t)]

    def shape(self, t):
        return self.shapes[self.name(t)]

    def emit(self, op, inputs, output, attrs=None, weights=None, name=None):
        """Add a pyprune node computing ONNX tensor `output`; returns the pyprune tensor name."""
        from ..ops import OPS
        from ..ops.base import NodeContext
        node_name = self._unique(name or output)
        inputs = [self.name(t) for t in inputs]
        weights = {k: np.ascontiguousarray(v, np.float32) for k, v in (weights or {}).items()}
        ctx = NodeContext(node_name, op)
        a = OPS[op].parse_attrs(attrs or {}, ctx)
        self.shapes[output] = tuple(OPS[op].out_shape(a, [self.shapes[t] for t in inputs], ctx))
        self.nodes.append(Node(node_name, op, inputs, [output], attrs or {}, weights))
        return output

    def _unique(self, name):
        base, i = name or "node", 1
        while name in self.used_names:
            name, i = f"{base}_{i}", i + 1
        self.used_names.add(name)
        return name


def load_onnx(path):
    """Read the ONNX file at `path` and return the equivalent pyprune Model."""
    try:
        import onnx
    except ImportError:
        raise ModelError("importing ONNX needs the onnx package: pip install onnx", file=str(path)) from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
        if not proto.graph.node and not proto.graph.input:
            raise ValueError("no graph in it")
        from onnx.external_data_helper import load_external_data_for_model
        load_external_data_for_model(proto, os.path.dirname(os.path.abspath(str(path))))
    except Exception as e:  # protobuf raises DecodeError and others for foreign files
        raise ModelError(f"cannot read it as an ONNX model ({type(e).__name__}: {e})", file=str(path)) from None
    try:
        return import_onnx(proto, name=os.path.splitext(os.path.basename(str(path)))[0])
    except ModelError as e:
        raise e.in_file(str(path)) from None


def import_onnx(proto, name="model"):
    """Convert an onnx.ModelProto; raises one ModelError listing every unsupported node."""
    from . import onnx_gate, onnx_ops
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"opset {opset} is not supported (opsets {MIN_OPSET}-{MAX_OPSET})", field="opset_import")
    imp = Importer(proto, opset)
    graph = proto.graph
    from onnx import numpy_helper
    for init in graph.initializer:
        imp.consts[init.name] = numpy_helper.to_array(init)
    inputs = {}
    for vi in graph.input:
        if vi.name in imp.consts:
            continue
        shape = _input_shape(vi, imp)
        if shape is not None:
            inputs[vi.name] = imp.shapes[vi.name] = shape
    nodes = list(graph.node)  # one wrapper object per node, so that id() is stable
    tainted = set()  # outputs of nodes that could not be imported
    fused = onnx_gate.find_gated_convs(nodes, imp)
    for index, node in enumerate(nodes):
        label = node.name or f"{node.op_type}_{index}"
        if id(node) in fused.skip:
            continue
        try:
            if id(node) in fused.at:
                fused.at[id(node)](imp)
            elif node.domain not in ("", "ai.onnx"):
                raise onnx_ops.Unsupported(f"operator domain '{node.domain}' is not supported")
            elif all(imp.is_const(t) for t in node.input) and node.op_type not in onnx_ops.NEVER_FOLD:
                _fold(imp, node)
            elif node.op_type == "Shape":
                imp.consts[node.output[0]] = np.array((BATCH, *imp.shape(node.input[0])), np.int64)
            elif node.op_type not in onnx_ops.CONVERTERS:
                raise onnx_ops.Unsupported("operator not supported")
            else:
                onnx_ops.CONVERTERS[node.op_type](imp, node, label)
        except (onnx_ops.Unsupported, ModelError, KeyError) as e:
            downstream = any(imp.name(t) in tainted for t in node.input)
            if not downstream or isinstance(e, onnx_ops.Unsupported):
                message = e.detail if isinstance(e, ModelError) else (
                    f"input {e} is not available" if isinstance(e, KeyError) else str(e))
                imp.problems.append((label, node.op_type, message))
            # Keep checking the nodes after this one: guess that the output keeps the
            # shape of the first input (right for element-wise ops), for diagnostics only.
            guess = next((imp.shapes[imp.name(t)] for t in node.input if imp.name(t) in imp.shapes), None)
            for out in node.output:
                tainted.add(out)
                if guess is not None:
                    imp.shapes[out] = guess
    outputs = []
    for vi in graph.output:
        t = imp.name(vi.name)
        if t in imp.consts:
            imp.problems.append((vi.name, "output", "the graph output is a constant"))
        outputs.append(t)
    if imp.problems:
        lines = "\n".join(f"  - node '{n}' ({op}): {msg}" for n, op, msg in imp.problems)
        raise ModelError(f"unsupported ONNX graph, {len(imp.problems)} problem(s):\n{lines}")
    model = Model(inputs, outputs, imp.nodes, name)
    analyze(model)
    return model


def _input_shape(vi, imp):
    t = vi.type.tensor_type
    if t.elem_type != 1:  # FLOAT
        imp.problems.append((vi.name, "input", f"graph inputs must be float32 (elem_type {t.elem_type})"))
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if len(dims) not in (2, 3, 4) or any(d is None or d <= 0 for d in dims[1:]):
        imp.problems.append((vi.name, "input", f"graph inputs must be (N, C, H, W), (N, C, L) or (N, F) "
                                                f"with static sizes after the batch axis, got {dims}"))
        return None
    return tuple(dims[1:])


def _fold(imp, node):
    """Evaluate a node whose inputs are all constants with ONNX's reference evaluator."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    values = [imp.const(t) for t in node.input]
    if any(v is not None and v.dtype.kind in "iu" and (v == BATCH).any() for v in values) \
            and node.op_type not in ("Gather", "Unsqueeze", "Concat", "Squeeze", "Identity", "Slice", "Cast"):
        raise _unsupported("shape arithmetic on the batch size is not supported")
    inits = [numpy_helper.from_array(v, f"in{i}") for i, v in enumerate(values) if v is not None]
    names = ["" if v is None else f"in{i}" for i, v in enumerate(values)]
    outs = [f"out{i}" for i in range(len(node.output))]
    single = helper.make_node(node.op_type, names, outs, **{a.name: helper.get_attribute_value(a) for a in node.attribute})
    graph = helper.make_graph([single], "fold", [], [helper.make_value_info(o, helper.TypeProto()) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", imp.opset)])
    try:
        results = ReferenceEvaluator(model).run(None, {})
    except Exception as e:
        raise _unsupported(f"cannot fold this constant node ({type(e).__name__}: {e})") from None
    for name, value in zip(node.output, results):
        if name:
            imp.consts[name] = np.asarray(value)


def _unsupported(msg):
    from .onnx_ops import Unsupported
    return Unsupported(msg)
