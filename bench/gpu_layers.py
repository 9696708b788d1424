"""Where a GPU session's time goes: SqueezeNet 1.1 per layer on the GPU (each layer
synchronised, as Session.run_with_stats times it), at the batch sizes given, beside the
whole run() and the host-to-GPU copy of the input. Prints the slowest layers.

    python bench/gpu_layers.py [--batches 1 32] [--net dense|gated50|gated25] [--top 12]
    NUMBA_ENABLE_CUDASIM=1 python bench/gpu_layers.py --smoke   # tiny net, the simulator
"""

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import median_time  # noqa: E402
from pyprune import Session, models  # noqa: E402
from pyprune.devices import get_device  # noqa: E402


def build(net, smoke, images):
    gated = net != "dense"
    model = models.tiny_net(gated, image_size=images.shape[-1]) if smoke else models.squeezenet1_1(gated, seed=0)
    if gated:
        models.calibrate_gates(model, images[:8], int(net[5:]) / 100)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--net", choices=["dense", "gated50", "gated25"], default="dense")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny net and shapes (simulator)")
    args = parser.parse_args(argv)
    if min(args.batches) < 1 or args.top < 1 or args.rounds < 1:
        parser.error("--batches, --top and --rounds must be >= 1")
    gpu = get_device("cuda")
    images = models.synthetic_images(max(args.batches), seed=0, size=8 if args.smoke else 224)
    session = Session(build(args.net, args.smoke, images), device=gpu)
    for batch in args.batches:
        x = np.ascontiguousarray(images[:batch])
        whole = median_time(lambda: session.run(x), gpu.synchronize, args.rounds)
        upload = median_time(lambda: gpu.to_device(x), gpu.synchronize, args.rounds)
        runs = [session.run_with_stats(x)[1] for _ in range(args.rounds)]
        per_layer = {l.name: statistics.median(r.layers[i].seconds for r in runs)
                     for i, l in enumerate(runs[0].layers)}
        ops = {l.name: l.op for l in runs[0].layers}
        print(f"\n## {args.net}, batch {batch}: run() {whole * 1e3:.2f} ms; input upload {upload * 1e3:.2f} ms; "
              f"layers (synchronised) {sum(per_layer.values()) * 1e3:.2f} ms in {len(per_layer)}\n")
        print("| layer | op | ms |\n|---|---|---:|")
        for name, s in sorted(per_layer.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"| {name} | {ops[name]} | {s * 1e3:.3f} |")


if __name__ == "__main__":
    main()
