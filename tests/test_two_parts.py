"""A batch of one's big conv GEMMs cut in two parts (kernels/cpu/conv_gemm.parts_of) and
run on two threads at once (pair_thread.py): the same bits as the parts one after the
other inside a batch, and the reference's answer; the stem's conv + pool halves
likewise; no cuts at one thread; and the helper thread's hand-over itself."""

import gc
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyprune
from pyprune import config, models
from pyprune.kernels.cpu.conv_gemm import EMPTY, FULL, NEVER_CUT, PARTIAL, SPLIT_MACS, TRANSPOSED, parts_of
from pyprune.pair_thread import PairThread
from pyprune.ops.conv import conv2d_reference
from pyprune.reference import run_reference
from pyprune.lean_steps import sibling_steps

from .helpers import PATTERNS, assert_matches, live_act, make_kernel, mask
from .kernels.cpu.test_conv import conv_weights, magnitude


@settings(deadline=None)
@given(mode=st.sampled_from([EMPTY, FULL, TRANSPOSED, PARTIAL]), na=st.integers(0, 300), k=st.integers(1, 600),
       hw=st.integers(1, 4000), co=st.integers(1, 300), split=st.integers(1, 10**8))
def test_parts_of_cuts_big_gemms_on_aligned_bounds(mode, na, k, hw, co, split):
    na = min(na, co)
    parts, by_columns, cut = parts_of(mode, na, k, hw, co, split)
    rows = co if mode in (FULL, TRANSPOSED) else na
    if mode == EMPTY or rows * k * hw < split:
        assert parts == 1
    if parts == 1:
        return
    assert parts == 2
    if by_columns:
        assert hw >= 512 and 0 < cut < hw and cut % 16 == 0
    else:
        assert hw < 512 and 0 < cut < rows and cut % 8 == 0


@pytest.fixture
def cut_everything(monkeypatch):
    """Every GEMM that parts_of can cut is cut (a threshold of 1 MAC), every stem runs in
    bands, and batches split into chunks of any size, on two threads."""
    monkeypatch.setattr(config, "SPLIT_GEMM_MACS", 1)
    monkeypatch.setattr(config, "SPLIT_MIN_MACS", 1)
    monkeypatch.setattr(config, "CONV_POOL_BAND_MIN_BYTES", 0)
    pyprune.set_num_threads(2)
    yield
    pyprune.set_num_threads()


@pytest.fixture
def pair():
    return PairThread()


PAIR = PairThread()  # for the hypothesis test, whose examples cannot take a fixture each


@st.composite
def big_convs(draw):
    """Convs whose GEMMs parts_of cuts: by columns (planes of 512 pixels or more) or by rows
    (32 kernels or more on smaller planes)."""
    wide = draw(st.booleans())
    size = draw(st.integers(23, 26) if wide else st.integers(3, 12))
    k = draw(st.sampled_from([1, 3]))
    pad = draw(st.integers(0, 1)) if k == 3 else 0
    return dict(n=1, c=draw(st.integers(1, 6)), h=size, w=size + draw(st.integers(0, 2)), attrs=dict(
        out_channels=draw(st.integers(8, 24) if wide else st.integers(32, 70)), kernel_size=(k, k),
        stride=(1, 1), padding=(pad,) * 4, dilation=(1, 1), groups=1),
        live=draw(st.sampled_from(PATTERNS)), active=draw(st.sampled_from(PATTERNS + ("none_given",))),
        gated=draw(st.booleans()), seed=draw(st.integers(0, 2**31)))


@settings(max_examples=60, deadline=None)
@given(case=big_convs())
def test_a_conv_in_two_parts_on_two_threads_matches_one_thread_and_the_reference(case):
    """Every mode prepare_sample leaves (all kernels and channels, some channels, some
    kernels, none), written as parts on two threads and one after the other: equal bits,
    the reference's answer, and inactive channels exactly zero."""
    old = config.SPLIT_GEMM_MACS
    config.SPLIT_GEMM_MACS = 1
    try:
        rng = np.random.default_rng(case["seed"])
        a, c = case["attrs"], case["c"]
        w = conv_weights(rng, case)
        kernel, _ = make_kernel("Conv2d", a, w, [(c, case["h"], case["w"])])
        assert kernel.may_split
        live = mask(rng, 1, c, case["live"])
        x = live_act(rng.normal(size=(1, c, case["h"], case["w"])), live)
        active = None if case["active"] == "none_given" else mask(rng, 1, a["out_channels"], case["active"])
        two = kernel.convolve(x, active, pair=PAIR).copy()
        one = kernel.convolve(x, active).copy()
    finally:
        config.SPLIT_GEMM_MACS = old
    np.testing.assert_array_equal(two, one)
    expected = conv2d_reference(x.data, w["weight"], w["bias"], a["stride"], a["padding"], a["dilation"], 1)
    if active is not None:
        expected = expected * active[:, :, None, None]
    assert_matches(two, expected, magnitude=magnitude(x.data, w, a))
    if active is not None:
        assert not two[~active].any()



def two_part_runs(monkeypatch):
    """Count the GEMMs run as two parts on two threads."""
    calls = []
    real = PairThread.run_both

    def counted(self, fn, here, there):
        calls.append(fn.__name__)
        return real(self, fn, here, there)

    monkeypatch.setattr(PairThread, "run_both", counted)
    return calls


def calibrated_squeezenet(image_size):
    model = models.squeezenet1_1(gated=True, seed=0, image_size=image_size)
    return models.calibrate_gates(model, models.synthetic_images(4, seed=1, size=image_size), 0.5)


@pytest.mark.parametrize("make", [lambda: calibrated_squeezenet(48), lambda: calibrated_squeezenet(96),
                                  lambda: models.squeezenet1_1(image_size=96)],
                         ids=["gated-48-by-rows", "gated-96-by-columns", "dense-96"])
def test_a_network_on_two_threads_gives_the_same_bits_alone_and_in_a_batch(monkeypatch, cut_everything, make):
    """Alone, a sample's parts run at once on two threads, and each fire module's expand1x1
    on the helper thread while its expand3x3 runs; in a batch's chunks, one after the other:
    the same bits, and the reference's answer."""
    model = make()
    sess = pyprune.Session(model)
    x = models.synthetic_images(4, seed=2, size=model.inputs["input"][1])
    calls = two_part_runs(monkeypatch)
    alone = [sess.run(x[i:i + 1]) for i in range(4)]
    assert "finish_first" in calls and "conv_pool_rows" in calls
    expand1x1 = [step.kernel for step in sess._steps if step.node.name.endswith("expand1x1")]
    assert len(sibling_steps(sess._lanes[0].steps)) == 8 and all(k.own_workspace for k in expand1x1)
    calls.clear()
    whole = sess.run(x)
    assert len(sess._lanes) == 2 and not calls
    for i in range(4):
        np.testing.assert_array_equal(alone[i], whole[i:i + 1])
    expected, _ = run_reference(model, {"input": x})
    assert_matches(whole, expected[model.outputs[0]], tol=1e-4)


def test_one_thread_cuts_nothing_and_agrees_with_the_reference(monkeypatch, cut_everything):
    """At one thread no GEMM is cut (the parts would only cost time): nothing is handed over,
    and the bits may differ from two threads' only within float32 rounding."""
    model = calibrated_squeezenet(96)
    sess = pyprune.Session(model)
    x = models.synthetic_images(2, seed=4, size=96)
    two = sess.run(x[:1])
    pyprune.set_num_threads(1)
    calls = two_part_runs(monkeypatch)
    one = sess.run(x[:1])
    assert not calls
    assert all(s.kernel.conv_plan[SPLIT_MACS] == NEVER_CUT for s in sess._steps if hasattr(s.kernel, "conv_plan"))
    np.testing.assert_array_equal(one, sess.run(x)[:1])
    np.testing.assert_allclose(one, two, rtol=1e-4, atol=1e-5)


def test_stats_runs_use_both_threads_with_the_same_bits(monkeypatch, cut_everything):
    model = calibrated_squeezenet(48)
    sess = pyprune.Session(model)
    x = models.synthetic_images(1, seed=3, size=48)
    calls = two_part_runs(monkeypatch)
    y, _ = sess.run_with_stats(x)
    assert calls
    np.testing.assert_array_equal(y, sess.run(x))


def test_split_batches_off_keeps_a_batch_of_one_on_the_calling_thread(monkeypatch, cut_everything):
    sess = pyprune.Session(models.squeezenet1_1(image_size=48))
    sess.split_batches = False
    calls = two_part_runs(monkeypatch)
    sess.run(models.synthetic_images(1, seed=0, size=48))
    assert not calls


def test_the_helpers_error_reaches_the_caller_after_both_parts(pair):
    done = []

    def part(which):
        if which == "there":
            raise ValueError("the helper's part failed")
        done.append(which)

    with pytest.raises(ValueError, match="the helper's part failed"):
        pair.run_both(part, ("here",), ("there",))
    assert done == ["here"]
    pair.run_both(lambda *a: done.append(a), (1,), (2,))  # usable again
    assert sorted(done[1:]) == [(1,), (2,)]


def test_the_callers_error_waits_for_the_helper(pair):
    finished = threading.Event()

    def part(which):
        if which == "here":
            raise KeyError("the caller's part failed")
        finished.wait(0.05)
        finished.set()

    with pytest.raises(KeyError):
        pair.run_both(part, ("here",), ("there",))
    assert finished.is_set()


def test_the_helper_thread_ends_with_its_pair():
    before = {t for t in threading.enumerate() if t.name == "pyprune-pair"}
    pair = PairThread()
    pair.run_both(lambda *a: None, (), ())
    helper = next(t for t in threading.enumerate() if t.name == "pyprune-pair" and t not in before)
    del pair
    gc.collect()
    helper.join(timeout=10)
    assert not helper.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_a_helper_of_its_own(cut_everything):
    """The child inherits the session's PairThread without its thread: waiting on it would hang."""
    import multiprocessing
    sess = pyprune.Session(models.squeezenet1_1(image_size=48))
    x = models.synthetic_images(1, seed=0, size=48)
    expected = sess.run(x)  # the parent's helper now exists

    def child(queue):
        queue.put((sess._pair is None or not sess._pair.usable(), sess.run(x)))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    try:
        stale, got = queue.get(timeout=60)
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
    assert stale
    np.testing.assert_array_equal(got, expected)


def test_started_work_is_collected_by_wait_or_the_next_start(pair):
    done = []
    pair.start(done.append, ("first",))
    pair.run_both(done.append, ("here",), ("there",))  # waits for "first" before handing over
    assert done[0] == "first" and sorted(done[1:]) == ["here", "there"]

    def fail():
        raise RuntimeError("started work failed")

    pair.start(fail, ())
    with pytest.raises(RuntimeError, match="started work failed"):
        pair.wait()
    pair.wait()  # nothing left to wait for


def test_a_failing_sibling_on_the_helper_raises_and_the_session_recovers(monkeypatch, cut_everything):
    sess = pyprune.Session(models.squeezenet1_1(image_size=48))
    x = models.synthetic_images(1, seed=0, size=48)
    good = sess.run(x)
    kernel = next(step.kernel for step in sess._steps if step.node.name == "fire3/expand1x1")

    def broken(*args, **kwargs):
        raise RuntimeError("fire3/expand1x1 broke")

    monkeypatch.setattr(kernel, "run", broken)
    with pytest.raises(RuntimeError, match="fire3/expand1x1 broke"):
        sess.run(x)
    monkeypatch.undo()
    pyprune.set_num_threads(2)
    np.testing.assert_array_equal(sess.run(x), good)


def test_also_runs_after_a_job_still_running_and_never_after_one_that_ended(pair):
    gate, claimed = threading.Event(), threading.Event()
    order = []
    pair.start(lambda: (claimed.set(), gate.wait(5), order.append("job")), ())
    assert claimed.wait(5) and pair.busy()  # the helper has the job
    pair.also(order.append, ("also",))
    gate.set()
    pair.wait()
    assert order == ["job", "also"] and not pair.busy()

    pair.start(order.append, ("quick",))
    time.sleep(0.05)  # the helper has ended its job: what also() adds now is dropped
    pair.also(order.append, ("late",))
    pair.wait()
    pair.run_both(order.append, ("here",), ("there",))
    assert "late" not in order and order[-2:] in (["here", "there"], ["there", "here"])


def test_a_failing_job_skips_what_also_added_and_raises(pair):
    gate, ran = threading.Event(), []

    def fail():
        gate.wait(5)
        raise RuntimeError("the helper's job failed")

    pair.start(fail, ())
    pair.also(ran.append, ("also",))
    gate.set()
    with pytest.raises(RuntimeError, match="the helper's job failed"):
        pair.wait()
    assert ran == []


def test_a_tiled_conv_started_while_the_helper_is_busy_shares_its_pixels(monkeypatch, pair):
    """The calling thread starts the conv at once; the helper, once its own job ends, claims
    what pixels are left. Same bits as one thread, the reference's answer."""
    from pyprune.kernels.cpu import conv as conv_module
    rng = np.random.default_rng(5)
    a = dict(out_channels=40, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    w = {"weight": rng.normal(size=(40, 8, 3, 3)).astype(np.float32), "bias": rng.normal(size=40).astype(np.float32)}
    kernel, _ = make_kernel("Conv2d", a, w, [(8, 48, 48)])
    assert kernel.tiles and kernel.may_split  # 6.6 M MACs
    x = live_act(rng.normal(size=(1, 8, 48, 48)), None)
    one = kernel.convolve(x, None).copy()
    parts, started = [], threading.Event()
    real = conv_module.finish_first

    def counted(*args):
        parts.append(args[-1])
        started.set()
        real(*args)

    monkeypatch.setattr(conv_module, "finish_first", counted)
    claimed = threading.Event()
    pair.start(lambda: (claimed.set(), started.wait(5)), ())  # it ends once the conv has started
    assert claimed.wait(5)  # the helper has its job
    two = kernel.convolve(x, None, pair=pair).copy()
    assert sorted(parts) == [0, 1] and not pair.busy()
    np.testing.assert_array_equal(two, one)
    expected = conv2d_reference(x.data, w["weight"], w["bias"], a["stride"], a["padding"], a["dilation"], 1)
    assert_matches(two, expected, magnitude=magnitude(x.data, w, a))


def test_a_job_the_helper_has_not_begun_runs_on_the_caller(monkeypatch, pair):
    """A helper held up (here: never woken) leaves its job to wait(), which runs it on the
    calling thread and drops what also() added; the pair works as before afterwards."""
    from pyprune import pair_thread
    ran = []
    record = lambda tag: ran.append((tag, threading.current_thread().name))  # noqa: E731
    monkeypatch.setattr(pair_thread, "_wake", lambda go: None)
    pair.run_both(record, ("here",), ("there",))
    pair.start(record, ("started",))
    pair.also(record, ("also",))
    pair.wait()
    me = threading.current_thread().name
    assert ran == [("here", me), ("there", me), ("started", me)] and not pair.busy()
    monkeypatch.undo()
    ran.clear()
    pair.run_both(record, ("here",), ("there",))
    assert sorted(tag for tag, _ in ran) == ["here", "there"]


def test_many_quick_hand_overs_run_each_job_once(pair):
    """Jobs that end before the helper wakes, and ones it claims: each runs exactly once,
    before run_both returns, whichever thread claimed it."""
    counts = np.zeros(2, np.int64)

    def job(i):
        counts[i] += 1

    for n in range(3000):
        pair.run_both(job, (0,), (1,))
        assert counts[0] == counts[1] == n + 1
