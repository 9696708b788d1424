"""ONNX Runtime's own per-node times for dense SqueezeNet 1.1 (224 x 224, batch 1): the
peer's side of bench/profile_layers.py's table, from ONNX Runtime's profiler.

    python bench/ort_profile.py [--threads 1] [--rounds 30]

ONNX Runtime fuses each conv with its ReLU and runs them in its blocked NCHWc layout
(nodes named like "fire2/expand3x3_relu_nchwc"), and adds reorders into and out of that
layout. Prints each node's median kernel time over the rounds (after 5 warm-up runs) and
their sum.
"""

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyprune import models  # noqa: E402
from pyprune.converters.onnx_export import to_onnx  # noqa: E402

WARMUP = 5


def node_times(threads, rounds):
    """{node name: median ms} in the order the nodes first ran."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise SystemExit("bench/ort_profile.py needs ONNX Runtime: pip install -e '.[onnx]'") from e
    model = models.squeezenet1_1(gated=False, seed=0)
    x = models.synthetic_images(8, seed=0)[:1].copy()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(to_onnx(model).SerializeToString(), options, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(WARMUP + rounds):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_node = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[event["name"][:-len("_kernel_time")]].append(event["dur"] / 1e3)
    return {node: float(np.median(times[WARMUP:])) for node, times in per_node.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        parser.error("--threads and --rounds must be at least 1")
    times = node_times(args.threads, args.rounds)
    print(f"ONNX Runtime, dense SqueezeNet 1.1, batch 1, {args.threads} thread(s): median ms per node "
          f"over {args.rounds} runs\n")
    print("| node | ms |\n|---|---:|")
    for node, ms in times.items():
        print(f"| {node} | {ms:.3f} |")
    print(f"| sum | {sum(times.values()):.3f} |")


if __name__ == "__main__":
    main()
