"""The MNIST study that produced the shipped models (weights/README.md):

    python -m pyprune.train.mnist --seeds 0 1 2 --out weights

For each seed: train the dense CNN, fine-tune its gated copy, convert both to pyprune
and measure them with the engine on the 1,000 test images (accuracy, executed MACs as
the engine counts them). Ships the dense and gated models of the median seed (by gated
accuracy), its gated checkpoint, 300 sample test images, and the numbers as JSON.
About 100 s per seed on 2 cores.
"""

import argparse
import json
import os
import time

import numpy as np
import torch

from .. import Session, save
from .data import load_mnist_5k, to_float
from .export import save_checkpoint, to_pyprune
from .recipe import Schedule, finetune_gated, train_dense

GATE = {"group_size": 4, "hidden": 16, "pool": "avg", "threshold": 0.5}
CONFIG = {"input": [1, 28, 28], "classes": 10, "layers": [
    {"out": 32, "kernel": 3, "padding": 1, "gate": None, "pool": 2},
    {"out": 64, "kernel": 3, "padding": 1, "gate": GATE},
    {"out": 64, "kernel": 3, "padding": 1, "gate": GATE, "pool": 2},
    {"out": 128, "kernel": 3, "padding": 1, "gate": GATE},
]}
SWEEP = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SAMPLES_PER_DIGIT = 30


def engine_eval(model, x, y, threshold=None):
    """Accuracy and the engine's per-image executed MAC fraction on uint8 images x."""
    logits, stats = Session(model).run_with_stats(to_float(x), threshold=threshold)
    return float((logits.argmax(1) == y).mean()), stats.executed_fraction


def summarize(acc, frac, y):
    per_class = [float(frac[y == c].mean()) for c in range(10)]
    return {"accuracy": acc, "executed_fraction": float(frac.mean()), "min": float(frac.min()),
            "max": float(frac.max()), "per_class": per_class}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    xtr, ytr, xte, yte = load_mnist_5k()
    runs, models = [], {}
    for seed in args.seeds:
        start = time.time()
        dense = train_dense(CONFIG, xtr, ytr, seed)
        gated = finetune_gated(CONFIG, dense, xtr, ytr, seed)
        dense_model, gated_model = to_pyprune(dense, "mnist_dense"), to_pyprune(gated, "mnist_gated")
        d_acc, _ = engine_eval(dense_model, xte, yte)
        g_acc, frac = engine_eval(gated_model, xte, yte)
        runs.append({"seed": seed, "dense_accuracy": d_acc, "gated": summarize(g_acc, frac, yte),
                     "seconds": time.time() - start})
        models[seed] = (dense_model, gated_model, gated)
        print(f"seed {seed}: dense {100 * d_acc:.1f}%, gated {100 * g_acc:.1f}% at "
              f"{100 * frac.mean():.1f}% of dense MACs ({time.time() - start:.0f} s)", flush=True)
    ranked = sorted(runs, key=lambda r: (r["gated"]["accuracy"], -r["gated"]["executed_fraction"]))
    median = ranked[len(ranked) // 2]["seed"]
    dense_model, gated_model, gated = models[median]
    os.makedirs(args.out, exist_ok=True)
    save(dense_model, os.path.join(args.out, "mnist_dense.h5"))
    save(gated_model, os.path.join(args.out, "mnist_gated.h5"))
    save_checkpoint(gated, os.path.join(args.out, "mnist_gated.pt"))
    # The first SAMPLES_PER_DIGIT test images of each digit, interleaved 0, 1, ..., 9, 0, 1, ...
    pick = np.stack([np.flatnonzero(yte == c)[:SAMPLES_PER_DIGIT] for c in range(10)], axis=1).ravel()
    np.savez_compressed(os.path.join(args.out, "mnist_samples.npz"), images=xte[pick], labels=yte[pick])
    sweep = [{"threshold": t, **summarize(*engine_eval(gated_model, xte, yte, t), yte)} for t in SWEEP]
    mean = {k: float(np.mean([r[k] if k == "dense_accuracy" else r["gated"][k] for r in runs]))
            for k in ("dense_accuracy", "accuracy", "executed_fraction")}
    with open(os.path.join(args.out, "mnist_study.json"), "w") as f:
        json.dump({"config": CONFIG, "schedule": vars(Schedule()), "runs": runs, "mean": mean,
                   "shipped_seed": median, "sweep": sweep}, f, indent=1)
    print(f"mean over seeds: dense {100 * mean['dense_accuracy']:.2f}%, gated {100 * mean['accuracy']:.2f}% "
          f"at {100 * mean['executed_fraction']:.1f}% of dense MACs; shipped seed {median}")
    for s in sweep:
        print(f"threshold {s['threshold']}: accuracy {100 * s['accuracy']:.1f}%, "
              f"executed {100 * s['executed_fraction']:.1f}% of dense MACs")


if __name__ == "__main__":
    main()
