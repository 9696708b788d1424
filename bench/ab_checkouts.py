"""A/B of two pyprune checkouts on the small-layer costs: the overhead suite's chains of 100
tiny layers (relu, conv, gated conv: us per layer) and the shipped MNIST gated model (ms
per image, batch 1, 1 thread); with --squeezenet, also SqueezeNet 1.1 dense and gated at
50% and 25% (ms per image, batch 1, 1 thread, gates calibrated as in the suites). Each
round runs one process per checkout, in an order that alternates, so both meet the same
load; a change of a microsecond or two per layer, or of a few percent of a network, is
lost in the noise of two separate suite runs on this shared machine.

    git worktree add /tmp/base HEAD~1
    python bench/ab_checkouts.py /tmp/base . [--rounds 6] [--squeezenet]

Prints, per checkout, the fastest and the median of every timing taken (rounds x 20).

Each checkout compiles into a Numba cache of its own, named by a hash of its sources:
Numba's cache notices a change to a kernel's own file but not to a kernel it calls from
another file, so a checkout's __pycache__ can hold code older than its sources.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# Runs inside each checkout with that checkout first on sys.path.
MEASURE = r'''
import json, sys, time
import numpy as np
sys.path.insert(0, "bench")
import pyprune
from test_mnist_and_overhead import LAYERS, tiny_chain
pyprune.set_num_threads(1)
samples, repeats = int(sys.argv[1]), int(sys.argv[2])
def per_call(fn, scale):
    fn()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - start) / repeats * scale)
    return times
x = np.ones((1, 8, 4, 4), np.float32)
out = {}
for kind in ("relu", "conv", "gated_conv"):
    sess = pyprune.Session(tiny_chain(kind))
    out[kind + " chain, us/layer"] = per_call(lambda: sess.run(x), 1e6 / LAYERS)
with np.load("weights/mnist_samples.npz") as f:
    images = (f["images"][:8] / np.float32(255)).astype(np.float32)
mnist = pyprune.load("weights/mnist_gated.h5")
seq = iter(range(10**9))
out["mnist gated, ms/image"] = per_call(lambda: mnist.run(images[next(seq) % 8][None]), 1e3)
if sys.argv[3] == "1":
    from pyprune import models
    images = models.synthetic_images(8, seed=0)
    for name, p in (("dense", None), ("gated50", 0.5), ("gated25", 0.25)):
        model = models.squeezenet1_1(gated=p is not None, seed=0)
        if p:
            models.calibrate_gates(model, images, p)
        sess = pyprune.Session(model)
        seq = iter(range(10**9))
        out[f"squeezenet {name}, ms/image"] = per_call(lambda: sess.run(images[next(seq) % 8][None]), 1e3)
print(json.dumps(out))
'''


def cache_dir(checkout):
    """A Numba cache directory for exactly these pyprune sources."""
    digest = hashlib.sha256()
    for path in sorted((checkout / "pyprune").rglob("*.py")):
        digest.update(str(path.relative_to(checkout)).encode() + path.read_bytes())
    return Path(tempfile.gettempdir()) / "pyprune-ab-cache" / digest.hexdigest()[:16]


def measure(checkout, samples, repeats, squeezenet):
    env = {**os.environ, "PYTHONPATH": str(checkout), "NUMBA_CACHE_DIR": str(cache_dir(checkout))}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(samples), str(repeats), str(int(squeezenet))],
                          cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"measuring {checkout} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="checkout A (e.g. a worktree of the base commit)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--samples", type=int, default=20, help="timings per process and measure")
    parser.add_argument("--repeats", type=int, default=10, help="calls per timing")
    parser.add_argument("--squeezenet", action="store_true", help="also time SqueezeNet 1.1 dense and gated")
    args = parser.parse_args(argv)
    times = {"A": {}, "B": {}}
    for r in range(args.rounds):
        for label in ("A", "B") if r % 2 == 0 else ("B", "A"):
            for name, t in measure(getattr(args, label.lower()).resolve(), args.samples, args.repeats,
                                     args.squeezenet).items():
                times[label].setdefault(name, []).extend(t)
    print(f"A = {args.a}, B = {args.b}; {args.rounds} rounds; fastest / median\n")
    print("| measure | A | B | B / A, medians |\n|---|---:|---:|---:|")
    for name, a in times["A"].items():
        b = times["B"][name]
        print(f"| {name} | {min(a):.3f} / {np.median(a):.3f} | {min(b):.3f} / {np.median(b):.3f} "
              f"| {np.median(b) / np.median(a):.2f} |")


if __name__ == "__main__":
    main()
