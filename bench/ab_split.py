"""A batch split into chunks on threads of their own against the whole batch on the calling
thread: SqueezeNet 1.1 (224 x 224) dense and gated at 50% and 25%, or with --mnist the
shipped MNIST model, the two sessions alternated block by block in one process. BLAS runs
single-threaded in both (threads.py), so the whole batch uses one core.

    python bench/ab_split.py [--batch 8] [--threads 2] [--rounds 8] [--mnist]

Each block first runs its session untimed for --settle seconds, then times --calls calls,
so this measures a steady stream of batches; --settle 0 measures alternation. (Before BLAS
went single-threaded, OpenBLAS's second thread spun for about 0.1 s after each whole batch,
on the core a lane needs, and settling mattered more.) Prints, per net, each session's
median ms per call and the median and quartiles over the rounds of whole / split (above 1:
the split is faster). Both outputs are checked to agree within float32 rounding (1e-4 of
the largest output): the split session cuts each conv GEMM of config.SPLIT_GEMM_MACS or
more in two parts and the whole one, which never runs two threads, does not (threads.py).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyprune  # noqa: E402
from bench.paired import NETS  # noqa: E402
from bench.timing import median_time  # noqa: E402
from pyprune import config, models  # noqa: E402


def sessions(model):
    """(split, whole): two sessions of `model`, the second with split_batches off."""
    split, whole = pyprune.Session(model), pyprune.Session(model)
    whole.split_batches = False
    return split, whole


def squeezenets(image_size):
    """([(name, model)], images): SqueezeNet 1.1 dense and calibrated at 50% and 25%."""
    images = models.synthetic_images(8, seed=0, size=image_size)
    nets = []
    for name, p in NETS:
        model = models.squeezenet1_1(gated=p is not None, seed=0, image_size=image_size)
        nets.append((name, models.calibrate_gates(model, images, p) if p else model))
    return nets, images


def mnist():
    """([("mnist gated", model)], images): the shipped model and its samples, scaled as the
    demo scales them."""
    weights = Path(__file__).resolve().parents[1] / "weights"
    with np.load(weights / "mnist_samples.npz") as f:
        images = (f["images"][:64] / np.float32(255)).astype(np.float32)
    model = pyprune.load_model(weights / "mnist_gated.h5")
    return [("mnist gated", model)], images.reshape(len(images), *model.inputs["input"])


def lanes(sess):
    """How many lanes the session has built (1: it has never split a batch)."""
    return len(sess._lanes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--settle", type=float, default=0.3, help="untimed seconds before each block")
    parser.add_argument("--mnist", action="store_true", help="the shipped MNIST model instead of SqueezeNet")
    parser.add_argument("--image-size", type=int, default=224, help="smaller for a quick check")
    parser.add_argument("--split-min-macs", type=float, default=config.SPLIT_MIN_MACS,
                        help="dense MACs a chunk must hold (config.SPLIT_MIN_MACS)")
    args = parser.parse_args(argv)
    if min(args.batch, args.threads, args.rounds, args.calls) < 1 or args.settle < 0:
        parser.error("--batch, --threads, --rounds and --calls must be at least 1, --settle at least 0")
    pyprune.set_num_threads(args.threads)
    config.SPLIT_MIN_MACS = args.split_min_macs  # read when each session is made
    nets, images = squeezenets(args.image_size) if not args.mnist else mnist()
    x = np.ascontiguousarray(np.resize(images, (args.batch, *images.shape[1:])))
    print(f"batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds of {args.calls} calls per "
          f"session after {args.settle} s untimed; whole = the batch on the calling thread\n")
    print("| net | whole ms | split ms | whole / split, median | quartiles |\n|---|---:|---:|---:|---:|")
    for name, model in nets:
        split, whole = sessions(model)
        a, b = split.run(x), whole.run(x)
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max(), f"{name}: the split and whole outputs differ"
        if lanes(split) == 1:
            print(f"| {name} | (chunks of {args.batch} // {args.threads} samples are under --split-min-macs: "
                  "no split) | | | |")
            continue
        times = {"split": [], "whole": []}
        for r in range(args.rounds):
            pair = (("split", split), ("whole", whole))
            for key, sess in pair if r % 2 == 0 else pair[::-1]:
                settle_until = time.perf_counter() + args.settle
                while time.perf_counter() < settle_until:
                    sess.run(x)
                times[key].append(1e3 * median_time(lambda: sess.run(x), lambda: None, args.calls))
        gain = np.array(times["whole"]) / np.array(times["split"])
        q1, med, q3 = np.percentile(gain, [25, 50, 75])
        print(f"| {name} | {np.median(times['whole']):.2f} | {np.median(times['split']):.2f} | {med:.2f} | "
              f"{q1:.2f}-{q3:.2f} |")


if __name__ == "__main__":
    main()
