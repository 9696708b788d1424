"""Test-session set-up. Numba's CUDA simulator is switched on before anything imports numba,
so the CUDA kernels run (slowly, on the CPU) wherever numba-cuda is installed. Set
NUMBA_ENABLE_CUDASIM=0 yourself to run tests/kernels/cuda on a real GPU instead."""

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402


@pytest.fixture(params=["numba", "python"])
def conv_path(request, monkeypatch):
    """Run a test with CPU convs as one compiled call with sgemm from Numba, and again on
    the Python path (np.matmul between Numba steps) that serves where NumPy's BLAS cannot
    be called from Numba."""
    from pyprune.kernels.cpu.blas import AVAILABLE
    from pyprune.kernels.cpu.conv import ConvKernel
    if request.param == "numba" and not AVAILABLE:
        pytest.skip("NumPy's BLAS cannot be called from Numba here (kernels/cpu/blas.py)")
    monkeypatch.setattr(ConvKernel, "blas_in_numba", request.param == "numba")
    return request.param


@pytest.fixture(autouse=True)
def no_helper_compiling_into_the_next_test():
    """After a test, wait for any 2-thread session's helper that is still loading its loop
    (pair_thread: compiled in the background after the first run, about 23 s on an empty
    Numba cache). Numba's compiler enters warnings.catch_warnings, which swaps the warnings
    module's global state and is not thread-safe: tests/test_cli.py's warning test lost its
    records when such a compile overlapped it on a clean clone under load."""
    yield
    from pyprune import pair_thread
    pair_thread.wait_for_loading_helpers()
