"""One threading policy for the thread pools a session uses.

BLAS runs the GEMMs of the convolutions and linear layers; the
Numba kernels (im2col, gathers, pools, gates, element-wise) run between those GEMMs.
`set_num_threads(n)` sets how many cores pyprune uses, and a call uses them in one of two
ways, never both at once, so the cores are never oversubscribed:

- a batch of one (and any call that gathers per-layer stats or calibrates) runs on the
  calling thread, with BLAS at n threads for its GEMMs;
- a bigger batch is cut into up to n chunks of samples (each of at least
  config.SPLIT_MIN_MACS dense MACs) that run at the same time, one per thread, each
  through its own copy of the session's kernels, with BLAS at one thread. Each thread
  keeps its own samples' activations in its own core's cache: a GEMM split over two cores
  reads operands that the other core just wrote, which cost this 2-core VM the second
  core's gain on the gated layers (bench/README.md, tenth session).

BLAS is NumPy's OpenBLAS; where the `mkl` extra is installed and n is 1, Intel MKL's
sgemm, single-threaded, runs pyprune's GEMMs instead (kernels/cpu/blas.py: faster on one
core; with n >= 2 OpenBLAS runs a batch of one and a batch's chunks alike, so both give the
same bits). OpenBLAS's thread count is process-wide and changing it costs about 1 ms, so it
changes only when a call needs the other count than the last one did (`lanes_for`).
Numba's pool is set to n for user code beside us; pyprune's kernels do not use it.
"""

import ctypes
import os

from . import openblas

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")

_chosen = None  # n from set_num_threads, or BLAS's count when pyprune first needed one
_blas_held = None  # the count pyprune last gave BLAS; None: it has not changed it


def _call(names, *args):
    return [fn(*args) for _, fn in openblas.functions(names)]


def _use_gemm_library(n):
    """Point pyprune's sgemm at the library for n threads (kernels/cpu/blas.py)."""
    from .kernels.cpu import blas
    backend = blas.backend_for(n)
    if backend is not None and backend != blas.BACKEND:
        blas.use(backend)


def set_num_threads(n=None):
    """Use n threads (default: every core): BLAS's count for a batch of one, and the
    number of sample chunks run at once for a bigger batch. Returns the number set."""
    import numba
    global _chosen, _blas_held
    n = int(os.cpu_count() or 1) if n is None else int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}")
    _call(_SETTERS, ctypes.c_int(n))
    _use_gemm_library(n)
    _chosen, _blas_held = n, n
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return n


def get_num_threads():
    """The threads pyprune uses: the last set_num_threads(n); until that is called, the
    count BLAS ran with when pyprune first asked (the first OpenBLAS found, else 1)."""
    global _chosen
    if _chosen is None:
        _chosen = max(1, blas_num_threads() or 1)
        _use_gemm_library(_chosen)
    return _chosen


def blas_num_threads():
    """The count BLAS (the first OpenBLAS found) runs with now, or None."""
    found = _call(_GETTERS)
    return found[0] if found else None


def lanes_for(batch, min_per_lane, can_split):
    """How many chunks of at least `min_per_lane` samples a call on `batch` samples runs
    as at once (1: the whole batch on the calling thread), with BLAS's thread count set for
    that: one thread per chunk where there are several, else get_num_threads(). BLAS is
    changed only where the last call left it at the other count (about 1 ms a change)."""
    n = get_num_threads()
    lanes = max(1, min(n, batch // min_per_lane)) if can_split else 1
    if lanes > 1:
        _hold_blas(1)
    elif _blas_held is not None:
        _hold_blas(n)
    return lanes


def _hold_blas(count):
    global _blas_held
    if _blas_held != count:
        _call(_SETTERS, ctypes.c_int(count))
        _blas_held = count
