"""ONNX import: PyTorch-exported CNNs against ONNX Runtime, gated models through ONNX and
back, hand-built graphs across opsets, external data, and bad files."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

import pyprune  # noqa: E402
from pyprune import ModelError, models  # noqa: E402
from pyprune import convert  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from ..helpers import assert_matches  # noqa: E402


def run_ort(path_or_proto, x):
    data = path_or_proto.SerializeToString() if hasattr(path_or_proto, "SerializeToString") else str(path_or_proto)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("arch", ["squeezenet1_0", "squeezenet1_1", "resnet18"])
def test_pytorch_exported_cnns_match_onnxruntime(arch, tmp_path):
    torch = pytest.importorskip("torch", reason="torch builds the reference CNNs")
    from .torch_models import export, randomized, resnet18, squeezenet
    torch.manual_seed(0)
    net = randomized(resnet18() if arch == "resnet18" else squeezenet(arch[-3:]))
    export(net, tmp_path / "m.onnx")
    model = convert(tmp_path / "m.onnx", tmp_path / "m.h5")
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    assert_matches(pyprune.load(tmp_path / "m.h5").run(x), run_ort(tmp_path / "m.onnx", x), tol=1e-4)
    if arch == "resnet18":  # torch's exporter folds the batch norms itself
        assert {"Add", "Conv2d", "MaxPool2d", "Linear"} <= {n.op for n in model.nodes}


def test_gated_squeezenet_exports_runs_in_onnxruntime_and_imports_back(tmp_path):
    model = models.squeezenet1_1(gated=True)
    x = models.synthetic_images(2)
    models.calibrate_gates(model, x, 0.5)
    pyprune.save(model, tmp_path / "g.h5")
    from pyprune.cli import main
    assert main(["export", str(tmp_path / "g.h5"), str(tmp_path / "g.onnx")]) == 0
    y = pyprune.Session(model).run(x)
    assert_matches(run_ort(tmp_path / "g.onnx", x), y, tol=1e-4)
    back = convert(tmp_path / "g.onnx", tmp_path / "back.h5")
    gated = {n.name: n for n in back.nodes if n.op == "GatedConv2d"}
    assert len(gated) == 24
    for node in model.nodes:
        if node.op == "GatedConv2d":
            twin = gated[node.name]
            assert twin.inputs == node.inputs and abs(twin.attrs["threshold"] - 0.5) < 1e-12
            for k, w in node.weights.items():
                np.testing.assert_array_equal(twin.weights[k], w)
    _, s1 = pyprune.Session(model).run_with_stats(x)
    y2, s2 = pyprune.load(tmp_path / "back.h5").run_with_stats(x)
    np.testing.assert_array_equal(y2, y)
    assert (s1.executed_macs == s2.executed_macs).all()


def small_cnn(opset, rng):
    """Conv -> Clip -> MaxPool -> LRN -> Conv(auto_pad SAME_UPPER) -> BatchNorm -> Relu ->
    Mul/Add constants -> GlobalAveragePool -> Reshape via Shape/Gather/Unsqueeze/Concat ->
    Gemm -> Dropout -> Softmax, written for the given opset."""
    w = lambda *s: numpy_helper.from_array(rng.normal(size=s).astype(np.float32) * 0.3, f"w{len(inits)}")  # noqa: E731
    inits, nodes = [], []

    def init(*shape, positive=False):
        t = w(*shape)
        if positive:
            t = numpy_helper.from_array(np.abs(numpy_helper.to_array(t)) + 0.5, t.name)
        inits.append(t)
        return t.name

    nodes.append(helper.make_node("Conv", ["x", init(6, 3, 3, 3), init(6)], ["c1"], pads=[1, 0, 0, 1], strides=[1, 2]))
    if opset < 11:
        nodes.append(helper.make_node("Clip", ["c1"], ["r1"], min=0.0, max=6.0))
    else:
        lo = numpy_helper.from_array(np.array(0.0, np.float32), "lo")
        inits.append(lo)
        nodes += [helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(6.0, np.float32))),
                  helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"])]
    nodes += [
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], **({"ceil_mode": 1} if opset >= 10 else {})),
        helper.make_node("LRN", ["p1"], ["l1"], size=3, alpha=0.01),
        helper.make_node("Conv", ["l1", init(8, 6, 3, 3), init(8)], ["c2"], auto_pad="SAME_UPPER"),
        helper.make_node("BatchNormalization", ["c2", init(8, positive=True), init(8), init(8), init(8, positive=True)], ["b2"], epsilon=1e-3),
        helper.make_node("Relu", ["b2"], ["r2"]),
        helper.make_node("Mul", ["r2", init(1, 8, 1, 1)], ["m2"]),
        helper.make_node("Add", ["m2", init(8, 1, 1)], ["a2"]),
        helper.make_node("GlobalAveragePool", ["a2"], ["g"]),
        helper.make_node("Shape", ["g"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch"] + (["axes"] if opset >= 13 else []), ["batch1"], **({} if opset >= 13 else {"axes": [0]})),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["g", "target"], ["flat"]),
        helper.make_node("Gemm", ["flat", init(5, 8), init(5)], ["logits"], transB=1, alpha=0.5),
        helper.make_node("Dropout", ["logits"], ["d"], **({"ratio": 0.3} if opset < 12 else {})),
        helper.make_node("Softmax", ["d"], ["y"], axis=1),
    ]
    inits += [numpy_helper.from_array(np.array(0, np.int64), "zero"), numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
              numpy_helper.from_array(np.array([0], np.int64), "axes")]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 13, 14])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 17, 21])
def test_hand_built_graph_across_opsets(opset, tmp_path):
    proto = small_cnn(opset, np.random.default_rng(opset))
    onnx.checker.check_model(proto)
    onnx.save(proto, tmp_path / "m.onnx")
    x = np.random.default_rng(1).normal(size=(3, 3, 13, 14)).astype(np.float32)
    y = pyprune.Session(convert(tmp_path / "m.onnx", tmp_path / "m.h5")).run(x)
    assert_matches(y, run_ort(proto, x), tol=1e-4)


def test_external_data_initializers(tmp_path):
    proto = small_cnn(13, np.random.default_rng(0))
    onnx.save(onnx.ModelProto.FromString(proto.SerializeToString()), tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    x = np.random.default_rng(1).normal(size=(2, 3, 13, 14)).astype(np.float32)
    y = pyprune.Session(convert(tmp_path / "ext.onnx", tmp_path / "ext.h5")).run(x)
    assert_matches(y, run_ort(proto, x), tol=1e-4)


def test_unsupported_graph_lists_every_node_and_writes_nothing(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Tanh", ["c"], ["t"], name="squash"),
             helper.make_node("MaxPool", ["t"], ["p"], kernel_shape=[2, 2], dilations=[2, 2], name="dilated_pool"),
             helper.make_node("Erf", ["p"], ["y"], name="erf")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "bad.onnx")
    with pytest.raises(ModelError) as err:
        convert(tmp_path / "bad.onnx", tmp_path / "bad.h5")
    msg = str(err.value)
    assert "3 problem(s)" in msg and "bad.onnx" in msg
    assert "'squash' (Tanh): operator not supported" in msg
    assert "'dilated_pool' (MaxPool): dilations (2, 2)" in msg and "'erf' (Erf)" in msg
    assert not (tmp_path / "bad.h5").exists()


def test_unsupported_opset_and_input_forms(tmp_path):
    proto = small_cnn(13, np.random.default_rng(0))
    proto.opset_import[0].version = 5
    onnx.save(proto, tmp_path / "old.onnx")
    with pytest.raises(ModelError, match="opset 5 is not supported"):
        convert(tmp_path / "old.onnx", tmp_path / "old.h5")


def test_files_that_are_not_onnx(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01 definitely not protobuf \xff" * 5)
    with pytest.raises(ModelError, match="cannot read it as an ONNX model"):
        convert(tmp_path / "junk.onnx", tmp_path / "junk.h5")
    proto = small_cnn(13, np.random.default_rng(0))
    data = proto.SerializeToString()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.onnx"):
        convert(tmp_path / "cut.onnx", tmp_path / "cut.h5")
    with pytest.raises(ModelError, match="cannot read"):
        convert(tmp_path / "missing.onnx", tmp_path / "m.h5")
