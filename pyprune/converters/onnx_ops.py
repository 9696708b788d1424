"""ONNX node -> pyprune nodes, one converter per ONNX op type. A converter raises
Unsupported with the reason when an attribute or input form is not supported."""

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)
NEVER_FOLD = {"Shape"}  # handled in the import loop (activations have known shapes)


class Unsupported(Exception):
    pass


def attrs_of(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _rank4(imp, t, what="input"):
    shape = imp.shape(t)
    if len(shape) != 3:
        raise Unsupported(f"only 2-D spatial (N, C, H, W) tensors are supported, {what} has per-sample shape {shape}")
    return shape


def _window(a, shape, kernel, default_dil=(1, 1)):
    """(stride, padding (top, left, bottom, right), dilation) incl. auto_pad."""
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", default_dil))
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if len(strides) != 2 or len(dil) != 2:
        raise Unsupported("only 2-D windows are supported")
    if auto in ("NOTSET", ""):
        pads = tuple(a.get("pads", (0, 0, 0, 0)))
    elif auto == "VALID":
        pads = (0, 0, 0, 0)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(shape[1:], kernel, strides, dil):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        pads = (begin[0], begin[1], end[0], end[1])
    else:
        raise Unsupported(f"auto_pad {auto}")
    if len(pads) != 4:
        raise Unsupported(f"pads {pads} (only 2-D)")
    return strides, pads, dil


def conv_attrs(imp, node):
    """(attributes, weights) of the Conv2d that an ONNX Conv node becomes."""
    a = attrs_of(node)
    shape = _rank4(imp, node.input[0])
    if not imp.is_const(node.input[1]) or (len(node.input) > 2 and not imp.is_const(node.input[2])):
        raise Unsupported("weights and bias must be constants (initializers)")
    w = imp.const(node.input[1]).astype(np.float32)
    if w.ndim != 4:
        raise Unsupported(f"weight of rank {w.ndim}: only 2-D convolutions are supported")
    b = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0], np.float32)
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    stride, pads, dil = _window(a, shape, kernel)
    return ({"out_channels": w.shape[0], "kernel_size": kernel, "stride": stride, "padding": pads,
             "dilation": dil, "groups": a.get("group", 1)}, {"weight": w, "bias": b})


def conv(imp, node, label):
    attrs, weights = conv_attrs(imp, node)
    imp.emit("Conv2d", [node.input[0]], node.output[0], attrs, weights, name=label)


def pool(imp, node, label):
    a = attrs_of(node)
    if len(node.output) > 1 and node.output[1] in imp.read:
        raise Unsupported("the Indices output is read, and is not supported")
    shape = _rank4(imp, node.input[0])
    kernel = tuple(a["kernel_shape"])
    stride, pads, dil = _window(a, shape, kernel)
    if dil != (1, 1):
        raise Unsupported(f"dilations {dil}")
    if a.get("storage_order", 0):
        raise Unsupported("storage_order 1")
    attrs = {"kernel_size": kernel, "stride": stride, "padding": pads, "ceil_mode": bool(a.get("ceil_mode", 0))}
    if node.op_type == "AveragePool":
        attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
    imp.emit("MaxPool2d" if node.op_type == "MaxPool" else "AvgPool2d", [node.input[0]], node.output[0], attrs, name=label)


def simple(op, **fixed):
    def convert(imp, node, label):
        attrs = {k: (attrs_of(node).get(src, default)) for k, (src, default) in fixed.items()}
        imp.emit(op, [node.input[0]], node.output[0], attrs, name=label)
    return convert


def clip(imp, node, label):
    a = attrs_of(node)
    lo, hi = a.get("min", -FLOAT32_MAX), a.get("max", FLOAT32_MAX)
    for i, which in ((1, "min"), (2, "max")):
        if len(node.input) > i and node.input[i]:
            if not imp.is_const(node.input[i]):
                raise Unsupported(f"{which} must be a constant")
            value = float(imp.const(node.input[i]))
            lo, hi = (value, hi) if which == "min" else (lo, value)
    imp.emit("Clip", [node.input[0]], node.output[0], {"min": max(lo, -FLOAT32_MAX), "max": min(hi, FLOAT32_MAX)}, name=label)


def softmax(imp, node, label):
    rank = len(imp.shape(node.input[0])) + 1
    axis = attrs_of(node).get("axis", 1 if imp.opset < 13 else -1)
    axis = axis + rank if axis < 0 else axis
    # Before opset 13, axis 1 means "over the flattened (C, H, W)": the same as over the
    # channels when H = W = 1 (classifier heads of old model zoos).
    flat_ok = imp.opset >= 13 or rank == 2 or all(d == 1 for d in imp.shape(node.input[0])[1:])
    if axis != 1 or not flat_ok:
        raise Unsupported(f"softmax over axis {axis} of a rank-{rank} tensor (only over channels, axis 1)")
    imp.emit("Softmax", [node.input[0]], node.output[0], name=label)


def alias(imp, node, label):
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1] in imp.read:
        raise Unsupported("the mask output is read, and is not supported")
    if node.op_type == "Dropout" and attrs_of(node).get("is_test", 1) == 0:
        raise Unsupported("is_test = 0 (training mode)")
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        if not imp.is_const(node.input[2]) or bool(imp.const(node.input[2])):
            raise Unsupported("training_mode must be a constant false")
    imp.alias[node.output[0]] = imp.name(node.input[0])


def flatten(imp, node, label):
    axis = attrs_of(node).get("axis", 1)
    rank = len(imp.shape(node.input[0])) + 1
    if axis + (rank if axis < 0 else 0) != 1:
        raise Unsupported(f"axis {axis}: only flattening all but the batch axis is supported")
    if rank == 2:
        return alias(imp, node, label)
    imp.emit("Flatten", [node.input[0]], node.output[0], name=label)


def reshape(imp, node, label):
    from .onnx_import import BATCH
    if not imp.is_const(node.input[1]):
        raise Unsupported("the target shape must be constant")
    target = [int(v) for v in imp.const(node.input[1])]
    if attrs_of(node).get("allowzero", 0) and 0 in target:
        raise Unsupported("allowzero with a 0 in the target shape")
    features = int(np.prod(imp.shape(node.input[0])))
    ok = len(target) == 2 and target[0] in (BATCH, 0, -1, 1) and target[1] in (-1, features) \
        and not (target[0] == -1 and target[1] == -1)
    if target[:1] == [-1] and target[1:] != [features]:
        ok = False
    if not ok:
        raise Unsupported(f"reshape to {target}: only (N, features) is supported")
    if len(imp.shape(node.input[0])) == 1:
        imp.alias[node.output[0]] = imp.name(node.input[0])
    else:
        imp.emit("Flatten", [node.input[0]], node.output[0], name=label)


def _per_channel(imp, value, act):
    """A constant that broadcasts per channel (axis 1) over activation `act`, as (C,)."""
    shape = imp.shape(act)
    c, rank = shape[0], len(shape) + 1
    v = np.asarray(value, np.float64)
    if v.size == 1:
        return np.full(c, float(v.reshape(-1)[0]))
    squeezed = v.reshape(v.shape[-rank:] if v.ndim >= rank else v.shape)
    full = (1,) * (rank - squeezed.ndim) + squeezed.shape
    if len(full) == rank and full[1] == c and all(d == 1 for i, d in enumerate(full) if i != 1):
        return v.reshape(-1)
    raise Unsupported(f"constant of shape {v.shape} does not broadcast per channel over {(None, *shape)}")


def binary(imp, node, label):
    op = node.op_type
    a, b = node.input
    if not imp.is_const(a) and not imp.is_const(b):
        if op == "Add":
            return imp.emit("Add", [a, b], node.output[0], name=label)
        raise Unsupported(f"{op} of two non-constant tensors (only Add, and the gate multiply)")
    act, c, const_first = (b, imp.const(a), True) if imp.is_const(a) else (a, imp.const(b), False)
    legacy = attrs_of(node)
    if legacy.get("broadcast") and "axis" in legacy:  # opset < 7: align the constant at `axis`
        rank = len(imp.shape(act)) + 1
        axis = legacy["axis"] + (rank if legacy["axis"] < 0 else 0)
        c = np.asarray(c).reshape(np.shape(c) + (1,) * (rank - axis - np.ndim(c)))
    v = _per_channel(imp, c, act)
    if op == "Add":
        imp.emit("AddBias", [act], node.output[0], weights={"bias": v}, name=label)
    elif op == "Mul":
        imp.emit("Scale", [act], node.output[0], weights={"scale": v}, name=label)
    elif op == "Sub" and not const_first:
        imp.emit("AddBias", [act], node.output[0], weights={"bias": -v}, name=label)
    elif op == "Sub":
        neg = imp.emit("Scale", [act], node.output[0] + "/neg", weights={"scale": -np.ones_like(v)}, name=label + "/neg")
        imp.emit("AddBias", [neg], node.output[0], weights={"bias": v}, name=label)
    elif op == "Div" and not const_first:
        imp.emit("Scale", [act], node.output[0], weights={"scale": 1.0 / v}, name=label)
    else:
        raise Unsupported("dividing a constant by a tensor")


def total(imp, node, label):
    inputs = [t for t in node.input if t]
    if len(inputs) == 1:
        imp.alias[node.output[0]] = imp.name(inputs[0])
        return
    acc = inputs[0]
    for i, t in enumerate(inputs[1:], 1):
        last = i == len(inputs) - 1
        out = node.output[0] if last else f"{node.output[0]}/sum{i}"
        binary(imp, _Fake("Add", [acc, t], [out]), label if last else f"{label}/sum{i}")
        acc = out


class _Fake:
    def __init__(self, op_type, inputs, outputs):
        self.op_type, self.input, self.output, self.attribute = op_type, inputs, outputs, []


def gemm(imp, node, label):
    a = attrs_of(node)
    x = node.input[0]
    if len(imp.shape(x)) != 1 or a.get("transA", 0):
        raise Unsupported("A must be the (N, K) activation, not transposed")
    if not imp.is_const(node.input[1]) or (len(node.input) > 2 and node.input[2] and not imp.is_const(node.input[2])):
        raise Unsupported("B and C must be constants")
    b = imp.const(node.input[1]).astype(np.float64) * a.get("alpha", 1.0)
    w = b if a.get("transB", 0) else b.T
    bias = np.zeros(w.shape[0])
    if len(node.input) > 2 and node.input[2]:
        c = np.asarray(imp.const(node.input[2]), np.float64) * a.get("beta", 1.0)
        if c.size not in (1, w.shape[0]) or (c.ndim == 2 and c.shape[0] != 1):
            raise Unsupported(f"C of shape {c.shape} (only a bias per output)")
        bias = np.broadcast_to(c.reshape(-1), (w.shape[0],))
    imp.emit("Linear", [x], node.output[0], {"out_features": w.shape[0]}, {"weight": w, "bias": bias}, name=label)


def matmul(imp, node, label):
    x, b = node.input
    if imp.is_const(x) or not imp.is_const(b) or len(imp.shape(x)) != 1 or imp.const(b).ndim != 2:
        raise Unsupported("only (N, K) activation x constant (K, M) matrix")
    w = imp.const(b).T
    imp.emit("Linear", [x], node.output[0], {"out_features": w.shape[0]}, {"weight": w, "bias": np.zeros(w.shape[0])}, name=label)


def batchnorm(imp, node, label):
    a = attrs_of(node)
    if a.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])) or a.get("is_test", 1) == 0:
        raise Unsupported("training mode (only inference batch normalisation)")
    if a.get("spatial", 1) != 1:
        raise Unsupported("spatial = 0 (per-position statistics)")
    if not all(imp.is_const(t) for t in node.input[1:5]):
        raise Unsupported("scale, bias, mean and variance must be constants")
    scale, bias, mean, var = (np.asarray(imp.const(t), np.float64) for t in node.input[1:5])
    eps = a.get("epsilon", 1e-5)
    if len(imp.shape(node.input[0])) == 3:
        return imp.emit("BatchNorm2d", [node.input[0]], node.output[0], {"epsilon": eps},
                        {"scale": scale, "bias": bias, "mean": mean, "var": var}, name=label)
    s = scale / np.sqrt(var + eps)
    scaled = imp.emit("Scale", [node.input[0]], node.output[0] + "/scale", weights={"scale": s}, name=label + "/scale")
    imp.emit("AddBias", [scaled], node.output[0], weights={"bias": bias - mean * s}, name=label)


def lrn(imp, node, label):
    a = attrs_of(node)
    _rank4(imp, node.input[0])
    imp.emit("LRN", [node.input[0]], node.output[0], {"size": a["size"], "alpha": a.get("alpha", 1e-4),
                                                      "beta": a.get("beta", 0.75), "bias": a.get("bias", 1.0)}, name=label)


def concat(imp, node, label):
    if any(imp.is_const(t) for t in node.input):
        raise Unsupported("concatenating constants with activations")
    rank = len(imp.shape(node.input[0])) + 1
    axis = attrs_of(node).get("axis", 1)
    if axis + (rank if axis < 0 else 0) != 1:
        raise Unsupported(f"axis {axis}: only channel concatenation (axis 1)")
    imp.emit("Concat", list(node.input), node.output[0], name=label)


def global_pool(imp, node, label):
    _rank4(imp, node.input[0])
    imp.emit("GlobalAvgPool" if node.op_type == "GlobalAveragePool" else "GlobalMaxPool",
             [node.input[0]], node.output[0], name=label)


CONVERTERS = {
    "Conv": conv, "MaxPool": pool, "AveragePool": pool, "GlobalAveragePool": global_pool,
    "GlobalMaxPool": global_pool, "Relu": simple("Relu"), "Sigmoid": simple("Sigmoid"),
    "LeakyRelu": simple("LeakyRelu", alpha=("alpha", 0.01)), "Clip": clip, "Softmax": softmax,
    "Dropout": alias, "Identity": alias, "Flatten": flatten, "Reshape": reshape,
    "Add": binary, "Sub": binary, "Mul": binary, "Div": binary, "Sum": total,
    "Gemm": gemm, "MatMul": matmul, "BatchNormalization": batchnorm, "LRN": lrn, "Concat": concat,
}
