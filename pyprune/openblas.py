"""The OpenBLAS that NumPy loaded, found once: threads.py sets its thread count and
kernels/cpu/blas.py calls its sgemm from inside Numba kernels."""

import ctypes
import functools
import glob
import os


def libraries():
    """ctypes handles of every OpenBLAS mapped into this process now (NumPy's, and the
    copies other libraries bring, such as torch's), in path order."""
    import numpy
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:  # not Linux: fall back to what NumPy ships beside itself
        libs = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
        paths = set(glob.glob(os.path.join(libs, "*openblas*")))
    return tuple(lib for lib in map(_load, sorted(paths)) if lib is not None)


@functools.cache
def _load(path):
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None


def functions(names):
    """For each OpenBLAS mapped now, the first of `names` it exports, as (name, ctypes function)."""
    for lib in libraries():
        for name in names:
            fn = getattr(lib, name, None)
            if fn is not None:
                yield name, fn
                break


def first_symbol(names):
    """(name, address) of the first of `names` that an OpenBLAS exports, else None."""
    for name, fn in functions(names):
        return name, ctypes.cast(fn, ctypes.c_void_p).value
    return None
