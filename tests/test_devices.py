"""Sessions on devices other than the CPU: placement, fallback to the CPU for declined nodes,
explicit copies, and whole networks on the CUDA device (the simulator in CI) against the CPU."""

import os
import subprocess
import sys

import numpy as np
import pytest

import pyprune
from pyprune import models
from pyprune.devices import CPU, get_device
from pyprune.devices.fake import FakeDevice
from pyprune.errors import DeviceError, InputError
from pyprune.plan import Copy

from .cuda_device import cuda_device
from .helpers import assert_matches
from .test_session import images


def run_both(model, x, device, threshold=None):
    """(CPU output, CPU stats, device output, device stats, device session)."""
    y0, s0 = pyprune.Session(model).run_with_stats(x, threshold=threshold)
    sess = pyprune.Session(model, device=device)
    y1, s1 = sess.run_with_stats(x, threshold=threshold)
    return y0, s0, y1, s1, sess


def assert_same_work(s0, s1):
    """Same work per layer; s1 may list more layers (ReLUs left unfused across devices)."""
    by_name = {b.name: b for b in s1.layers}
    assert (s0.executed_macs == s1.executed_macs).all()
    for a in s0.layers:
        b = by_name[a.name]
        assert (a.executed_macs == b.executed_macs).all() and (a.active == b.active).all(), a.name
        assert (a.live_in == b.live_in).all(), a.name
        if a.gated:
            assert (a.mask == b.mask).all(), a.name


def test_fake_device_runs_everything_with_one_copy_each_way():
    model = models.tiny_net(gated=True)
    x = images(model, 3)
    device = FakeDevice()
    y0, s0, y1, s1, sess = run_both(model, x, device)
    assert np.array_equal(y0, y1)
    assert_same_work(s0, s1)
    assert set(sess.placement.values()) == {"fake"} and sess.declined == {}
    copies = [s for s in sess._steps if isinstance(s, Copy)]
    assert [(c.tensor, c.src.name, c.dst.name) for c in copies] == [("input", "cpu", "fake")]
    assert len(sess.placement) == len(model.nodes)
    device.uploads = device.downloads = 0
    sess.run(x)
    assert (device.uploads, device.downloads) == (1, 1), "only the input goes in and the output out"


@pytest.mark.parametrize("declines", [("Concat",), ("Relu",), ("MaxPool2d", "Linear"),
                                      ("GatedConv2d",), ("Conv2d", "AvgPool2d", "Flatten")])
def test_declined_nodes_run_on_the_cpu_with_copies_between(declines):
    model = models.tiny_net(gated=True)
    x = images(model, 4, seed=2)
    device = FakeDevice(declines)
    y0, s0, y1, s1, sess = run_both(model, x, device)
    assert np.array_equal(y0, y1)  # same kernels, so bit for bit
    assert_same_work(s0, s1)
    for node in model.nodes:
        want = "cpu" if node.op in declines else "fake"
        if node.op == "Relu" and "Relu" not in declines:
            continue  # a fused ReLU goes where its conv goes
        assert sess.placement[node.name] == want, node.name
        assert (node.name in sess.declined) == (node.op in declines)
    assert "told to decline" in next(iter(sess.declined.values()))
    crossings = [s for s in sess._steps if isinstance(s, Copy)]
    assert crossings and all(c.src is not c.dst for c in crossings)


def test_a_relu_on_another_device_is_not_fused_into_the_conv():
    model = models.tiny_net(gated=True)
    sess = pyprune.Session(model, device=FakeDevice(("Relu",)))
    assert not any(getattr(s.kernel, "fused_relu", False) for s in sess._steps if not isinstance(s, Copy))


def test_unknown_device_name_is_an_input_error():
    with pytest.raises(InputError, match="device must be one of"):
        pyprune.Session(models.tiny_net(), device="tpu")


def test_cuda_without_a_usable_gpu_is_a_clear_error_and_auto_falls_back(monkeypatch):
    from pyprune.devices import cuda
    monkeypatch.setattr(cuda, "cuda_usable", lambda: (False, "no GPU here (test)"))
    with pytest.raises(DeviceError, match="no GPU here"):
        pyprune.Session(models.tiny_net(), device="cuda")
    with pytest.warns(RuntimeWarning, match="runs on the CPU: no GPU here"):
        assert get_device("auto") is CPU


def test_cuda_without_numba_cuda_says_which_extra_to_install(monkeypatch):
    from pyprune.devices import cuda
    monkeypatch.setattr(cuda.importlib.util, "find_spec", lambda name: None)
    ok, why = cuda.cuda_usable()
    assert not ok and "pip install 'pyprune[cuda]'" in why


def test_cuda_with_a_numpy_numba_cuda_cannot_compile_for_says_which_numpy_to_install():
    # On a GPU machine with NumPy 2.5, numba-cuda 0.30.4 failed inside the first kernel launch.
    # A fresh process: the compiler's NumPy support must not have been loaded yet.
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed: pip install -e '.[cuda]'")
    script = """
import numpy
del numpy.row_stack          # as NumPy 2.5 did
numpy.__version__ = "2.5.2"
from numba import cuda
cuda.is_available = lambda: True  # no GPU needed: the failure comes before any launch
from pyprune.devices.cuda import cuda_usable
print(cuda_usable())
"""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(False, " in done.stdout and "NumPy 2.5.2" in done.stdout and "numpy<2.5" in done.stdout


@pytest.fixture(scope="module")
def gpu():
    return cuda_device()


@pytest.mark.parametrize("build, kwargs", [(models.tiny_net, dict(gated=True, image_size=8)),
                                           (models.tiny_net, dict(gated=False, image_size=8)),
                                           (models.resnet_block, dict(gated=True, channels=4, image_size=6))])
def test_whole_networks_on_cuda_match_the_cpu(gpu, build, kwargs):
    model = build(**kwargs)
    x = images(model, 2, seed=4)
    y0, s0, y1, s1, sess = run_both(model, x, gpu)
    assert set(sess.placement.values()) == {"cuda"}, sess.declined
    assert_matches(y1, y0, tol=1e-5)
    assert_same_work(s0, s1)


def test_grouped_convs_written_into_a_concat_on_cuda_match_the_cpu(gpu):
    """A depthwise and a grouped gated conv side by side in one concat: each writes its
    channels into the concat buffer at its own offset (conv_grouped's c0)."""
    b = models.GraphBuilder("grouped_concat", (4, 7, 7), seed=3)
    x = b.op("Relu", b.conv("input", 8, 3, padding=1, name="stem"))
    left = b.conv(x, 8, 3, padding=1, groups=8, name="depthwise")
    right = b.conv(x, 6, 3, padding=1, groups=2, gate=dict(group_size=2), name="grouped")
    y = b.op("Concat", left, right)
    model = b.build([b.op("Flatten", b.op("GlobalAvgPool", b.op("Relu", y)))])
    x = images(model, 2, seed=5)
    models.calibrate_gates(model, x, 0.5)
    y0, s0, y1, s1, sess = run_both(model, x, gpu)
    assert set(sess.placement.values()) == {"cuda"}, sess.declined
    assert_matches(y1, y0, tol=1e-5)
    assert_same_work(s0, s1)


def test_cuda_session_per_sample_masks_threshold_and_reuse(gpu):
    """Different masks per sample in one batch, a threshold override, and a second call on
    the same session (reused buffers) all give the CPU's answer."""
    model = models.tiny_net(gated=True, image_size=8)
    x = images(model, 3, seed=7)
    models.calibrate_gates(model, x, 0.5)
    cpu, dev = pyprune.Session(model), pyprune.Session(model, device=gpu)
    for threshold in (None, 0.3, {"gconv2": 0.9}):
        y0, s0 = cpu.run_with_stats(x, threshold=threshold)
        y1, s1 = dev.run_with_stats(x, threshold=threshold)
        assert_matches(y1, y0, tol=1e-5)
        assert_same_work(s0, s1)
    masks = next(l.mask for l in s1.layers if l.name == "gconv3a")
    assert len({m.tobytes() for m in masks}) > 1, "the samples should take different paths"
    assert_matches(dev.run(x[:1]), cpu.run(x[:1]), tol=1e-5)  # a new batch size replaces buffers
    assert_matches(dev.run(x), cpu.run(x), tol=1e-5)


def test_cuda_refuses_batches_beyond_its_limit(gpu, monkeypatch):
    sess = pyprune.Session(models.tiny_net(image_size=8), device=gpu)
    monkeypatch.setattr(gpu, "max_batch", 2)
    with pytest.raises(InputError, match="at most 2 per call"):
        sess.run(np.zeros((3, 3, 8, 8), np.float32))


def test_gated_squeezenet_on_cuda_matches_the_cpu(gpu):
    """Fire modules: expands written straight into their concat buffer on the GPU, masks
    differing per sample. The slowest simulator test (about 20 s): kept to one batch of 2."""
    model = models.squeezenet1_1(gated=True, image_size=48, num_classes=10)
    x = images(model, 2, seed=1)
    models.calibrate_gates(model, x, 0.5)
    y0, s0, y1, s1, sess = run_both(model, x, gpu)
    assert set(sess.placement.values()) == {"cuda"}, sess.declined
    assert any(s.into for s in sess._steps if not isinstance(s, Copy)), "concat buffers expected"
    assert_matches(y1, y0, tol=1e-5)
    assert_same_work(s0, s1)


def two_output_net():
    """A gated conv whose output is both a model output and read further (by a declined
    op on the fake device), an identity (Dropout) output, and a second gated branch."""
    b = models.GraphBuilder("two_outputs", (3, 6, 6), seed=3)
    a = b.op("Relu", b.conv("input", 8, 3, padding=1, gate={}, name="gated_a"))
    mid = b.conv(a, 8, 1, gate={"group_size": 2}, name="gated_b")
    pooled = b.op("MaxPool2d", mid, kernel_size=(2, 2), stride=(2, 2))
    return b.build([mid, b.op("Dropout", pooled, name="out")])


@pytest.mark.parametrize("declines", [(), ("MaxPool2d",), ("Dropout", "Relu")])
def test_several_outputs_come_back_from_the_fake_device(declines):
    model = two_output_net()
    x = images(model, 3, seed=5)
    expected = pyprune.Session(model).run(x)
    got = pyprune.Session(model, device=FakeDevice(declines)).run(x)
    assert set(got) == set(expected) == {"gated_b", "out"}
    for k in expected:
        assert np.array_equal(got[k], expected[k]) and isinstance(got[k], np.ndarray)


def test_several_outputs_come_back_from_cuda(gpu):
    model = two_output_net()
    x = images(model, 2, seed=5)
    expected = pyprune.Session(model).run(x)
    got = pyprune.Session(model, device=gpu).run(x)
    for k in expected:
        assert_matches(got[k], expected[k], tol=1e-5)


def test_cuda_declines_tensors_too_large_for_32_bit_indexing(gpu):
    """2**21 elements per sample pass 2**31 at the largest batch: the CPU takes that node
    (the session is only built, not run: the simulator would take hours)."""
    b = models.GraphBuilder("wide", (8, 512, 512))
    y = b.op("Relu", b.op("MaxPool2d", "input", kernel_size=(2, 2), stride=(2, 2)))
    sess = pyprune.Session(b.build([y]), device=gpu)
    assert sess.placement == {"maxpool2d0": "cpu", "relu1": "cuda"}
    assert "32-bit indexing" in sess.declined["maxpool2d0"]
    assert [(s.tensor, s.src.name, s.dst.name) for s in sess._steps if isinstance(s, Copy)] == \
        [("maxpool2d0", "cpu", "cuda")]


def test_gate_calibration_on_cuda_is_refused_with_a_clear_error(gpu):
    model = models.tiny_net(gated=True, image_size=8)
    sess = pyprune.Session(model, device=gpu)
    with pytest.raises(InputError, match="gate calibration runs on the CPU"):
        sess._run(images(model, 1), None, stats=False, gate_hook=lambda name, z, bias: z)


def test_every_op_has_a_kernel_on_both_devices():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed: pip install -e '.[cuda]'")
    from pyprune.kernels.cpu import CPU_KERNELS
    from pyprune.kernels.cuda import CUDA_KERNELS
    from pyprune.ops import OPS
    assert set(CUDA_KERNELS) == set(CPU_KERNELS) == set(OPS)
