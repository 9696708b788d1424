"""A batch of one's conv GEMMs cut in two parts (kernels/cpu/conv_gemm.parts_of) and run
on two threads at once (pair_thread.py): the same bits as the parts one after the other
inside a batch, and the reference's answer; the stem's conv + pool halves likewise; no
cuts at one thread; and the helper thread's hand-over itself (kernels/cpu/handover.py)."""

import gc
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyprune
from pyprune import config, models
from pyprune.kernels.cpu.conv_gemm import EMPTY, FULL, NEVER_CUT, PARTIAL, ROW_PAD, SPLIT_MACS, TRANSPOSED, conv_plan, \
    finish_part, gemm_rows, parts_of, prepare_sample
from pyprune.kernels.cpu import handover
from pyprune.kernels.cpu.gated_conv import conv_with_gate
from pyprune.pair_thread import PairThread
from pyprune.ops.conv import conv2d_reference
from pyprune.reference import run_reference

from .helpers import PATTERNS, assert_matches, live_act, make_kernel, mask
from .kernels.cpu.test_conv import conv_weights, magnitude


@settings(deadline=None)
@given(mode=st.sampled_from([EMPTY, FULL, TRANSPOSED, PARTIAL]), na=st.integers(0, 300), k=st.integers(1, 600),
       hw=st.integers(1, 4000), co=st.integers(1, 300), split=st.integers(1, 10**8), row_pad=st.integers(0, 3))
def test_parts_of_cuts_big_gemms_on_aligned_bounds(mode, na, k, hw, co, split, row_pad):
    na = min(na, co)
    plan = conv_plan((1, 1), (1, 1, 0, 0, 1, 1), (1, hw), False, True, 4, split, row_pad=row_pad)
    assert plan[SPLIT_MACS] == split and plan[ROW_PAD] == row_pad
    parts, by_columns, cut = parts_of(mode, na, k, hw, co, plan)
    rows = gemm_rows(mode, na, co, row_pad)
    if mode == EMPTY or rows * k * hw < split:
        assert parts == 1
    if parts == 1:
        return
    assert parts == 2
    if by_columns:
        assert hw >= 512 and 0 < cut < hw and cut % 16 == 0
    else:
        assert hw < 512 and 0 < cut < rows and cut % 8 == 0
        assert mode != PARTIAL or cut < na, "the second part must hold real rows, not only padding"


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


def serving(pair):
    """pair, its first run over (in which the caller runs every job) and its helper serving:
    spinning until end()."""
    pair.begin()
    pair.end()
    pair.begin()
    deadline = time.monotonic() + 300  # a cold Numba cache compiles the helper's loop first
    while not pair.ctrl[handover.SERVING]:
        assert time.monotonic() < deadline, "the helper never started serving"
        time.sleep(0.001)
    return pair


@pytest.fixture
def pair():
    """A PairThread whose helper serves (spins) for the test."""
    pair = serving(PairThread())
    yield pair
    pair.end()


PAIR = PairThread()  # for the hypothesis test, whose examples cannot take a fixture each: begun per example


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
        PAIR.begin()
        try:
            two = kernel.convolve(x, active, pair=PAIR).copy()
        finally:
            PAIR.end()
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



@settings(max_examples=30, deadline=None)
@given(wide=st.booleans(), every_kernel=st.booleans(), seed=st.integers(0, 2**31))
def test_each_part_gathers_the_operands_it_alone_reads(wide, every_kernel, seed):
    """A 1 x 1 conv over a few live channels of many, cut in two: each part gathers its own
    share (conv_gemm.gather_part): the input's columns where the cut is by columns, the
    weights' rows where it is by rows. Part 1 run first, over work buffers full of NaN,
    then part 0: the reference's answer, so neither part read what only the other
    gathered."""
    rng = np.random.default_rng(seed)
    c, size, co = 48, (24 if wide else 10), (16 if wide else 64)
    a = dict(out_channels=co, kernel_size=(1, 1), stride=(1, 1), padding=(0,) * 4, dilation=(1, 1), groups=1)
    case = dict(c=c, attrs=a)
    w = conv_weights(rng, case)
    kernel, _ = make_kernel("Conv2d", a, w, [(c, size, size)])
    kernel.pointwise_tiles = False  # 5 live channels would run on tiles, which gather nothing
    live = np.zeros((1, c), np.bool_)
    live[0, rng.choice(c, 5, replace=False)] = True
    active = np.ones((1, co), np.bool_)
    if not every_kernel:  # a quarter off: enough left for a cut by rows (parts_of)
        active[0, rng.choice(co, co // 4, replace=False)] = False
    x = live_act(rng.normal(size=(1, c, size, size)), live)
    w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf = kernel.gemm_args(x)
    plan[SPLIT_MACS] = 1
    for buf in (cols_buf, w_buf, y_buf):
        buf[...] = np.nan
    sample, hw = x.data[0], size * size
    mode, na, k, cols = prepare_sample(sample, live[0], active[0], w2, w2_t, plan, index_buf, cols_buf.reshape(-1),
                                       w_buf)
    assert mode == (TRANSPOSED if every_kernel else PARTIAL) and k == 5
    parts, by_columns, _ = parts_of(mode, na, k, hw, co, plan)
    assert parts == 2 and by_columns == wide
    dst = np.zeros((co, hw), np.float32)
    for part in (1, 0):
        finish_part(sample, mode, na, k, cols, w2, w2_t, w_tiles, w_buf, y_buf, bias, plan, index_buf, dst,
                    np.ones(co, np.bool_), part)
    expected = conv2d_reference(x.data, w["weight"], w["bias"], a["stride"], a["padding"], a["dilation"], 1)[0]
    expected = expected * active[0][:, None, None]
    assert_matches(dst.reshape(co, size, size), expected, magnitude=magnitude(x.data, w, a)[0])


def two_part_runs(monkeypatch):
    """Count the jobs run as two halves on two threads (conv parts, stem halves)."""
    calls = []
    for name in ("conv_parts", "stem_halves"):
        real = getattr(PairThread, name)

        def counted(self, *args, _real=real, _name=name):
            calls.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(PairThread, name, counted)
    return calls


def calibrated_squeezenet(image_size):
    model = models.squeezenet1_1(gated=True, seed=0, image_size=image_size)
    return models.calibrate_gates(model, models.synthetic_images(4, seed=1, size=image_size), 0.5)


@pytest.mark.parametrize("make", [lambda: calibrated_squeezenet(48), lambda: calibrated_squeezenet(96),
                                  lambda: models.squeezenet1_1(image_size=96)],
                         ids=["gated-48-by-rows", "gated-96-by-columns", "dense-96"])
def test_a_network_on_two_threads_gives_the_same_bits_alone_and_in_a_batch(monkeypatch, cut_everything, make):
    """Alone, a sample's parts run at once on two threads; in a batch's chunks, one after
    the other: the same bits, and the reference's answer."""
    model = make()
    sess = pyprune.Session(model)
    x = models.synthetic_images(4, seed=2, size=model.inputs["input"][1])
    calls = two_part_runs(monkeypatch)
    alone = [sess.run(x[i:i + 1]) for i in range(4)]
    assert "conv_parts" in calls and "stem_halves" in calls
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


def test_a_serving_helper_runs_the_jobs_it_claims_once(pair):
    """Given time to claim a job (patience), the serving helper runs it; each job runs once."""
    ran = [pair.probe(patience=10**9) for _ in range(50)]
    assert ran.count("helper") >= 45  # a neighbour may hold its core now and then
    assert pair.ctrl[handover.SCALARS] == 50


def test_a_parked_helper_leaves_every_job_to_the_caller():
    """Before begin(), in the first run (begin() to end()) and after end() the helper does
    not serve: the caller takes each job back and runs it, without waiting for it."""
    pair = PairThread()
    assert [pair.probe(patience=1000) for _ in range(10)] == ["caller"] * 10
    pair.begin()
    assert [pair.probe(patience=1000) for _ in range(10)] == ["caller"] * 10
    pair.end()
    assert pair.probe() == "caller" and pair.ctrl[handover.SCALARS] == 21


def test_many_quick_hand_overs_run_each_job_once(pair):
    """Jobs taken back at once and jobs the helper claims, mixed: each runs exactly once,
    before probe() returns, whichever thread had it."""
    for n in range(3000):
        pair.probe(patience=n % 3 * 200)
        assert pair.ctrl[handover.SCALARS] == n + 1


def test_a_job_that_fails_raises_its_error_on_the_caller_and_the_pair_recovers(pair):
    """A job that raises on the helper runs again on the calling thread, which raises its
    own error; the pair serves on."""
    for _ in range(5):
        with pytest.raises(ValueError, match="failed, as asked"):
            pair.probe(fail=True, patience=10**9)
    assert pair.probe(patience=10**9) in ("helper", "caller")
    assert pair.ctrl[handover.STATE] == handover.IDLE


def test_a_conv_part_that_fails_waits_for_the_helper_and_raises(pair):
    """An `out` that is no channel slice of its buffer: the conv's first part raises on the
    caller once the helper's part is settled, and the pair works on."""
    rng = np.random.default_rng(0)
    a = dict(out_channels=40, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    w = {"weight": rng.normal(size=(40, 8, 3, 3)).astype(np.float32), "bias": rng.normal(size=40).astype(np.float32)}
    kernel, _ = make_kernel("Conv2d", a, w, [(8, 48, 48)])
    x = live_act(rng.normal(size=(1, 8, 48, 48)), None)
    good = kernel.convolve(x, None).copy()
    args = kernel.gemm_args(x)
    buffer = np.zeros((1, 40, 48, 48), np.float32)
    stranger = np.zeros((1, 40, 48, 48), np.float32)
    with pytest.raises(ValueError, match="channel slice"):
        pair.conv_parts(x.data, 4, 40, 72, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7],
                        args[8], buffer, stranger, np.ones((1, 40), np.bool_))
    assert pair.ctrl[handover.STATE] == handover.IDLE
    np.testing.assert_array_equal(kernel.convolve(x, None, pair=pair), good)


@pytest.mark.parametrize("gated", [False, True])
def test_the_helper_runs_a_whole_conv_posted_beside_the_callers_jobs(pair, gated):
    """A CONV_WHOLE job (a fire module's first expand) in the second record: the serving
    helper takes it while the first record is free for the caller's jobs, and gives the
    bits of the conv run here; the record is idle again once settled."""
    rng = np.random.default_rng(1)
    a = dict(out_channels=24, kernel_size=(1, 1), stride=(1, 1), padding=(0,) * 4, dilation=(1, 1), groups=1)
    w = conv_weights(rng, dict(c=16, attrs=a))
    kernel, _ = make_kernel("Conv2d", a, w, [(16, 20, 20)])
    live = mask(rng, 1, 16, "random")
    x = live_act(rng.normal(size=(1, 16, 20, 20)), live)
    gate_plan, gate_params = np.zeros(0, np.int64), np.zeros(0, np.float32)
    if gated:  # a gate over the input's 16 channels deciding 24 kernels, one group each
        gate_plan = np.array([0, 0, 24], np.int64)
        gate_params = rng.normal(size=16 * 24 + 24).astype(np.float32)
    results = []
    for on_helper in (True, False):
        active = np.ones((1, 24), np.bool_)
        out = np.zeros((1, 40, 20, 20), np.float32)  # the conv writes channels 8..32 of it
        args = (x.data, live, gate_plan, gate_params, 0.1, active, *kernel.gemm_args(x), out, out[:, 8:32],
                np.ones((1, 24), np.bool_))
        if on_helper:
            whole = pair.ctrl[handover.RECORD:]
            handover.post_conv_whole(whole, *args)
            deadline = time.monotonic() + 60
            while whole[handover.STATE] == handover.POSTED:
                assert time.monotonic() < deadline, "the helper never took the job"
            assert pair.probe(patience=10**9) == "helper"  # the first record serves on meanwhile
            assert handover.settle(whole) == 0 and whole[handover.STATE] == handover.IDLE
        else:
            conv_with_gate(*args)
        results.append((out.copy(), active.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert gated or results[0][1].all()
    assert not results[0][0][:, :8].any() and not results[0][0][:, 32:].any()


@pytest.mark.parametrize("op,attrs,size", [
    ("MaxPool2d", dict(kernel_size=(3, 3), stride=(2, 2)), 27),
    ("MaxPool2d", dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 0, 1, 0)), 13),
    ("GlobalAvgPool", {}, 13), ("GlobalMaxPool", {}, 9)])
@pytest.mark.parametrize("channels", [2, 37])
def test_a_pool_on_two_threads_gives_the_bits_it_gives_on_one(pair, op, attrs, size, channels):
    """A batch of one's 3 x 3 / 2 max pool or global pool as two halves of its channels on
    both threads (the helper's half taken back where it has not claimed it) gives what
    the pool gives on one thread, dead channels 0."""
    rng = np.random.default_rng(channels)
    kernel, _ = make_kernel(op, attrs, {}, [(channels, size, size)])
    live = mask(rng, 1, channels, "random")
    x = live_act(rng.normal(size=(1, channels, size, size)), live)
    outs = []
    for p in (pair, None):
        out = np.full((1, *kernel.out_shape) if op == "MaxPool2d" else (1, channels), np.nan, np.float32)
        calls = kernel._calls(x, out, p)
        assert (p is not None) == any(getattr(f, "__self__", None) is pair for f, _ in calls)
        for f, args in calls:
            f(*args)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not outs[0][0, ~live[0]].any()


def test_the_helper_thread_ends_with_its_pair():
    before = {t for t in threading.enumerate() if t.name == "pyprune-pair"}
    pair = serving(PairThread())
    pair.probe(patience=10**6)
    pair.end()
    helper = next(t for t in threading.enumerate() if t.name == "pyprune-pair" and t not in before)
    del pair
    gc.collect()
    helper.join(timeout=10)
    assert not helper.is_alive()


LOADS_SLOWLY = """
import sys, time
from pyprune import pair_thread

def slow_serve(ctrl):  # the helper's loop, taking a while to load as on an empty Numba cache
    time.sleep(1.5)
    open(sys.argv[1], "w").write("loaded")

pair_thread.handover.serve = slow_serve
pair = pair_thread.PairThread()
pair.begin()
pair.end()  # the first run's end: the helper starts loading its loop; the process exits at once
"""


def test_a_process_exits_only_once_its_helper_has_loaded_its_loop(tmp_path):
    """Else a short process would compile the loop in vain on every start (never reaching
    Numba's cache), with LLVM still at work as the interpreter shuts down."""
    import subprocess
    import sys
    marker = tmp_path / "loaded"
    subprocess.run([sys.executable, "-c", LOADS_SLOWLY, str(marker)], check=True, timeout=120)
    assert marker.read_text() == "loaded"


STOPPED_BEFORE_LOADING = """
from pyprune import pair_thread
pair = pair_thread.PairThread()
pair.ctrl[pair_thread.handover.STOP] = 1  # stopped (its session dropped) before it could load its loop
pair.begin()
pair.end()  # the first run's end: the helper wakes to load its loop, sees the stop and ends
"""


def test_a_helper_that_stops_before_loading_does_not_hold_the_exit():
    import subprocess
    import sys
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", STOPPED_BEFORE_LOADING], check=True, timeout=120)
    assert time.monotonic() - start < 60  # its wait at exit would last pair_thread.LOAD_WAIT_S (300 s)


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
