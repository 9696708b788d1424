"""The shipped MNIST gated model (per-image latency, batch 1), the Python and dispatch
overhead per layer (chains of tiny element-wise, conv and gated-conv layers), and start-up
time: a new process to its first result, cold (empty Numba cache) and warm (cache filled
by the cold run), also without SciPy as a core install has none."""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import pyprune
from pyprune.graph import Model, Node
from pyprune.models import GraphBuilder

WEIGHTS = os.path.join(os.path.dirname(__file__), "..", "weights")


@pytest.fixture(scope="module")
def mnist_images():
    with np.load(os.path.join(WEIGHTS, "mnist_samples.npz")) as f:
        return (f["images"] / np.float32(255)).astype(np.float32)


@pytest.mark.parametrize("model", ["mnist_gated", "mnist_dense"])
def test_mnist_per_image(benchmark, mnist_images, model):
    sess = pyprune.load(os.path.join(WEIGHTS, f"{model}.h5"))
    singles = [mnist_images[i:i + 1] for i in range(64)]
    sess.run(singles[0])
    it = iter(range(10**9))
    benchmark.group = "mnist, batch 1"
    benchmark(lambda: sess.run(singles[next(it) % 64]))


LAYERS = 100


def tiny_chain(kind, n=LAYERS):
    """n layers on a (8, 4, 4) tensor, where the time is almost all overhead: `relu`
    (element-wise), `conv` (1 x 1, 8 -> 8, ReLU fused) or `gated_conv` (the same with a gate
    that keeps every other kernel, so every layer gathers and scatters as a gated layer does)."""
    if kind == "relu":
        nodes, x = [], "input"
        for i in range(n):
            nodes.append(Node(f"relu{i}", "Relu", [x], [f"t{i}"]))
            x = f"t{i}"
        return Model({"input": (8, 4, 4)}, [x], nodes)
    b = GraphBuilder(kind, (8, 4, 4), seed=0)
    x = "input"
    for i in range(n):
        x = b.op("Relu", b.conv(x, 8, 1, gate={} if kind == "gated_conv" else None, name=f"conv{i}"))
    model = b.build([x])
    for node in model.nodes:
        if node.op == "GatedConv2d":
            node.weights["gate_bias"] = np.where(np.arange(8) % 2 == 0, 50.0, -50.0).astype(np.float32)
    return model


@pytest.mark.parametrize("kind", ["relu", "conv", "gated_conv"])
def test_overhead_per_layer(benchmark, kind):
    sess = pyprune.Session(tiny_chain(kind))
    x = np.ones((1, 8, 4, 4), np.float32)
    sess.run(x)
    benchmark.extra_info["layers"] = LAYERS
    benchmark.group = "overhead"
    benchmark(sess.run, x)


STARTUP = ("import time; t = time.perf_counter(); import sys; {hide}import numpy as np, pyprune; "
           "s = pyprune.load({path!r}); s.run(np.zeros((1, 1, 28, 28), np.float32)); "
           "print(time.perf_counter() - t, time.time())")
# Where SciPy is installed (it comes with the train extra, not with pyprune), Numba imports
# scipy.linalg.cython_blas as its first kernel loads; pyprune/scipy_blas.py loads that module
# alone. Hiding SciPy gives the start of a core install (`pip install pyprune`), which has none.
HIDE_SCIPY = "sys.modules['scipy'] = None; "


def start_to_first_result(cache_dir, hide_scipy=False):
    """(to first result, to exit, in process) in seconds, for a new process that loads the
    MNIST model and runs it once. The first result comes when that run returns; the exit
    adds the interpreter's teardown (0.15-0.25 s here, mostly its last garbage collection
    over Numba's objects), which a user waiting for a result does not wait for.
    PYTHONDONTWRITEBYTECODE, which this sandbox sets, is dropped: a default Python caches
    bytecode, so its later processes do not compile pyprune's sources again (0.05-0.1 s)."""
    code = STARTUP.format(path=os.path.join(WEIGHTS, "mnist_gated.h5"), hide=HIDE_SCIPY if hide_scipy else "")
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    wall, start = time.time(), time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    to_exit = time.perf_counter() - start
    inner, result_at = map(float, done.stdout.split())
    return result_at - wall, to_exit, inner


def test_start_time(benchmark):
    """Cold: a new process with an empty Numba cache; warm: the next process. Both include
    interpreter start-up, imports, loading the model and the first run. The benchmark's own
    timing runs to the process's exit; extra_info holds the times to the first result, and
    the warm start of a core install (no SciPy), run before each round."""
    with tempfile.TemporaryDirectory() as cache:
        cold, cold_exit, cold_inner = start_to_first_result(cache)
        warm_firsts, core_firsts = [], []

        def warm_start():
            first, _, _ = start_to_first_result(cache)
            warm_firsts.append(first)

        def core_start():  # pedantic's setup: untimed, before each round
            core_firsts.append(start_to_first_result(cache, hide_scipy=True)[0])

        warm = benchmark.pedantic(warm_start, setup=core_start, rounds=3, iterations=1)
    benchmark.extra_info.update(cold_seconds=cold, cold_to_exit_seconds=cold_exit, cold_in_process_seconds=cold_inner,
                                warm_seconds=float(np.median(warm_firsts)), warm_rounds_seconds=warm_firsts,
                                warm_core_seconds=float(np.median(core_firsts)), warm_core_rounds_seconds=core_firsts)
    benchmark.group = "start-up (process start to first result)"
    assert warm is None and warm_firsts  # one round where benchmarks are disabled (CI)
