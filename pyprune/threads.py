"""One threading policy for the two thread pools a session uses.

BLAS (OpenBLAS inside NumPy) runs the GEMMs of the convolutions and linear layers; the
Numba kernels (im2col, gathers, pools, gates, element-wise) run serially on the calling
thread between those GEMMs. The two never run at the same time, so giving BLAS all n
cores never oversubscribes them (running both pools at once doubled the time on two
cores, DESIGN.md section 6). `set_num_threads(n)` sets BLAS to n threads and Numba's pool
(used by nothing of ours today, but by user code beside us) to n as well.
"""

import ctypes
import os

from . import openblas

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")


def _call(names, *args):
    return [fn(*args) for _, fn in openblas.functions(names)]


def set_num_threads(n=None):
    """Use n threads (default: every core) for BLAS and Numba. Returns the number set."""
    import numba
    n = int(os.cpu_count() or 1) if n is None else int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}")
    _call(_SETTERS, ctypes.c_int(n))
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return n


def get_num_threads():
    """Threads BLAS uses now (the first OpenBLAS found), or None when none was found."""
    found = _call(_GETTERS)
    return found[0] if found else None
