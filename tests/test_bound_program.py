"""A session's bound program (bound_program.py) against the lean program it binds: the same
bits over streams of images whose masks change call to call, fresh output arrays, input
checks, the cases that must not bind, and a step that raises."""

from pathlib import Path

import numpy as np
import pytest

import pyprune
from pyprune import config, models
from pyprune.bound_program import copy_finite
from pyprune.errors import InputError
from pyprune.graph import Model, Node
from pyprune.reference import run_reference

from .helpers import assert_matches
from .test_session import images


WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def gated_squeezenet(seed=3):
    model = models.squeezenet1_1(gated=True, image_size=48, num_classes=6, seed=seed)
    return models.calibrate_gates(model, images(model, 8, seed=seed), 0.4)


def pair(model):
    """Two sessions of model, one that binds its calls and one that never does."""
    bound, lean = pyprune.Session(model), pyprune.Session(model)
    lean.bind_calls = False
    return bound, lean


@pytest.mark.parametrize("model_name", ["squeezenet gated", "squeezenet dense", "mnist gated"])
def test_bound_runs_give_the_lean_programs_bits_as_masks_change(model_name):
    if model_name == "mnist gated":
        model = pyprune.load_model(WEIGHTS / "mnist_gated.h5")
        x = np.random.default_rng(0).random((8, 1, 28, 28), np.float32)
    else:
        model = gated_squeezenet() if "gated" in model_name else models.squeezenet1_1(image_size=48, num_classes=6)
        x = images(model, 8, seed=11)
    bound, lean = pair(model)
    for r in range(3):  # both phases, twice, each call after a different image
        for i in range(len(x)):
            assert np.array_equal(bound.run(x[i:i + 1]), lean.run(x[i:i + 1])), (r, i)
    assert bound._bound[1, False][2] is not None  # it did run bound
    assert not lean._bound


def test_bound_runs_match_the_reference():
    model = gated_squeezenet()
    sess = pyprune.Session(model)
    for i, x in enumerate(images(model, 4, seed=2)):
        y = sess.run(x[None])
        assert_matches(y, run_reference(model, {"input": x[None]})[0]["logits"])
    assert sess._bound[1, False][2] is not None


def test_batches_of_several_sizes_and_unbound_calls_between():
    """Batch sizes take programs of their own; a call with a threshold or with stats runs
    the lean program on the kernels' own buffers, and the bound runs after it still match."""
    model = gated_squeezenet()
    bound, lean = pair(model)
    x = images(model, 8, seed=5)
    calls = [(x[:1], None), (x[1:4], None), (x[4:5], 0.3), (x[5:6], None), (x[2:5], None), (x[6:7], None),
             (x[:3], "stats"), (x[7:8], None), (x[3:6], None)]
    for xs, how in calls:
        if how == "stats":
            a, b = bound.run_with_stats(xs)[0], lean.run_with_stats(xs)[0]
        else:
            a, b = bound.run(xs, threshold=how), lean.run(xs, threshold=how)
        assert np.array_equal(a, b)
    assert set(bound._bound) == {(1, False), (3, False)}


def test_inactive_channels_stay_exact_zeros():
    """A bound concat buffer is the program's own across calls: the channels an image turns
    off must be zeroed where the image before wrote them (the double-buffered masks), as a
    graph output shows and a 1 x 1 conv that multiplies dead channels relies on."""
    base = gated_squeezenet()
    model = Model(base.inputs, ["logits", "fire3/concat", "fire5/concat"], base.nodes)
    bound, lean = pair(model)
    x = images(model, 8, seed=12)
    for r in range(2):
        for i in range(len(x)):
            a, b = bound.run(x[i:i + 1]), lean.run(x[i:i + 1])
            for name in model.outputs:
                assert np.array_equal(a[name], b[name]), (r, i, name)
    assert bound._bound[1, False][2] is not None


@pytest.mark.parametrize("gated", [True, False])
def test_a_batch_of_one_on_two_threads_binds_its_parts_with_the_helper(monkeypatch, gated):
    """With a pair thread (every GEMM cut, the stem in halves), the bound program runs the
    same parts as the lean program: the same bits, image after image."""
    monkeypatch.setattr(config, "SPLIT_GEMM_MACS", 1)
    monkeypatch.setattr(config, "SPLIT_MIN_MACS", 1)
    monkeypatch.setattr(config, "CONV_POOL_BAND_MIN_BYTES", 0)
    pyprune.set_num_threads(2)
    try:
        model = models.squeezenet1_1(gated=gated, seed=0, image_size=96)
        x = models.synthetic_images(6, seed=1, size=96)
        if gated:
            models.calibrate_gates(model, x, 0.5)
        bound, lean = pair(model)
        for r in range(2):
            for i in range(len(x)):
                assert np.array_equal(bound.run(x[i:i + 1]), lean.run(x[i:i + 1])), (r, i)
        program = bound._bound[1, True][2]
        assert program is not None and program.pair is bound._pair
        assert any(getattr(f, "__self__", None) is bound._pair for f, _ in program.phases[0][0])
    finally:
        pyprune.set_num_threads()


def test_outputs_are_the_callers_own():
    model = gated_squeezenet()
    sess = pyprune.Session(model)
    x = images(model, 2, seed=1)
    first = sess.run(x[:1])
    kept = first.copy()
    second = sess.run(x[1:])
    third = sess.run(x[:1])
    assert np.array_equal(first, kept) and first is not third and second is not third


def test_non_contiguous_input_and_bad_values():
    model = gated_squeezenet()
    sess, lean = pair(model)
    x = images(model, 2, seed=4)
    strided = np.asfortranarray(x[:1])
    assert not strided.flags.c_contiguous
    assert np.array_equal(sess.run(strided), lean.run(x[:1]))
    for bad in (np.nan, np.inf, -np.inf):
        y = x[:1].copy()
        y[0, 1, 5, 7] = bad
        with pytest.raises(InputError, match="'input' contains NaN or Inf"):
            sess.run(y)
        with pytest.raises(InputError, match="NaN or Inf"):
            sess.run(np.asfortranarray(y))
    assert np.array_equal(sess.run(x[1:]), lean.run(x[1:]))  # a rejected input leaves the program as it was


def test_copy_finite_flags_exactly_inf_and_nan():
    rng = np.random.default_rng(0)
    for size in (1, 7, 8, 33, 1000):
        src = rng.standard_normal(size).astype(np.float32)
        src[rng.integers(size)] = rng.choice([np.float32(3.4e38), np.float32(1e-45), np.float32(-0.0)])
        dst = np.empty_like(src)
        assert copy_finite(src, dst) and np.array_equal(src.view(np.uint32), dst.view(np.uint32))
        for bad in (np.nan, np.inf, -np.inf, np.float32(np.nan) * -1):
            src2 = src.copy()
            src2[rng.integers(size)] = bad
            assert not copy_finite(src2, dst)


def test_what_does_not_bind_runs_as_before():
    base = gated_squeezenet()
    # A Softmax has no bound form: the whole program runs unbound, with the same answer.
    model = Model(base.inputs, ["prob"], base.nodes + [Node("prob", "Softmax", ["logits"], ["prob"], {}, {})])
    sess = pyprune.Session(model)
    x = images(model, 2, seed=6)
    y = sess.run(x[:1])
    assert sess._bound[1, False][2] is None
    assert_matches(y, run_reference(model, {"input": x[:1]})[0]["prob"])
    # Batches above BIND_MAX_BATCH and sessions with bind_calls off never bind.
    big = pyprune.Session(base)
    big.run(images(base, config.BIND_MAX_BATCH + 1))
    assert not big._bound


def test_a_step_that_raises_leaves_the_next_call_a_new_program(monkeypatch):
    model = gated_squeezenet()
    sess, lean = pair(model)
    x = images(model, 3, seed=8)
    sess.run(x[:1])
    program = sess._bound[1, False][2]
    calls, outputs = program.phases[program.phase]
    f, args = calls[3]

    def fails(*a):
        raise RuntimeError("boom")
    program.phases[program.phase] = (calls[:3] + ((fails, args),) + calls[4:], outputs)
    with pytest.raises(RuntimeError, match="boom"):
        sess.run(x[1:2])
    assert program.broken
    lean.run(x[:1])
    assert np.array_equal(sess.run(x[2:3]), lean.run(x[2:3]))
    assert sess._bound[1, False][2] is not program


def test_unbind_binds_anew():
    model = gated_squeezenet()
    sess = pyprune.Session(model)
    x = images(model, 1)
    sess.run(x)
    first = sess._bound[1, False][2]
    sess.unbind()
    assert not sess._bound
    sess.run(x)
    assert sess._bound[1, False][2] is not first


def test_run_takes_the_short_way_only_when_nothing_changed(monkeypatch):
    """After a bound call, run() on an array of that call's shape goes straight to its
    program; another shape, a threshold, a dict, another thread count or unbind() take the
    full path."""
    model = gated_squeezenet()
    sess, lean = pair(model)
    x = images(model, 4, seed=9)
    full = []
    real = pyprune.Session._run

    def counted(self, *a, **kw):
        full.append(1)
        return real(self, *a, **kw)
    monkeypatch.setattr(pyprune.Session, "_run", counted)
    pyprune.set_num_threads(1)
    try:
        sess.run(x[:1])
        full.clear()
        for i in range(4):
            assert np.array_equal(sess.run(x[i:i + 1]), lean.run(x[i:i + 1]))
        assert len(full) == 4  # only lean's

        def takes_full_path(call):
            full.clear()
            call()
            return len(full) == 1
        assert takes_full_path(lambda: sess.run(x[:2]))
        assert takes_full_path(lambda: sess.run(x[:1], threshold=0.5))
        assert takes_full_path(lambda: sess.run({"input": x[:1]}))
        assert takes_full_path(lambda: sess.run(x[:1]))  # the short way keeps the last shape only (batch 2)
        assert not takes_full_path(lambda: sess.run(x[1:2]))
        pyprune.set_num_threads(2)
        assert takes_full_path(lambda: sess.run(x[:1]))
        pyprune.set_num_threads(1)
        assert takes_full_path(lambda: sess.run(x[:1]))
        assert not takes_full_path(lambda: sess.run(x[1:2]))
        sess.unbind()
        assert takes_full_path(lambda: sess.run(x[1:2]))
    finally:
        pyprune.set_num_threads()


@pytest.mark.skipif(__import__("pyprune").threads.blas_num_threads() is None,
                    reason="no OpenBLAS found to ask for its thread count")
def test_the_short_way_puts_blas_back_to_one_thread():
    from pyprune import threads
    model = gated_squeezenet()
    sess = pyprune.Session(model)
    x = images(model, 1, seed=2)
    sess.run(x)
    sess.run(x)
    threads._call(threads._SETTERS, 2)  # as the user's own threadpoolctl call would
    sess.run(x)
    assert threads.blas_num_threads() == 1


def test_a_session_keeps_the_programs_it_bound_last_for_two_batch_sizes():
    model = gated_squeezenet()
    sess, lean = pair(model)
    x = images(model, 6, seed=3)
    sess.run(x[:1])
    sess.run(x[1:4])
    sess._bound[3, False][2].broken = True  # as after a step raised: bound again, batch 1's kept
    assert np.array_equal(sess.run(x[2:5]), lean.run(x[2:5]))
    assert set(sess._bound) == {(1, False), (3, False)}
    sess.run(x[:2])  # a third size: batch 1's program, bound before batch 3's again, goes
    assert set(sess._bound) == {(3, False), (2, False)}


def test_bad_inputs_after_a_bound_call_get_the_same_errors():
    """The short way takes only a float32 array of the last call's shape: anything else
    goes through the full checks and gets their InputError."""
    model = gated_squeezenet()
    sess = pyprune.Session(model)
    x = images(model, 2, seed=7)
    sess.run(x[:1])
    sess.run(x[1:])  # now on the short way
    with pytest.raises(InputError, match="must be float32, got float64"):
        sess.run(x[:1].astype(np.float64))
    with pytest.raises(InputError, match="must have shape"):
        sess.run(x[:1, :, :-1])
    with pytest.raises(InputError, match="must be a numpy array"):
        sess.run(x[:1].tolist())
    with pytest.raises(InputError, match="a threshold must be a number in"):
        sess.run(x[:1], threshold=1.5)
    assert np.isfinite(sess.run(x[:1])).all()
