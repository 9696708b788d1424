"""SqueezeNet 1.1 (224 x 224, batch 1) against ONNX Runtime with every engine timed in the
same rounds: each round runs ONNX Runtime dense and pyprune dense and gated 75 / 50 / 25%
on one image of a stream of 8, in a shuffled order. The suites time each engine in its
own block of rounds, so a burst of load on this shared machine lands on one engine and
moves their ratios by 30% or more; a ratio taken within each round sees the same load
on both sides.

    python bench/interleaved.py [--rounds 100] [--threads 1]

Prints, per net, the median ms and the median over rounds of the round's ratio to ONNX
Runtime dense, and for the gated nets MACs -> time (issue 5's measure): the median
round's dense / gated time, divided by dense / executed MACs.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyprune  # noqa: E402
from pyprune import models  # noqa: E402

NETS = ("dense", "gated75", "gated50", "gated25")


def engines(threads):
    """name -> (run(x), executed MAC fraction or None), the same weights in every engine."""
    import onnxruntime as ort
    from pyprune.converters.onnx_export import to_onnx
    images = models.synthetic_images(8, seed=0)
    nets = {"dense": models.squeezenet1_1(gated=False, seed=0)}
    for p in (0.75, 0.5, 0.25):
        nets[f"gated{int(p * 100)}"] = models.calibrate_gates(models.squeezenet1_1(gated=True, seed=0), images, p)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    ort_sess = ort.InferenceSession(to_onnx(nets["dense"]).SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
    found = {"onnxruntime dense": (lambda x: ort_sess.run(None, {"input": x}), None)}
    for name in NETS:
        sess = pyprune.Session(nets[name])
        _, stats = sess.run_with_stats(images[:1])
        found[f"pyprune {name}"] = (sess.run, float(stats.executed_fraction.mean()))
    return found, images


def measure(rounds, threads, seed=0):
    """(name -> list of ms, name -> list of the round's ratio to ONNX Runtime dense, fractions)."""
    pyprune.set_num_threads(threads)
    found, images = engines(threads)
    for run, _ in found.values():
        run(images[:1])
    rng = np.random.default_rng(seed)
    names = list(found)
    ms = {name: [] for name in names}
    for r in range(rounds):
        x = np.ascontiguousarray(images[r % len(images):r % len(images) + 1])
        for i in rng.permutation(len(names)):
            start = time.perf_counter()
            found[names[i]][0](x)
            ms[names[i]].append(1e3 * (time.perf_counter() - start))
    base = np.array(ms["onnxruntime dense"])
    ratios = {name: np.array(v) / base for name, v in ms.items()}
    return ms, ratios, {name: frac for name, (_, frac) in found.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    ms, ratios, fractions = measure(args.rounds, args.threads)
    print(f"{args.threads} thread(s), {args.rounds} interleaved rounds, batch 1\n")
    print("| engine | median ms | vs ORT dense (median of per-round ratios) | executed MACs | MACs→time |")
    print("|---|---:|---:|---:|---:|")
    dense = np.array(ms["pyprune dense"])
    for name in ms:
        frac, conv = fractions[name], ""
        if frac is not None and name != "pyprune dense":
            conv = f"{float(np.median(dense / np.array(ms[name]))) * frac:.2f}"
        share = "" if frac is None else f"{frac:.0%}"
        print(f"| {name} | {np.median(ms[name]):.2f} | {np.median(ratios[name]):.2f} | {share} | {conv} |")


if __name__ == "__main__":
    main()
