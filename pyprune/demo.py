"""The README's demo: the shipped gated CNN (trained on MNIST, weights/README.md) on the
shipped sample test images: predictions, accuracy, how much work the gates skipped (on
average, per class, per layer) and latency dense vs gated on this machine."""

import os
import time

import numpy as np

from . import load, mkl
from .errors import InputError
from .first_run import note_if_compiling
from .kernels.cpu import blas


def default_weights_dir():
    """weights/ beside the package (a source checkout or editable install), else ./weights."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
    return here if os.path.isdir(here) else os.path.join(os.getcwd(), "weights")


def median_ms(fn, inputs):
    times = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def demo(threshold=None, weights=None, n_images=None, device="cpu"):
    weights = weights or default_weights_dir()
    paths = {k: os.path.join(weights, f) for k, f in
             (("gated", "mnist_gated.h5"), ("dense", "mnist_dense.h5"), ("samples", "mnist_samples.npz"))}
    missing = [p for p in paths.values() if not os.path.exists(p)]
    if missing:
        raise InputError(f"the demo needs the shipped files {missing}; pass --weights DIR")
    gated, dense = load(paths["gated"], device=device), load(paths["dense"], device=device)
    with np.load(paths["samples"]) as f:
        images, labels = f["images"][:n_images], f["labels"][:n_images]
    x = (images / np.float32(255.0)).astype(np.float32)
    with note_if_compiling() as compiling:  # each path's first call loads (or compiles) its kernels
        start = time.perf_counter()
        gated.run(x[:1], threshold=threshold)
        first_ms, first_compiled = 1e3 * (time.perf_counter() - start), compiling.noted
        dense.run(x[:1])
        g_logits, stats = gated.run_with_stats(x, threshold=threshold)
        d_logits = dense.run(x)
    pred, frac = g_logits.argmax(1), stats.executed_fraction
    print(f"pyprune demo: gated CNN trained on MNIST ({paths['gated']}), {len(x)} sample test images"
          + (f", threshold {threshold}" if threshold is not None else ""))
    print(f"predictions (first 12): {' '.join(map(str, pred[:12]))}   labels: {' '.join(map(str, labels[:12]))}")
    print(f"accuracy: gated {100 * (pred == labels).mean():.1f}%, dense {100 * (d_logits.argmax(1) == labels).mean():.1f}%")
    print(f"executed MACs: {100 * frac.mean():.1f}% of the dense model's on average "
          f"({100 * frac.min():.1f}%-{100 * frac.max():.1f}% per image)")
    print("per class: " + "  ".join(f"{c}: {100 * frac[labels == c].mean():.1f}%" for c in np.unique(labels)))
    print("\nper layer, mean over the images:")
    print(stats.table())
    singles = [x[i:i + 1] for i in range(min(len(x), 200))]
    d_ms = median_ms(dense.run, singles)
    g_ms = median_ms(lambda b: gated.run(b, threshold=threshold), singles)
    print(f"\nlatency per image on {gated.device.name} (batch 1, median of {len(singles)}): dense {d_ms:.3f} ms, "
          f"gated {g_ms:.3f} ms ({d_ms / g_ms:.2f}x); the first call took {first_ms:.0f} ms "
          f"({'compiling' if first_compiled else 'loading'} kernels)")
    if gated.device.name == "cpu":
        line = f"GEMMs on {blas.describe()}"
        if "mkl" not in blas.ADDRESSES and mkl.cpu_is_intel():
            line += "; pip install 'pyprune[mkl]' for Intel MKL's (faster on Intel CPUs)"
        print(line)
