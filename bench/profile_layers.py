"""Per-layer time of SqueezeNet 1.1 (224 x 224, batch 1) dense and gated at 50% / 25%, with
each layer's executed share of its dense MACs and the rate it ran them at: where the time
goes, layer by layer, and how far each layer is from what one core can do.

    python bench/profile_layers.py [--threads 1] [--rounds 15]

Medians over rounds of `Session.run_with_stats`; the gated nets are calibrated on the same
synthetic images as the benchmark suites (bench/conftest.py). run_with_stats runs each
layer as a step of its own, so the table's total is more than `Session.run` takes (its
fire modules run as one compiled call each, its steps as one bound program); the summary
lines time `Session.run` too, as many rounds again after those. The reference rate is one
core's: NumPy's float32 matmul of 512 x 512 x 512 on one BLAS thread, timed in the same
process right after the nets (this shared host's speed moves from minute to minute, so a
rate measured another time would not compare). Each net's summary line then says what its
executed MACs would take at that rate (times the thread count): a yardstick for how much
of the cores' time the kernels turn into multiply-adds, not a bound (the register tiles
run a little faster than that GEMM where the data stays in cache).
"""

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyprune  # noqa: E402
from pyprune import models  # noqa: E402
from pyprune.threads import keep_blas_single_threaded  # noqa: E402

NETS = (("dense", None), ("gated50", 0.5), ("gated25", 0.25))


def profile(threads, rounds):
    pyprune.set_num_threads(threads)
    images = models.synthetic_images(8, seed=0)
    x = images[:1].copy()
    times, macs, runs = {}, {}, {}
    for name, p in NETS:
        model = models.squeezenet1_1(gated=p is not None, seed=0)
        if p:
            models.calibrate_gates(model, images, p)
        sess = pyprune.Session(model)
        for _ in range(3):
            sess.run(x)
        per_layer, run_seconds = defaultdict(list), []
        for _ in range(rounds):
            _, stats = sess.run_with_stats(x)
            for layer in stats.layers:
                per_layer[layer.name].append(layer.seconds)
        sess.run(x)
        for _ in range(rounds):  # after the stats rounds, whose own buffers would leave run()'s cold
            start = time.perf_counter()
            sess.run(x)
            run_seconds.append(time.perf_counter() - start)
        runs[name] = 1e3 * float(np.median(run_seconds))
        times[name] = {k: 1e3 * float(np.median(v)) for k, v in per_layer.items()}
        # (executed, dense) MACs of each layer that has any: the share and the rate come from it
        macs[name] = {l.name: (float(l.executed_macs[0]), l.dense_macs) for l in stats.layers if l.dense_macs}
    return times, macs, runs


def core_gmacs(rounds=7, n=512):
    """One core's float32 GEMM rate, GMAC/s: the median over rounds of NumPy's n x n x n
    matmul on one BLAS thread."""
    a = np.random.default_rng(0).standard_normal((2, n, n)).astype(np.float32)
    out = np.empty((n, n), np.float32)
    rates = []
    keep_blas_single_threaded()  # as pyprune runs its own GEMMs
    np.matmul(a[0], a[1], out=out)
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(5):
            np.matmul(a[0], a[1], out=out)
        rates.append(5 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return float(np.median(rates))


def rate(macs, ms):
    """GMAC/s of `macs` multiply-adds in `ms` milliseconds."""
    return macs / ms / 1e6 if ms > 0 else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    times, macs, runs = profile(args.threads, args.rounds)
    core_rate = core_gmacs()
    names = [n for n, _ in NETS]
    print(f"median ms per layer, {args.threads} thread(s); MACs = executed / dense MACs of the layer; "
          f"GMAC/s = executed MACs / time (one core's float32 matmul: {core_rate:.1f} GMAC/s)\n")
    print("| layer | " + " | ".join(f"{n} ms" for n in names) + " | " +
          " | ".join(f"{n} MACs" for n in names[1:]) + " | " + " | ".join(f"{n} GMAC/s" for n in names) + " |")
    print("|---|" + "---:|" * (3 * len(names) - 1))
    for layer in times["dense"]:
        cells = [f"{times[n].get(layer, 0.0):.3f}" for n in names]
        cells += [f"{macs[n][layer][0] / macs[n][layer][1]:.2f}" if layer in macs[n] else "" for n in names[1:]]
        cells += [f"{rate(macs[n][layer][0], times[n][layer]):.1f}" if layer in macs[n] else "" for n in names]
        print(f"| {layer} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(f"{sum(times[n].values()):.2f}" for n in names) + " |" + " |" * (2 * len(names) - 1))
    print()
    cores = "one core's" if args.threads == 1 else f"{args.threads} x one core's"
    for n in names:
        total_macs = sum(executed for executed, _ in macs[n].values())
        at_rate_ms = total_macs / (core_rate * args.threads) / 1e6
        print(f"{n}: {total_macs / 1e6:.1f} M MACs; Session.run {runs[n]:.2f} ms, {rate(total_macs, runs[n]):.1f} GMAC/s; "
              f"at {cores} matmul rate {at_rate_ms:.2f} ms ({at_rate_ms / runs[n]:.0%} of Session.run's time)")


if __name__ == "__main__":
    main()
