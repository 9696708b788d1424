"""Write a pyprune model as standard ONNX (needs the `onnx` extra).

A gated convolution becomes the dense convolution times its gate's mask, computed in the
graph: global pool -> [Gemm -> Relu] -> Gemm -> Greater(logit(threshold)) -> Cast ->
MatMul with a 0/1 group-to-channel matrix -> Reshape -> Mul. Any ONNX engine then gives
the same output as pyprune, computing every kernel (the fair dense peer).
"""

import numpy as np

from ..graph import analyze
from ..ops.conv import gate_cut
from ..passes import fold_batchnorm


def export(src, dst, opset=17):
    """Write the pyprune model file `src` as the ONNX file `dst`."""
    import onnx
    from ..io.hdf5 import load_model
    onnx.save(to_onnx(load_model(src), opset), str(dst))


def to_onnx(model, opset=17):
    """Return an onnx.ModelProto equivalent to `model` (batch dimension symbolic)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # A batch norm after a gated conv sits between the conv and the mask: fold it in.
    model = fold_batchnorm(model, analyze(model), only_gated=True)
    info = analyze(model)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    for node in info.order:
        a, w, name = info.attrs[node.name], node.weights, node.name
        x, y = node.inputs, node.outputs[0]
        if node.op in ("Conv2d", "GatedConv2d"):
            conv_out = y if node.op == "Conv2d" else f"{name}/conv"
            nodes.append(helper.make_node(
                "Conv", [x[0], const(f"{name}/weight", w["weight"]), const(f"{name}/bias", w["bias"])],
                [conv_out], name=name, kernel_shape=list(a["kernel_size"]), strides=list(a["stride"]),
                pads=list(a["padding"][:2] + a["padding"][2:]), dilations=list(a["dilation"]), group=a["groups"]))
            if node.op == "GatedConv2d":
                nodes += _gate_nodes(helper, TensorProto, const, name, a, w, x[0], conv_out, y)
        elif node.op == "BatchNorm2d":
            nodes.append(helper.make_node("BatchNormalization", [x[0]] + [
                const(f"{name}/{k}", w[k]) for k in ("scale", "bias", "mean", "var")], [y], name=name,
                epsilon=a["epsilon"]))
        elif node.op in ("Clip", "Relu6"):
            lo = const(f"{name}/min", np.float32(a["min"]))
            hi = const(f"{name}/max", np.float32(a["max"]))
            nodes.append(helper.make_node("Clip", [x[0], lo, hi], [y], name=name))
        elif node.op in ("MaxPool2d", "AvgPool2d"):
            extra = {"count_include_pad": int(a["count_include_pad"])} if node.op == "AvgPool2d" else {}
            nodes.append(helper.make_node(
                "MaxPool" if node.op == "MaxPool2d" else "AveragePool", x, [y], name=name,
                kernel_shape=list(a["kernel_size"]), strides=list(a["stride"]), pads=list(a["padding"]),
                ceil_mode=int(a["ceil_mode"]), **extra))
        elif node.op in ("Scale", "AddBias"):
            v = w["scale" if node.op == "Scale" else "bias"]
            v = v.reshape(-1, 1, 1) if len(info.shapes[x[0]]) == 3 else v
            nodes.append(helper.make_node("Mul" if node.op == "Scale" else "Add", [x[0], const(f"{name}/c", v)], [y], name=name))
        elif node.op == "LRN":
            nodes.append(helper.make_node("LRN", x, [y], name=name, size=a["size"], alpha=a["alpha"],
                                          beta=a["beta"], bias=a["bias"]))
        elif node.op == "Linear":
            nodes.append(helper.make_node("Gemm", [x[0], const(f"{name}/weight", w["weight"]),
                                                   const(f"{name}/bias", w["bias"])], [y], name=name, transB=1))
        else:
            op_type, extra = _SIMPLE[node.op]
            attrs = {k: (a[v] if isinstance(v, str) else v) for k, v in extra.items()}
            nodes.append(helper.make_node(op_type, x, [y], name=name, **attrs))

    def value_info(t):
        return helper.make_tensor_value_info(t, TensorProto.FLOAT, ["N", *info.shapes[t]])

    graph = helper.make_graph(nodes, model.name, [value_info(t) for t in model.inputs],
                              [value_info(t) for t in model.outputs], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pyprune")
    onnx.checker.check_model(proto)
    return proto


_SIMPLE = {  # op -> (ONNX op type, attributes: constant or name of the pyprune attribute)
    "Relu": ("Relu", {}), "LeakyRelu": ("LeakyRelu", {"alpha": "alpha"}), "Sigmoid": ("Sigmoid", {}),
    "Softmax": ("Softmax", {"axis": 1}), "Dropout": ("Identity", {}), "Concat": ("Concat", {"axis": 1}),
    "Add": ("Add", {}), "Flatten": ("Flatten", {"axis": 1}), "GlobalAvgPool": ("GlobalAveragePool", {}),
    "GlobalMaxPool": ("GlobalMaxPool", {}),
}


def _gate_nodes(helper, TensorProto, const, name, a, w, x, conv_out, y):
    g = f"{name}/gate"
    pool = "GlobalMaxPool" if a["gate_pool"] == "max" else "GlobalAveragePool"
    out = [helper.make_node(pool, [x], [f"{g}/pooled"]),
           helper.make_node("Flatten", [f"{g}/pooled"], [f"{g}/s"], axis=1)]
    feat = f"{g}/s"
    if a["gate_hidden"]:
        out += [helper.make_node("Gemm", [feat, const(f"{g}/hidden_weight", w["gate_hidden_weight"]),
                                          const(f"{g}/hidden_bias", w["gate_hidden_bias"])], [f"{g}/h0"], transB=1),
                helper.make_node("Relu", [f"{g}/h0"], [f"{g}/h"])]
        feat = f"{g}/h"
    groups = a["out_channels"] // a["group_size"]
    expand = np.repeat(np.eye(groups, dtype=np.float32), a["group_size"], axis=1)  # (G, C_out)
    out += [
        helper.make_node("Gemm", [feat, const(f"{g}/weight", w["gate_weight"]), const(f"{g}/bias", w["gate_bias"])],
                         [f"{g}/logits"], transB=1),
        helper.make_node("Greater", [f"{g}/logits", const(f"{g}/cut", np.float32(gate_cut(a["threshold"])))],
                         [f"{g}/on"]),
        helper.make_node("Cast", [f"{g}/on"], [f"{g}/on_f"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", [f"{g}/on_f", const(f"{g}/expand", expand)], [f"{g}/mask2d"]),
        helper.make_node("Reshape", [f"{g}/mask2d", const(f"{g}/shape", np.array([0, -1, 1, 1], np.int64))],
                         [f"{g}/mask"]),
        helper.make_node("Mul", [conv_out, f"{g}/mask"], [y]),
    ]
    return out
