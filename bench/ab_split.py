"""A batch split into chunks on threads of their own against the whole batch on the calling
thread (BLAS at n threads): SqueezeNet 1.1 (224 x 224) dense and gated at 50% and 25%, the
two sessions alternated round by round in one process.

    python bench/ab_split.py [--batch 8] [--threads 2] [--rounds 8]

Each round times `--calls` calls of each session after two untimed ones: a round starts
with BLAS at the other thread count, and the first call pays the change (about 1 ms).
Prints, per net, each session's median ms per call and the median and quartiles over the
rounds of whole / split (above 1: the split is faster). Both outputs are checked to agree.
"""

import argparse
import sys
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


def lanes(sess):
    """How many lanes the session has built (1: it has never split a batch)."""
    return len(sess._lanes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224, help="smaller for a quick check")
    parser.add_argument("--split-min-macs", type=float, default=config.SPLIT_MIN_MACS,
                        help="dense MACs a chunk must hold (config.SPLIT_MIN_MACS)")
    args = parser.parse_args(argv)
    if min(args.batch, args.threads, args.rounds, args.calls) < 1:
        parser.error("--batch, --threads, --rounds and --calls must be at least 1")
    pyprune.set_num_threads(args.threads)
    config.SPLIT_MIN_MACS = args.split_min_macs  # read when each session is made
    images = models.synthetic_images(8, seed=0, size=args.image_size)
    x = np.ascontiguousarray(np.resize(images, (args.batch, *images.shape[1:])))
    print(f"batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds of {args.calls} calls per "
          "session; whole = the batch on the calling thread, BLAS at n threads\n")
    print("| net | whole ms | split ms | whole / split, median | quartiles |\n|---|---:|---:|---:|---:|")
    for name, p in NETS:
        model = models.squeezenet1_1(gated=p is not None, seed=0, image_size=args.image_size)
        if p:
            models.calibrate_gates(model, images, p)
        split, whole = sessions(model)
        np.testing.assert_allclose(split.run(x), whole.run(x), rtol=1e-4, atol=1e-5)
        if lanes(split) == 1:
            print(f"| {name} | (chunks of {args.batch} // {args.threads} samples are under --split-min-macs: "
                  "no split) | | | |")
            continue
        times = {"split": [], "whole": []}
        for r in range(args.rounds):
            pair = (("split", split), ("whole", whole))
            for key, sess in pair if r % 2 == 0 else pair[::-1]:
                sess.run(x)  # median_time runs one more untimed call
                times[key].append(1e3 * median_time(lambda: sess.run(x), lambda: None, args.calls))
        gain = np.array(times["whole"]) / np.array(times["split"])
        q1, med, q3 = np.percentile(gain, [25, 50, 75])
        print(f"| {name} | {np.median(times['whole']):.2f} | {np.median(times['split']):.2f} | {med:.2f} | "
              f"{q1:.2f}-{q3:.2f} |")


if __name__ == "__main__":
    main()
