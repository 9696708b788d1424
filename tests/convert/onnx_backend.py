"""A small backend adapter that runs ONNX's own backend test cases through pyprune.

pyprune needs weights to be constants and the first input to be the batch of images or
feature vectors, so the adapter turns every other graph input into an initializer holding
its test value, except inputs shaped like the first (the second operand of Add, the other
branches of Concat), which stay inputs.
"""

import glob
import os

import numpy as np
import onnx
from onnx import numpy_helper

import pyprune
from pyprune.converters.onnx_import import import_onnx


def node_cases():
    from onnx.backend.test.case import node
    return [(c.name, c.model, c.data_sets, c.rtol, c.atol) for c in node.collect_testcases(None)]


def pytorch_converted_cases():
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "pytorch-converted")
    cases = []
    for folder in sorted(glob.glob(os.path.join(root, "test_*"))):
        model = onnx.load(os.path.join(folder, "model.onnx"))
        data = []
        for ds in sorted(glob.glob(os.path.join(folder, "test_data_set_*"))):
            read = lambda pattern: [numpy_helper.to_array(onnx.load_tensor(p)) for p in sorted(glob.glob(os.path.join(ds, pattern)))]
            data.append((read("input_*.pb"), read("output_*.pb")))
        cases.append((os.path.basename(folder), model, data, 1e-3, 1e-7))
    return cases


def freeze_weights(model, inputs):
    """A copy of `model` whose non-activation inputs are initializers with the test values."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    known = {i.name for i in graph.initializer}
    real = [vi for vi in graph.input if vi.name not in known]
    feeds, keep = {}, []
    concat_inputs = {t for n in graph.node if n.op_type in ("Concat", "Sum") for t in n.input}
    for i, (vi, value) in enumerate(zip(real, inputs)):
        value = np.asarray(value)
        if i == 0 or (value.shape == np.shape(inputs[0])) or vi.name in concat_inputs:
            feeds[vi.name] = value
            keep.append(vi)
        else:
            graph.initializer.append(numpy_helper.from_array(value, vi.name))
    del graph.input[:]
    graph.input.extend(keep)
    return model, feeds


def run_case(model, data_sets, rtol, atol):
    """None when pyprune rejects the graph (an unsupported op or form) with a ModelError, else
    a list of failure messages (empty: every output matched within rtol / atol)."""
    frozen, _ = freeze_weights(model, data_sets[0][0])
    try:
        sess = pyprune.Session(import_onnx(frozen))
    except pyprune.ModelError:
        return None
    failures = []
    for inputs, expected in data_sets:
        _, feeds = freeze_weights(model, inputs)
        feeds = {k: v.astype(np.float32) if v.dtype == np.float32 else v for k, v in feeds.items()}
        try:
            out = sess.run(feeds)
        except pyprune.InputError as e:
            failures.append(f"input rejected: {e}")
            continue
        outs = list(out.values()) if isinstance(out, dict) else [out]
        for got, want in zip(outs, expected):
            if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
                err = np.abs(got - want).max() if got.shape == want.shape else f"shape {got.shape} vs {want.shape}"
                failures.append(f"output differs (max abs error {err})")
    return failures
