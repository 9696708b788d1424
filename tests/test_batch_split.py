"""A batch cut into chunks of samples that run at once on threads of their own (runtime.py,
threads.py): bitwise the results of the unsplit run and of each sample alone, in sample
order, on each lane's own kernels, with BLAS at one thread throughout."""

from pathlib import Path

import numba
import numpy as np
import pytest

import pyprune
from pyprune import config, models, threads
from pyprune.devices.fake import FakeDevice
from pyprune.kernels import cpu as cpu_kernels

from .test_devices import two_output_net


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, and chunks of any size (SPLIT_MIN_MACS of 1), so that small models split."""
    monkeypatch.setattr(config, "SPLIT_MIN_MACS", 1)
    pyprune.set_num_threads(2)
    yield
    pyprune.set_num_threads()


def batch(model, n, seed=0):
    rng = np.random.default_rng(seed)
    shape = model.inputs["input"]
    return (rng.normal(size=(n, *shape)) * rng.uniform(0.2, 2.0, (n, 1, 1, 1))).astype(np.float32)


def calibrated_squeezenet():
    model = models.squeezenet1_1(gated=True, seed=0, image_size=48)
    return models.calibrate_gates(model, batch(model, 6, seed=1), 0.5)


@pytest.mark.parametrize("make", [models.tiny_net, calibrated_squeezenet, models.resnet_block])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_split_run_agrees_with_the_unsplit_run(two_threads, make, n):
    model = make()
    sess = pyprune.Session(model)
    x = batch(model, n)
    whole, stats = sess.run_with_stats(x)  # stats never split: the reference
    split = sess.run(x)
    assert len(sess._lanes) == 2, "the batch should have run as two chunks"
    np.testing.assert_array_equal(split, whole)
    # Each chunk's samples in their place, with the bits each gives alone (DESIGN.md).
    for i in range(n):
        np.testing.assert_array_equal(split[i], sess.run(x[i:i + 1])[0])


def test_lanes_use_kernels_of_their_own(two_threads):
    sess = pyprune.Session(models.tiny_net())
    sess.run(batch(sess.model, 4))
    first, second = ({id(s.kernel) for s in lane.steps} for lane in sess._lanes)
    assert not first & second


def test_outputs_of_one_call_survive_the_next(two_threads):
    model = models.tiny_net()
    sess = pyprune.Session(model)
    a, b = batch(model, 4, seed=0), batch(model, 4, seed=1)
    ya = sess.run(a)
    kept = ya.copy()
    sess.run(b)
    np.testing.assert_array_equal(ya, kept)


def test_threshold_reaches_every_lane(two_threads):
    model = calibrated_squeezenet()
    sess = pyprune.Session(model)
    x = batch(model, 4)
    np.testing.assert_array_equal(sess.run(x, threshold=0.7), sess.run_with_stats(x, threshold=0.7)[0])
    assert not np.allclose(sess.run(x, threshold=0.7), sess.run(x, threshold=0.3))


def test_several_outputs_are_joined_by_name(two_threads):
    model = two_output_net()
    sess = pyprune.Session(model)
    x = batch(model, 4)
    split, (whole, _) = sess.run(x), sess.run_with_stats(x)
    assert len(sess._lanes) == 2 and set(split) == set(whole)
    for name in whole:
        np.testing.assert_array_equal(split[name], whole[name])


@pytest.mark.parametrize("n_threads, n, lanes", [(1, 8, 1), (2, 1, 1), (2, 5, 2)])
def test_how_many_lanes(monkeypatch, n_threads, n, lanes):
    monkeypatch.setattr(config, "SPLIT_MIN_MACS", 1)
    pyprune.set_num_threads(n_threads)
    try:
        sess = pyprune.Session(models.tiny_net())
        sess.run(batch(sess.model, n))
        assert len(sess._lanes) == lanes
    finally:
        pyprune.set_num_threads()


def test_split_batches_off_runs_whole(two_threads):
    sess = pyprune.Session(models.tiny_net())
    sess.split_batches = False
    sess.run(batch(sess.model, 4))
    assert len(sess._lanes) == 1


def test_small_chunks_do_not_split():
    """Chunks hold at least SPLIT_MIN_MACS dense MACs: 1 sample of SqueezeNet 1.1 at 224,
    7 of the shipped MNIST model (14.7 M MACs a sample), hundreds of the tiny net."""
    pyprune.set_num_threads(2)
    try:
        assert pyprune.Session(models.squeezenet1_1())._min_per_lane == 1
        mnist = pyprune.load(Path(__file__).parents[1] / "weights" / "mnist_gated.h5")
        assert mnist._min_per_lane == 7
        sess = pyprune.Session(models.tiny_net())
        sess.run(batch(sess.model, 8))
        assert len(sess._lanes) == 1
    finally:
        pyprune.set_num_threads()


@pytest.mark.skipif(threads.blas_num_threads() is None, reason="no OpenBLAS found to ask for its thread count")
def test_blas_stays_at_one_thread_and_is_put_back_there(two_threads):
    sess = pyprune.Session(models.tiny_net())
    for n in (4, 1):
        sess.run(batch(sess.model, n))
        assert threads.blas_num_threads() == 1
    threads._call(threads._SETTERS, 2)  # as the user's own threadpoolctl call would
    sess.run_with_stats(batch(sess.model, 1))
    assert threads.blas_num_threads() == 1


def test_a_failing_lane_raises_and_the_session_recovers(two_threads):
    model = models.tiny_net()
    sess = pyprune.Session(model)
    x = batch(model, 4)
    good = sess.run(x)
    kernel = sess._lanes[1].steps[0].kernel

    def broken(*args, **kwargs):
        raise RuntimeError("lane 1 broke")

    kernel.run = broken
    with pytest.raises(RuntimeError, match="lane 1 broke"):
        sess.run(x)
    del kernel.run
    np.testing.assert_allclose(sess.run(x), good, rtol=1e-6)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_splits_with_threads_of_its_own(two_threads):
    """The child inherits the session's pool without its threads: a split there must not hang."""
    import multiprocessing
    model = models.tiny_net()
    sess = pyprune.Session(model)
    x = batch(model, 4)
    expected = sess.run(x)  # the parent's pool now exists

    def child(queue):
        queue.put(sess.run(x))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    try:
        got = queue.get(timeout=60)
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_sessions_off_the_cpu_do_not_split(two_threads):
    sess = pyprune.Session(models.tiny_net(), device=FakeDevice(declines={"Relu"}))
    assert not sess._splittable


def test_every_cpu_kernel_releases_the_gil():
    """A compiled kernel that held the GIL would run the lanes one after the other."""
    held = [f"{module.__name__}.{name}" for module in _cpu_kernel_modules()
            for name, fn in vars(module).items()
            if isinstance(fn, numba.core.registry.CPUDispatcher) and fn.__module__ == module.__name__
            and not fn.targetoptions.get("nogil")]
    assert not held, f"compiled without nogil=True: {held}"


def _cpu_kernel_modules():
    import importlib
    import pkgutil
    return [importlib.import_module(f"{cpu_kernels.__name__}.{info.name}")
            for info in pkgutil.iter_modules(cpu_kernels.__path__)]


def test_the_kernel_modules_are_found():
    """The nogil scan above reads every module of kernels/cpu, not none."""
    names = {module.__name__.rsplit(".", 1)[1] for module in _cpu_kernel_modules()}
    assert {"conv_gemm", "gated_conv", "pool", "activation", "conv_steps"} <= names
