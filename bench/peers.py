"""The peer engines the benchmarks compare against, built from a pyprune model so that they
run the same weights. Imports raise ImportError where a peer is not installed; the suites
turn that into a skip (conftest.py), the scripts into an error naming the extra."""


def onnxruntime_session(model, threads, spinning=True):
    """An ONNX Runtime session on `model`'s ONNX export. spinning=False keeps its workers
    from spinning between runs, for runs that alternate with OpenBLAS's threads."""
    import onnxruntime as ort
    from pyprune.converters.onnx_export import to_onnx
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(to_onnx(model).SerializeToString(), options, providers=["CPUExecutionProvider"])
