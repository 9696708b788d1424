"""A fire module (squeeze, two expands into one concat buffer, the concat) as one compiled
call (kernels/cpu/fire.py, lean_steps.fuse_fire_modules): the bits of its four steps run
one by one, with and without gates, thresholds and batches, and with a helper thread; the
steps themselves where it cannot run (a calibration hook, a conv path without sgemm in
Numba)."""

import numpy as np
import pytest

import pyprune
from pyprune import config, models, pair_thread
from pyprune.kernels.cpu import fire, handover
from pyprune.kernels.cpu.fire import FireKernel
from pyprune.pair_thread import PairThread
from pyprune.reference import run_reference

from .helpers import assert_matches


def fire_net(gate_squeeze, gate_expands, seed=3, e1_pool="avg"):
    """Two fire modules in a row, then a conv that reads the second's concat (so that
    neither concat reaches the caller), and its ReLU; e1_pool: how the first expand's gate
    pools ("avg" as the others, or "max")."""
    b = models.GraphBuilder("fires", (8, 10, 10), seed=seed)
    gs, ge = ({} if gate_squeeze else None), ({} if gate_expands else None)
    ge1 = None if ge is None else {"gate_pool": e1_pool}
    x = "input"
    for i in (1, 2):
        s = b.op("Relu", b.conv(x, 6, 1, gate=gs, name=f"f{i}/squeeze"), name=f"f{i}/relu_s")
        left = b.op("Relu", b.conv(s, 5, 1, gate=ge1, name=f"f{i}/e1"), name=f"f{i}/relu_1")
        right = b.op("Relu", b.conv(s, 7, 3, padding=1, gate=ge, name=f"f{i}/e3"), name=f"f{i}/relu_3")
        x = b.op("Concat", left, right, name=f"f{i}/concat")
    return b.build([b.op("Relu", b.conv(x, 4, 1, name="head"), name="out")])


def images(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 8, 10, 10)) * rng.uniform(0.2, 2.0, (n, 1, 1, 1))).astype(np.float32)


@pytest.fixture(autouse=True)
def one_thread():
    """One thread unless a test says otherwise: at two, a batch of one shares its GEMM parts
    with a helper thread."""
    before = pyprune.get_num_threads()
    pyprune.set_num_threads(1)
    yield
    pyprune.set_num_threads(before)


def count_calls(monkeypatch, module, name):
    """Replace module.name with a wrapper that counts its calls; returns the count (a list of one)."""
    count = [0]
    real = getattr(module, name)

    def counted(*args):
        count[0] += 1
        return real(*args)

    monkeypatch.setattr(module, name, counted)
    return count


@pytest.fixture
def fire_calls(monkeypatch):
    """Counts the fused calls that run."""
    return count_calls(monkeypatch, fire, "fire_call")


@pytest.mark.parametrize("gate_squeeze, gate_expands", [(True, True), (False, False), (True, False), (False, True)])
def test_a_fire_module_in_one_call_gives_its_steps_bits(gate_squeeze, gate_expands, conv_path, fire_calls):
    model = fire_net(gate_squeeze, gate_expands)
    sess = pyprune.Session(model)
    calls = 0
    for seed, n, threshold in ((0, 1, None), (1, 1, 0.3), (2, 3, None), (3, 1, {"f2/e3": 0.8} if gate_expands else 0.7),
                               (0, 1, None)):
        x = images(n, seed)
        if not gate_squeeze and not gate_expands:
            threshold = None
        y = sess.run(x, threshold=threshold)
        steps, _ = sess.run_with_stats(x, threshold=threshold)  # the general loop, step by step
        np.testing.assert_array_equal(y, steps)
        if not isinstance(threshold, dict):  # the reference takes one threshold for every gate
            assert_matches(y, run_reference(model, {"input": x}, threshold)[0]["out"])
        calls += 2
    program = sess._lanes[0].lean[0]
    assert sum(isinstance(step[1], FireKernel) for step in program) == 2
    assert fire_calls[0] == (calls if conv_path == "numba" else 0)  # the Python path runs the steps


@pytest.mark.parametrize("e1_pool", ["avg", "max"])
def test_expand_gates_share_one_pooling_only_where_they_pool_alike(monkeypatch, e1_pool, fire_calls):
    """At one thread fire.expand_gates pools the squeeze's output once for both expands'
    gates where they pool alike (each gate's own pooling otherwise); with the helper at two
    each gate pools on its own thread: the steps' bits every way."""
    monkeypatch.setattr(config, "SPLIT_MIN_MACS", 1)  # this small net's sample worth two threads
    paired = count_calls(monkeypatch, pair_thread, "fire_call_paired")
    model = fire_net(True, True, e1_pool=e1_pool)
    sess = pyprune.Session(model)
    for threads in (1, 2):
        pyprune.set_num_threads(threads)
        for seed, n in ((0, 1), (1, 2), (2, 1)):
            x = images(n, seed)
            steps, _ = sess.run_with_stats(x)
            np.testing.assert_array_equal(sess.run(x), steps)
    pyprune.set_num_threads(1)
    assert fire_calls[0] > 0 and paired[0] > 0


def test_a_calibration_hook_sees_each_gate_of_a_fused_module(fire_calls):
    model = fire_net(True, True)
    sess = pyprune.Session(model)
    sess.run(images(1, 0))
    seen = []

    def hook(name, z, bias):
        seen.append(name)
        return z

    before = fire_calls[0]
    sess._run(images(2, 1), None, stats=False, gate_hook=hook)
    assert seen == [f"f{i}/{c}" for i in (1, 2) for c in ("squeeze", "e1", "e3")]
    assert fire_calls[0] == before


@pytest.mark.parametrize("gate_squeeze, gate_expands", [(True, True), (False, False)])
def test_two_threads_run_a_module_in_one_call_with_the_helper(monkeypatch, gate_squeeze, gate_expands):
    """A batch of one at two threads runs each module as one compiled call whose convs share
    their GEMM parts with the helper thread (fire_call_paired): the bits of the module's
    four steps cut in the same parts, and one thread's within rounding."""
    monkeypatch.setattr(config, "SPLIT_MIN_MACS", 1)  # this small net's sample worth two threads
    monkeypatch.setattr(config, "SPLIT_GEMM_MACS", 1)  # and its tiled 3 x 3 convs cut in two
    count = count_calls(monkeypatch, pair_thread, "fire_call_paired")
    sess = pyprune.Session(fire_net(gate_squeeze, gate_expands))
    xs = [images(1, seed) for seed in (4, 5, 6)]
    try:
        pyprune.set_num_threads(2)
        sess.run(xs[0])  # the first run: the helper loads its loop after it
        fused = [sess.run(x) for x in xs]
        monkeypatch.setattr(FireKernel, "paired_call", False)
        sess.unbind()  # a bound program read the switch when it was bound
        steps = [sess.run(x) for x in xs]
    finally:
        pyprune.set_num_threads(1)
    alone = [sess.run(x) for x in xs]
    assert count[0] == 2 * (len(xs) + 1)
    assert any(isinstance(step[1], FireKernel) for step in sess._lanes[0].lean[0])
    for f, s, a in zip(fused, steps, alone):
        np.testing.assert_array_equal(f, s)
        assert_matches(f, a, tol=1e-5)  # convs cut in parts round differently


def test_a_paired_module_settles_the_helper_before_an_error_goes_on(monkeypatch):
    """An error in the caller's part leaves the helper's jobs settled (taken back, or waited
    for) before it propagates, in both of the control array's records (a part of a conv, and
    the first expand whole); a part the helper failed in, rerun here without an error, raises."""
    settled = []
    pair = PairThread()

    def fails(ctrl, *args):
        raise ValueError("the caller's part failed")

    monkeypatch.setattr(pair_thread, "fire_call_paired", fails)
    monkeypatch.setattr(handover, "settle", lambda ctrl: settled.append(ctrl) or 2)
    with pytest.raises(ValueError, match="caller's part"):
        pair.fire_module(())
    assert len(settled) == 2 and settled[0] is pair.ctrl
    assert settled[1].base is pair.ctrl and settled[1].ctypes.data == pair.ctrl[handover.RECORD:].ctypes.data
    monkeypatch.setattr(pair_thread, "fire_call_paired", lambda ctrl, *args: True)
    with pytest.raises(RuntimeError, match="helper thread failed"):
        pair.fire_module(())


def test_a_session_can_run_fire_modules_as_steps(fire_calls):
    model = fire_net(True, True)
    fused, steps = pyprune.Session(model), pyprune.Session(model)
    steps.fuse_fire_modules = False
    x = images(1, 5)
    np.testing.assert_array_equal(steps.run(x), fused.run(x))
    assert fire_calls[0] == 2  # one per module, all in the fused session
    assert not any(isinstance(step[1], FireKernel) for step in steps._lanes[0].lean[0])
