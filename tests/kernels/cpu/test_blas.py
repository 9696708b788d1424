"""sgemm called from Numba (kernels/cpu/blas.py) against NumPy, the check that gemm_conv
writes only into a channel slice of its buffer, and the choice of BLAS (PYPRUNE_BLAS)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from pyprune import mkl, openblas
from pyprune.errors import PyPruneError
from pyprune.kernels.cpu import blas
from pyprune.kernels.cpu.conv_gemm import conv_plan, gemm_conv

pytestmark = pytest.mark.skipif(not blas.AVAILABLE, reason="NumPy's BLAS cannot be called from Numba here")


@njit(cache=False)
def call_sgemm(trans_a, a, b, c, first_col):
    """c[:, first_col:first_col + n] = op(a) @ b, c wider than the product (ldc > n)."""
    k, n = b.shape
    m = a.shape[1] if trans_a else a.shape[0]
    blas.sgemm(trans_a, m, n, k, a, a.shape[1], b, n, c[:, first_col:], c.shape[1])


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 70), k=st.integers(1, 50), trans_a=st.booleans(),
       pad=st.integers(0, 5), seed=st.integers(0, 2**31))
def test_sgemm_matches_numpy(m, n, k, trans_a, pad, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    c = np.full((m, n + 2 * pad), 7.0, np.float32)
    call_sgemm(trans_a, a, b, c, pad)
    want = (a.T if trans_a else a).astype(np.float64) @ b
    np.testing.assert_allclose(c[:, pad:pad + n], want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    assert (c[:, :pad] == 7.0).all() and (c[:, pad + n:] == 7.0).all(), "wrote outside its columns"


def test_gemm_conv_rejects_an_output_outside_its_buffer():
    x = np.ones((1, 2, 3, 3), np.float32)
    w2 = np.ones((4, 2), np.float32)
    ones = lambda *s: np.ones(s, np.bool_)  # noqa: E731
    buffer, elsewhere = np.zeros((1, 8, 3, 3), np.float32), np.zeros((1, 4, 3, 3), np.float32)
    plan = conv_plan((1, 1), (1, 1, 0, 0, 1, 1), (3, 3), shifted=True, pointwise=True, gather_ratio=4, split_macs=4_000_000)
    args = (x, ones(1, 2), ones(1, 4), w2, w2.T.copy(), np.empty(0, np.float32), np.zeros(4, np.float32), plan,
            np.empty(6, np.int64),
            np.empty((2, 9), np.float32), np.empty(8, np.float32), np.empty(36, np.float32))
    written = np.ones((1, 4), np.bool_)
    gemm_conv(*args, buffer, buffer[:, 4:], written)
    assert (buffer[:, 4:] == 2.0).all() and (buffer[:, :4] == 0.0).all()
    for out in (elsewhere, buffer[:, 6:]):
        with pytest.raises(ValueError, match="channel slice"):
            gemm_conv(*args, buffer, out, written)


# Which library sgemm calls: PYPRUNE_BLAS limits the choice for the whole process, so each
# setting runs in a child process of its own: a small gated net against the float64
# reference, at one thread and at two (the same library at both).
_CHILD = """
import json, sys, numpy as np, pyprune
from pyprune import models
from pyprune.kernels.cpu import blas
from pyprune.reference import run_reference
model = models.tiny_net(gated=True, seed=3)
x = np.random.default_rng(0).normal(size=(3, 3, 16, 16)).astype(np.float32)
want = run_reference(model, {"input": x})[0][model.outputs[0]]
out = []
for threads in (1, 2):
    pyprune.set_num_threads(threads)
    y = pyprune.Session(model).run(x)
    out.append([blas.BACKEND, float(np.abs(y - want).max()), float(np.abs(want).max())])
print(json.dumps(out))
"""


def _child(env_value, code=_CHILD):
    env = {k: v for k, v in os.environ.items() if k != "PYPRUNE_BLAS"}
    if env_value is not None:
        env["PYPRUNE_BLAS"] = env_value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("choice", ["auto", "openblas", "mkl"])
def test_each_blas_choice_runs_a_gated_net_like_the_reference(choice):
    if choice != "openblas" and mkl.library_path() is None:
        pytest.skip("the mkl extra is not installed")
    done = _child(choice)
    assert done.returncode == 0, done.stderr
    (one, err1, scale), (two, err2, _) = json.loads(done.stdout.splitlines()[-1])
    auto = "mkl" if mkl.cpu_is_intel() else "openblas"
    assert one == two == {"auto": auto, "openblas": "openblas", "mkl": "mkl"}[choice]
    assert max(err1, err2) <= 1e-4 * max(1.0, scale)


@pytest.mark.parametrize("intel", [True, False])
def test_mkl_is_preferred_on_intel_cpus_only(monkeypatch, intel):
    monkeypatch.setattr(mkl, "cpu_is_intel", lambda: intel)
    for found, want in (({"openblas": 1, "mkl": 2}, "mkl" if intel else "openblas"), ({"openblas": 1}, "openblas"),
                        ({"mkl": 2}, "mkl"), ({}, None)):
        monkeypatch.setattr(blas, "ADDRESSES", found)
        assert blas.preferred() == want, found


def test_auto_loads_mkl_only_where_it_could_be_picked(monkeypatch):
    if openblas.first_symbol(blas._CANDIDATES) is None:
        pytest.skip("no OpenBLAS here: auto then loads MKL on any CPU")
    monkeypatch.delenv("PYPRUNE_BLAS", raising=False)
    loaded = []
    monkeypatch.setattr(mkl, "sgemm_address", lambda: loaded.append(True) or 12345)
    monkeypatch.setattr(mkl, "cpu_is_intel", lambda: False)
    assert "mkl" not in blas._addresses() and not loaded
    monkeypatch.setattr(mkl, "cpu_is_intel", lambda: True)
    assert blas._addresses()["mkl"] == 12345 and loaded


@pytest.mark.parametrize("cpuinfo, processor, intel", [
    ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n", "", True),
    ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n", "x86_64", False),
    ("", "Intel64 Family 6 Model 85 Stepping 7, GenuineIntel", True),
    ("", "AMD64 Family 25 Model 1 Stepping 1, AuthenticAMD", False),
    ("processor\t: 0\nBogoMIPS\t: 50.00\n", "aarch64", False)])
def test_the_cpu_vendor_is_read(cpuinfo, processor, intel):
    assert mkl.vendor_is_intel(cpuinfo, processor) is intel


def test_an_unknown_blas_choice_is_a_clear_error():
    done = _child("atlas", "import pyprune.kernels.cpu.blas")
    assert done.returncode != 0
    assert "PYPRUNE_BLAS must be one of auto, mkl, openblas, got 'atlas'" in done.stderr


def test_asking_for_mkl_where_it_is_missing_names_the_extra(monkeypatch):
    monkeypatch.setenv("PYPRUNE_BLAS", "mkl")
    monkeypatch.setattr(mkl, "sgemm_address", lambda: None)
    with pytest.raises(PyPruneError, match=r"pip install 'pyprune\[mkl\]'"):
        blas._addresses()


@pytest.mark.skipif(len(blas.ADDRESSES) < 2, reason="only one BLAS here")
def test_switching_library_needs_no_recompile():
    """Compiled code calls through the pointer that use() sets: each library in turn, same
    compiled function, each against NumPy."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=(7, 9)).astype(np.float32)
    before = blas.BACKEND
    try:
        for backend in ("mkl", "openblas", "mkl"):
            blas.use(backend)
            c = np.zeros((5, 9), np.float32)
            call_sgemm(False, a, b, c, 0)
            np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    finally:
        blas.use(before)


@pytest.mark.parametrize("backend", ["mkl", "openblas"])
@pytest.mark.parametrize("m, k, n", [(16, 1152, 49), (7, 64, 3025), (33, 72, 729)])
def test_each_blas_gives_the_same_bits_at_every_alignment(backend, m, k, n):
    """A sample's operands sit at other offsets alone than inside a batch, so the bits must
    not depend on where they lie (MKL runs in CNR mode for that, mkl.py)."""
    if backend not in blas.ADDRESSES:
        pytest.skip(f"{backend} is not loaded here (not installed, ruled out by PYPRUNE_BLAS, or MKL off Intel CPUs)")
    rng = np.random.default_rng(m + k + n)
    a0, b0 = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32)
    before = blas.BACKEND
    results = []
    try:
        blas.use(backend)
        for offset in range(0, 16, 3):
            a = np.empty(m * k + 16, np.float32)[offset:offset + m * k].reshape(m, k)
            b = np.empty(k * n + 16, np.float32)[15 - offset:15 - offset + k * n].reshape(k, n)
            a[:], b[:] = a0, b0
            c = np.empty(m * n + 16, np.float32)[offset:offset + m * n].reshape(m, n)
            call_sgemm(False, a, b, c, 0)
            results.append(c.copy())
    finally:
        blas.use(before)
    assert all(np.array_equal(results[0], r) for r in results[1:])
