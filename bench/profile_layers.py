"""Per-layer time of SqueezeNet 1.1 (224 x 224, batch 1) dense and gated at 50% / 25%, with
each layer's executed share of its dense MACs: where the time goes, layer by layer.

    python bench/profile_layers.py [--threads 1] [--rounds 15]

Medians over rounds of `Session.run_with_stats`; the gated nets are calibrated on the same
synthetic images as the benchmark suites (bench/conftest.py).
"""

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyprune  # noqa: E402
from pyprune import models  # noqa: E402

NETS = (("dense", None), ("gated50", 0.5), ("gated25", 0.25))


def profile(threads, rounds):
    pyprune.set_num_threads(threads)
    images = models.synthetic_images(8, seed=0)
    x = images[:1].copy()
    times, shares = {}, {}
    for name, p in NETS:
        model = models.squeezenet1_1(gated=p is not None, seed=0)
        if p:
            models.calibrate_gates(model, images, p)
        sess = pyprune.Session(model)
        for _ in range(3):
            sess.run(x)
        per_layer = defaultdict(list)
        for _ in range(rounds):
            _, stats = sess.run_with_stats(x)
            for layer in stats.layers:
                per_layer[layer.name].append(layer.seconds)
        times[name] = {k: 1e3 * float(np.median(v)) for k, v in per_layer.items()}
        shares[name] = {l.name: l.executed_macs[0] / l.dense_macs for l in stats.layers if l.dense_macs}
    return times, shares


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    times, shares = profile(args.threads, args.rounds)
    names = [n for n, _ in NETS]
    print(f"median ms per layer, {args.threads} thread(s); MACs = executed / dense MACs of the layer\n")
    print("| layer | " + " | ".join(f"{n} ms" for n in names) + " | " +
          " | ".join(f"{n} MACs" for n in names[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(names) - 1))
    for layer in times["dense"]:
        cells = [f"{times[n].get(layer, 0.0):.3f}" for n in names]
        cells += [f"{shares[n][layer]:.2f}" if layer in shares[n] else "" for n in names[1:]]
        print(f"| {layer} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(f"{sum(times[n].values()):.2f}" for n in names) + " |" + " |" * (len(names) - 1))


if __name__ == "__main__":
    main()
