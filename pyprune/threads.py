"""One threading policy for the thread pools a session uses.

BLAS runs the GEMMs of the convolutions and linear layers; the Numba kernels (im2col,
gathers, pools, gates, element-wise) run between those GEMMs. `set_num_threads(n)` sets
how many cores pyprune uses:

- a batch of one runs on the calling thread, and, where one sample holds at least
  config.SPLIT_MIN_MACS dense MACs, its conv GEMMs of at least config.SPLIT_GEMM_MACS
  (and the stem's conv + pool) in two parts at once on the calling thread and a helper
  thread that spins in compiled code while the run lasts (pair_thread.py; calibration
  stays on the calling thread);
- a bigger batch is cut into up to n chunks of samples (each of at least
  config.SPLIT_MIN_MACS dense MACs) that run at the same time, one per thread, each
  through its own copy of the session's kernels. Each thread keeps its own samples'
  activations in its own core's cache.

BLAS always runs single-threaded, so the cores are never oversubscribed and a sample's
GEMMs run the same code alone and inside a batch: a batch gives bitwise what its images
give alone (DESIGN.md), whatever n is. OpenBLAS's threaded sgemm does not: on an AMD
EPYC (Zen 3, OpenBLAS's Haswell kernels) its results at 2 threads differed in the last
bits from its results at 1 thread on 7 of 9 SqueezeNet shapes, even at k = 16, and a gate
near its threshold can then decide differently. Its second thread did not pay either:
a batch of one at n = 2 took 1.01x (dense), 1.19x and 1.29x (gated 50% and 25%) the time of
one thread there, and on the Intel host of earlier sessions single-threaded MKL took 0.70-1.00x
OpenBLAS's two threads (bench/README.md, thirteenth and twelfth sessions).

So pyprune sets NumPy's OpenBLAS to one thread, process-wide, the first time it needs a
thread count (set_num_threads, or the first run), and leaves it there: changing it costs
about 1 ms, too much to do around every call. Your own NumPy code in the same process then
runs OpenBLAS on one thread too; threadpoolctl can raise it for that code, and pyprune
puts it back to one at its next call (lanes_for).

A batch of one's GEMM parts on the helper thread keep batches bitwise too: at n >= 2
every call cuts the same GEMMs in two parts (kernels/cpu/conv_gemm.parts_of), which run
one after the other where they do not run at once; at n = 1 none is cut, so the last bits
at n = 1 and at n >= 2 can differ.

Numba's pool is set to n for user code beside us; pyprune's kernels do not use it (the
helper thread is a plain Python thread: Numba's OpenMP layer is not fork-safe, and its
workqueue layer not thread-safe).
"""

import ctypes
import functools
import os

from . import openblas

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")

_chosen = None  # n from set_num_threads, or BLAS's count when pyprune first needed one


def _call(names, *args):
    return [fn(*args) for _, fn in openblas.functions(names)]


@functools.cache
def _first_getter():
    """The thread-count getter of the first OpenBLAS found (NumPy's), or None; found once,
    since finding it reads /proc/self/maps."""
    return next((fn for _, fn in openblas.functions(_GETTERS)), None)


def set_num_threads(n=None):
    """Use n threads (default: every core): the number of sample chunks a batch runs as at
    once. BLAS stays at one thread (above). Returns the number set."""
    import numba
    global _chosen
    n = int(os.cpu_count() or 1) if n is None else int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}")
    _single_threaded_blas()
    _chosen = n
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return n


def get_num_threads():
    """The threads pyprune uses: the last set_num_threads(n); until that is called, the
    count BLAS ran with when pyprune first asked (the first OpenBLAS found, else 1)."""
    global _chosen
    if _chosen is None:
        _chosen = max(1, blas_num_threads() or 1)
        _single_threaded_blas()
    return _chosen


def blas_num_threads():
    """The count BLAS (the first OpenBLAS found) runs with now, or None."""
    getter = _first_getter()
    return None if getter is None else getter()


def lanes_for(batch, min_per_lane, can_split):
    """How many chunks of at least `min_per_lane` samples a call on `batch` samples runs
    as at once (1: the whole batch on the calling thread). Puts BLAS back to one thread
    where something raised it since the last call (a getter call, well under 1 us)."""
    n = get_num_threads()
    keep_blas_single_threaded()
    return max(1, min(n, batch // min_per_lane)) if can_split else 1


def keep_blas_single_threaded():
    """Put BLAS back to one thread where something raised it since the last call."""
    if blas_num_threads() not in (1, None):
        _single_threaded_blas()


def _single_threaded_blas():
    _call(_SETTERS, ctypes.c_int(1))
