"""A/B of one CPU conv-kernel switch on whole networks: two sessions of each model, one
with the switch turned off on every conv kernel, alternated round by round (so both meet
the same load on this shared machine) over a stream of 8 different images.

    python bench/ab_flag.py shifted [--rounds 60] [--threads 1] [--block 1]
    python bench/ab_flag.py track_zero_rows
    python bench/ab_flag.py blas_in_numba
    python bench/ab_flag.py shared_workspace --rounds 16 --block 15
    python bench/ab_flag.py one_call_gate
    python bench/ab_flag.py banded
    python bench/ab_flag.py tiles
    python bench/ab_flag.py fuse_fire_modules
    python bench/ab_flag.py paired_call --threads 2 --rounds 16 --block 10
    python bench/ab_flag.py row_pad --rounds 16 --block 10
    python bench/ab_flag.py bind_calls --rounds 20 --block 8
    python bench/ab_flag.py gather_in_parts --threads 2 --rounds 20 --block 8
    python bench/ab_flag.py pointwise_tiles --rounds 20 --block 8
    python bench/ab_flag.py pointwise_tiles_always --rounds 20 --block 8
    python bench/ab_flag.py pointwise_panels --rounds 20 --block 8
    python bench/ab_flag.py tile_prefetch --rounds 20 --block 8

Switches: `shifted` (im2col_shifted for stride-1 'same'-width convs), `track_zero_rows`
(gated convs zeroing only the rows the previous call wrote), `blas_in_numba` (a conv as
one compiled call with sgemm from Numba, against the Python path around np.matmul),
`shared_workspace` (one set of work buffers for all convs of a session, against one per
conv), `one_call_gate` (a gated conv's gate, cut and conv as one compiled call, against
three calls with Python between) and `banded` (a dense conv and the max pool that alone
reads it in bands of rows that stay in cache, against the conv and then the pool),
`tiles` (3 x 3 stride-1 convs, and 1 x 1 ones over few channels, on
kernels/cpu/tile_gemm.py's register tiles, against im2col + sgemm), `fuse_fire_modules`
(a fire module as one compiled call, kernels/cpu/fire.py, against its four steps) and
`paired_call` (at 2 threads, a batch of one's fire module as one compiled call that
shares each conv's parts with the helper thread, against its four steps, each shared
likewise) and `row_pad` (a GEMM over some kernels padded with zero rows to a multiple of
4, config.GEMM_ROW_PAD, against the active kernels alone), `gather_in_parts` (each of a
GEMM's two parts gathering the live channels or weights it alone reads,
conv_gemm.gather_part, against the calling thread gathering all of them before the
parts), `pointwise_tiles` (1 x 1 convs on the register tiles, their input read in place,
config.POINTWISE_TILE_MAX_K, against sgemm), `pointwise_tiles_always` (where Numba
compiles for AVX-512, every 1 x 1 conv on the tiles whatever its live channels and active
kernels, config.POINTWISE_TILES_ALWAYS_ON_AVX512, against the limits alone; turned on
here even where Numba does not compile for AVX-512), `pointwise_panels`
(1 x 1 convs over many kernels on the tiles over a copy of their live channels in panels,
config.POINTWISE_PANEL_MIN_ROWS, against sgemm or the tiles reading them in place),
`tile_prefetch` (the tiles prefetching the next tile's weights, config.TILE_PREFETCH).
--block runs each session that many images in a row
before switching: a switch about what stays in cache between calls needs the other
session out of the way. Prints the median ms per image with the switch off and on, and
on / off.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyprune  # noqa: E402
from pyprune import models  # noqa: E402
from pyprune.kernels.cpu.fire import FireKernel  # noqa: E402

SWITCHES = ("shifted", "track_zero_rows", "blas_in_numba", "shared_workspace", "one_call_gate", "banded", "tiles",
            "fuse_fire_modules", "paired_call", "row_pad", "bind_calls", "gather_in_parts", "pointwise_tiles",
            "pointwise_tiles_always", "pointwise_panels", "tile_prefetch")
FORCED_ON = ("pointwise_tiles_always",)  # on in the "on" session even where the host's default leaves it off
SESSION_SWITCHES = ("fuse_fire_modules", "bind_calls")  # attributes of the Session, not of its kernels
WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def nets():
    images = models.synthetic_images(8, seed=0)
    with np.load(WEIGHTS / "mnist_samples.npz") as f:  # scaled as the demo and the MNIST suite do
        mnist = (f["images"][:8] / np.float32(255)).astype(np.float32)
    yield "mnist gated", pyprune.load_model(WEIGHTS / "mnist_gated.h5"), mnist
    yield "squeezenet dense", models.squeezenet1_1(gated=False, seed=0), images
    for p in (0.5, 0.25):
        model = models.calibrate_gates(models.squeezenet1_1(gated=True, seed=0), images, p)
        yield f"squeezenet gated {int(p * 100)}%", model, images


def session(model, switch, on, first):
    """A session of model with `switch` on or off, having run `first` (a fire module's
    kernel comes with the first run's program; every other switch is set before it)."""
    sess = pyprune.Session(model)
    if not on and switch in SESSION_SWITCHES:
        setattr(sess, switch, False)
    elif not on:
        for step in sess._steps:
            if switch == "shared_workspace":
                if hasattr(step.kernel, "use_workspace") and step.kernel.groups == 1:
                    step.kernel.use_workspace(*(np.empty(n, np.float32) for n in step.kernel.workspace_sizes()))
            elif hasattr(step.kernel, switch):
                setattr(step.kernel, switch, False)
    elif switch in FORCED_ON:
        for step in sess._steps:
            if hasattr(step.kernel, switch):
                setattr(step.kernel, switch, True)
    sess.run(first)
    if not on and switch == "paired_call":
        for step in sess._lanes[0].lean[0]:
            if isinstance(step[1], FireKernel):
                step[1].paired_call = False
        sess.unbind()  # a bound program read the switch when the first run bound it
    return sess


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("switch", choices=SWITCHES)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--block", type=int, default=1)
    args = parser.parse_args(argv)
    pyprune.set_num_threads(args.threads)
    print(f"{args.switch}, {args.threads} thread(s), {args.rounds} rounds of {args.block} image(s) per "
          "session; median ms per image\n")
    print("| net | off | on | on / off |\n|---|---:|---:|---:|")
    for name, model, images in nets():
        sessions = {on: session(model, args.switch, on, images[:1]) for on in (False, True)}
        times = {False: [], True: []}
        for r in range(args.rounds):
            block = [images[(r * args.block + i) % len(images)][None] for i in range(args.block)]
            for on in ((False, True) if r % 2 else (True, False)):
                for x in block:
                    start = time.perf_counter()
                    sessions[on].run(x)
                    times[on].append(time.perf_counter() - start)
        off, on = (1e3 * float(np.median(times[k])) for k in (False, True))
        print(f"| {name} | {off:.3f} | {on:.3f} | {on / off:.2f} |")


if __name__ == "__main__":
    main()
