"""pyprune against ONNX Runtime's dense SqueezeNet 1.1 (batch 1), alternating blocks of
images between the two engines in one process, so that both meet the same load on this
shared machine while each block is long enough to run with its own caches warm.

    python bench/paired.py [--threads 1] [--rounds 20] [--block 10]

The pytest-benchmark suites time each engine in its own test, a minute or more apart; on
a loaded host the ratio then moves with the load (ONNX Runtime's dense time went from 5.2
to 7.8 ms between runs of Run 9). Here each round runs a block of every engine, in an
order that alternates round by round; the ratio is taken within each round. Prints, per
net, each engine's median ms per image and the median and quartiles over the rounds of
pyprune / ONNX Runtime dense.

At 2 threads ONNX Runtime's workers are told not to spin between runs
(session.intra_op.allow_spinning = 0): spinning, they would hold a core that pyprune's
run needs when the blocks alternate. That makes ONNX Runtime a little slower
than it is when served alone.

At 2 threads or more it also prints bench/cores.py's probe before and after the rounds:
how much two threads of plain compiled work got done at once, against one alone. On this
shared host the second core is sometimes not free, and the 2-thread ratios then say so.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyprune  # noqa: E402
from bench.cores import parallel_throughput  # noqa: E402
from bench.peers import onnxruntime_session  # noqa: E402
from pyprune import models  # noqa: E402

NETS = (("dense", None), ("gated 50%", 0.5), ("gated 25%", 0.25))


def onnxruntime_run(model, threads):
    """ONNX Runtime running `model`'s export, or an error naming the extra to install."""
    try:
        sess = onnxruntime_session(model, threads, spinning=threads == 1)
    except ImportError as e:
        raise SystemExit("bench/paired.py needs ONNX Runtime: pip install -e '.[onnx]'") from e
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})


def engines(images, threads):
    """name -> run(x): ONNX Runtime on the dense model, then pyprune's dense and gated
    sessions, all with the same weights (seed 0)."""
    nets = {}
    for name, p in NETS:
        model = models.squeezenet1_1(gated=p is not None, seed=0)
        nets[name] = model if p is None else models.calibrate_gates(model, images, p)
    return {"onnxruntime dense": onnxruntime_run(nets["dense"], threads),
            **{f"pyprune {name}": pyprune.Session(model).run for name, model in nets.items()}}


def block_ms(run, images, start, count):
    """Median ms per image over `count` images of the stream, from `start`."""
    times = []
    for i in range(count):
        x = images[(start + i) % len(images)][None]
        begin = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - begin)
    return 1e3 * float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=10)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.block < 1:
        parser.error("--rounds and --block must be at least 1")
    pyprune.set_num_threads(args.threads)
    images = models.synthetic_images(8, seed=0)
    runs = engines(images, args.threads)
    for run in runs.values():  # compile, and allocate the sessions' buffers
        run(images[:1])
    cores_before = parallel_throughput(args.threads)
    per_round = {name: [] for name in runs}
    order = list(runs)
    for r in range(args.rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            per_round[name].append(block_ms(runs[name], images, r * args.block, args.block))
    base = np.array(per_round["onnxruntime dense"])
    from pyprune.kernels.cpu import blas
    print(f"{args.threads} thread(s), {args.rounds} rounds of {args.block} images per engine, batch 1, "
          f"pyprune's GEMMs on {blas.describe()}; ratio = pyprune / ONNX Runtime dense within each round")
    if args.threads >= 2:
        print(f"{args.threads} threads of plain compiled work at once did {cores_before:.2f}x one thread's "
              f"before the rounds, {parallel_throughput(args.threads):.2f}x after (bench/cores.py)")
    print()
    print("| engine | median ms | ratio, median | ratio, quartiles |\n|---|---:|---:|---:|")
    for name, times in per_round.items():
        ratios = np.array(times) / base
        q1, med, q3 = np.percentile(ratios, [25, 50, 75])
        print(f"| {name} | {np.median(times):.3f} | {med:.2f} | {q1:.2f}-{q3:.2f} |")


if __name__ == "__main__":
    main()
