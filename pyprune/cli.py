"""The `pyprune` command: info, run and demo."""

import argparse
import sys
import time
import warnings

import numpy as np

from .errors import PyPruneError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pyprune", description="Run self-pruning (gated) CNNs on the CPU or an NVIDIA GPU.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="layers, shapes, parameters, dense MACs and gates of a model file")
    p.add_argument("model")
    p = sub.add_parser("run", help="run a model on a .npy batch: top classes, executed vs dense MACs, latency")
    p.add_argument("model")
    p.add_argument("input", help=".npy array, (N, *input shape) or one sample without the batch axis")
    p.add_argument("--threshold", type=float, help="gate threshold for every gated layer (compute budget)")
    p.add_argument("--top", type=int, default=3, help="classes to print per sample")
    p.add_argument("--repeat", type=int, default=10, help="timed runs after the warm-up runs")
    p.add_argument("--layers", action="store_true", help="also print the per-layer table")
    add_device_option(p)
    p = sub.add_parser("convert", help="convert a pyprune.train checkpoint (.pt) or an ONNX model (.onnx) to a model file")
    p.add_argument("source")
    p.add_argument("output")
    p = sub.add_parser("export", help="write a model file as ONNX (gated convs become conv x mask)")
    p.add_argument("model")
    p.add_argument("output")
    p.add_argument("--opset", type=int, default=17)
    p = sub.add_parser("demo", help="the shipped gated MNIST CNN on the shipped sample images")
    p.add_argument("--threshold", type=float, help="gate threshold for every gate: higher skips more work")
    p.add_argument("--weights", help="folder with mnist_gated.h5, mnist_dense.h5, mnist_samples.npz")
    p.add_argument("--images", type=int, help="use only the first N sample images")
    add_device_option(p)
    args = parser.parse_args(argv)
    quiet_small_grid_warnings()
    try:
        if args.command == "info":
            info(args.model)
        elif args.command == "run":
            run(args)
        elif args.command == "export":
            from .converters.onnx_export import export
            export(args.model, args.output, args.opset)
            print(f"wrote {args.output}")
        elif args.command == "convert":
            from .converters import convert
            convert(args.source, args.output)
            info(args.output)
        else:
            from .demo import demo
            demo(threshold=args.threshold, weights=args.weights, n_images=args.images, device=args.device)
    except PyPruneError as e:
        print(f"pyprune: error: {e}", file=sys.stderr)
        return 2
    return 0


def quiet_small_grid_warnings():
    """numba-cuda warns at every launch of fewer than 128 blocks, and batch 1 on small planes
    is made of such launches: on an H100 `pyprune demo --device cuda` printed 16 warning
    lines before its results. The command owns its process, so it drops that one message;
    the library leaves the filters of the programs that import it alone."""
    warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU under-utilization")


def add_device_option(p):
    from .devices import DEVICE_NAMES
    p.add_argument("--device", default="cpu", choices=DEVICE_NAMES,
                   help="where to run: cpu (default), cuda (needs pyprune[cuda] and a GPU), auto")


def info(path):
    from . import analyze, load_model
    from .kernels.macs import node_dense_macs
    model = load_model(path)
    g = analyze(model)
    print(f"model '{model.name}' ({path})")
    print("inputs:  " + ", ".join(f"{k} {('N',) + tuple(v)}" for k, v in model.inputs.items()))
    print("outputs: " + ", ".join(f"{t} {('N',) + g.shapes[t]}" for t in model.outputs))
    print(f"{'layer':<26}{'op':<14}{'output':<18}{'params':>10}{'dense MACs':>14}  gate")
    total_params = total_macs = gated = 0
    for node in g.order:
        a, out = g.attrs[node.name], g.shapes[node.outputs[0]]
        params = sum(int(np.prod(w.shape)) for w in node.weights.values())
        macs = node_dense_macs(g, node)
        gate = ""
        if node.op == "GatedConv2d":
            gated += 1
            gate = (f"{a['out_channels'] // a['group_size']} groups of {a['group_size']}, {a['gate_pool']} pool, "
                    f"hidden {a['gate_hidden']}, threshold {a['threshold']}")
        total_params += params
        total_macs += macs
        print(f"{node.name[:25]:<26}{node.op:<14}{str(out):<18}{params:>10,}{macs:>14,}  {gate}")
    print(f"{len(g.order)} layers, {gated} gated; {total_params:,} parameters; {total_macs / 1e6:.1f} M dense MACs per sample")


def run(args):
    from . import load
    from .errors import InputError
    sess = load(args.model, device=args.device)
    for node, why in sess.declined.items():
        print(f"on the CPU: {node} ({why})")
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read '{args.input}' as a .npy array: {e}") from None
    shape = next(iter(sess.input_shapes.values()))
    if x.shape == shape:
        x = x[None]
    if x.dtype.kind == "f" and x.dtype != np.float32:
        x = x.astype(np.float32)  # the command is lenient; Session.run insists on float32
    from .first_run import note_if_compiling
    with note_if_compiling():  # each path's first call loads the kernels, or compiles them on a new machine
        y, stats = sess.run_with_stats(x, threshold=args.threshold)
        sess.run(x, threshold=args.threshold)  # the timed calls' path (bound programs), untimed
    if isinstance(y, dict):
        y = y[sess.output_names[0]]
    times = []
    for _ in range(max(args.repeat, 1)):
        start = time.perf_counter()
        sess.run(x, threshold=args.threshold)
        times.append(time.perf_counter() - start)
    scores = y.reshape(len(y), -1)
    frac = stats.executed_fraction
    for i, row in enumerate(scores):
        top = np.argsort(row)[::-1][:args.top]
        classes = ", ".join(f"{c} ({row[c]:.3g})" for c in top)
        print(f"sample {i}: top {classes}; executed {stats.executed_macs[i] / 1e6:.2f} M of "
              f"{stats.dense_macs / 1e6:.2f} M dense MACs ({100 * frac[i]:.1f}%)")
    if args.layers:
        print(stats.table())
    print(f"latency: {1e3 * np.median(times):.2f} ms per batch of {len(x)} on {sess.device.name} "
          f"(median of {len(times)} runs)")


if __name__ == "__main__":
    sys.exit(main())
