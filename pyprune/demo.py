"""The README's demo: gated SqueezeNet 1.1 on sample images, what the gates skipped, and
latency dense vs gated on this machine.

Until a trained gated model ships (weights/), the network has random weights (He init)
and its gates are calibrated so that half of each fire-module layer's kernels are active
on average: the predictions are meaningless, the work skipped and the latency are real.
"""

import os
import tempfile
import time

import numpy as np

from . import load, models, save

ACTIVE_FRACTION = 0.5


def sample_images(n, seed=0, size=224):
    """Synthetic 224 x 224 RGB images: smooth colour gradients, blobs and noise, each with
    its own brightness and contrast, so that the gates see different inputs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        img = rng.normal(0, 1, (3, 1, 1)) * (xx * rng.normal() + yy * rng.normal())
        for _ in range(rng.integers(1, 6)):
            cy, cx, r = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
            img = img + rng.normal(0, 2, (3, 1, 1)) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2)
        img = img + rng.uniform(0.05, 1.0) * rng.normal(size=(3, size, size))
        out[i] = img * rng.uniform(0.3, 2.0)
    return out


def median_ms(fn, x, repeat=15):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def demo(threshold=None, n_images=8):
    x = sample_images(n_images)
    gated = models.squeezenet1_1(gated=True, seed=0)
    models.calibrate_gates(gated, x, ACTIVE_FRACTION)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "squeezenet1_1_gated.h5")
        save(gated, path)  # the demo goes through the model file, as a user's model would
        start = time.perf_counter()
        sess = load(path)
        sess.run(x[:1])
        first = time.perf_counter() - start
    dense = load_dense()
    print("pyprune demo: gated SqueezeNet 1.1, 224 x 224, random weights (no trained model ships yet);")
    print(f"gates calibrated to {ACTIVE_FRACTION:.0%} of kernels active on average over {n_images} synthetic images"
          + (f"; threshold {threshold}" if threshold is not None else "") + "\n")
    y, stats = sess.run_with_stats(x, threshold=threshold)
    frac = stats.executed_fraction
    for i in range(n_images):
        top = np.argsort(y[i])[::-1][:3]
        print(f"image {i}: top classes {', '.join(str(c) for c in top)}; "
              f"executed {100 * frac[i]:.1f}% of dense MACs")
    print("\nper layer, mean over the images:")
    print(stats.table())
    dense_ms = median_ms(dense.run, x[:1])
    gated_ms = median_ms(lambda b: sess.run(b, threshold=threshold), x[:1])
    print(f"\nlatency, batch 1, median of 15: dense {dense_ms:.2f} ms, gated {gated_ms:.2f} ms "
          f"({dense_ms / gated_ms:.2f}x); load + first run {1e3 * first:.0f} ms")


def load_dense():
    from .runtime import Session
    return Session(models.squeezenet1_1(gated=False, seed=0))
