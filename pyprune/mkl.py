"""Intel MKL's runtime library (the optional `mkl` extra), found once where it is installed:
kernels/cpu/blas.py calls its sgemm, single-threaded, from inside Numba kernels on Intel CPUs.

Why: alone, on SqueezeNet's conv GEMMs on an Intel host, MKL's sgemm took 0.65-0.83x the
time of OpenBLAS's, and 0.30-0.69x on the few-kernel GEMMs of gated layers, where OpenBLAS
packs the whole right operand for a handful of rows (twelfth session). On an AMD EPYC
(Zen 3) the same shapes took 1.02-1.96x OpenBLAS's time, 1.35x in all (thirteenth
session, bench/README.md).

The library is located through the `mkl` package's own file list, so it is found in a
virtual environment as well as in the interpreter's prefix, with no loader path to set.
"""

import ctypes
import functools
import importlib.metadata
import os
import platform

# MKL_Set_Threading_Layer(SEQUENTIAL): MKL runs on the calling thread only, as every BLAS
# does under pyprune (threads.py). MKL's own threads would also split the sums over k of
# some GEMMs and change their bits, and with libiomp5's threads ('intel'), a 2-thread batch
# of one took 1.24-1.58x OpenBLAS's time on the gated nets (twelfth session).
_SEQUENTIAL = 1

# MKL_CBWR_Set(AUTO): conditional numerical reproducibility on the code branch MKL picks for
# this CPU. At one thread (always, here) it gives bitwise the same result whatever the
# operands' alignment, so a sample gives the same bits alone and inside a batch (DESIGN.md).
# MKL's own MKL_CBWR, where the user set it, is left as it is.
_CBWR_AUTO = 2


def library_path():
    """Path of libmkl_rt from the installed `mkl` distribution, or None."""
    try:
        files = importlib.metadata.files("mkl") or ()
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        name = f.name
        if name.startswith(("libmkl_rt.so", "mkl_rt.")) and not name.endswith((".a", ".lib")):
            return str(f.locate())
    return None


@functools.cache
def library():
    """ctypes handle of MKL's runtime library, sequential and in CNR mode (both set before
    its first computation, as MKL requires), or None where the `mkl` package is not
    installed, its library does not load, or it refuses either setting (on this CPU, or
    because something else in the process already ran MKL)."""
    path = library_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    if lib.MKL_Set_Threading_Layer(ctypes.c_int(_SEQUENTIAL)) != _SEQUENTIAL:
        return None
    if "MKL_CBWR" not in os.environ and lib.MKL_CBWR_Set(ctypes.c_int(_CBWR_AUTO)) != 0:
        return None
    return lib


@functools.cache
def cpu_is_intel():
    """Whether this CPU is Intel's, where MKL's sgemm beats OpenBLAS's; on others MKL runs
    slower code paths (kernels/cpu/blas.py)."""
    try:
        with open("/proc/cpuinfo") as info:
            cpuinfo = info.read(8192)
    except OSError:
        cpuinfo = ""
    return vendor_is_intel(cpuinfo, platform.processor())


def vendor_is_intel(cpuinfo, processor):
    """From Linux's /proc/cpuinfo (its vendor_id), else from what the platform module names
    the processor (Windows: "Intel64 Family 6 ..., GenuineIntel")."""
    for line in cpuinfo.splitlines():
        if line.startswith("vendor_id"):
            return line.split(":", 1)[1].strip() == "GenuineIntel"
    return "intel" in processor.lower()


def version():
    """The installed `mkl` distribution's version, or None."""
    try:
        return importlib.metadata.version("mkl")
    except importlib.metadata.PackageNotFoundError:
        return None


def sgemm_address():
    """Address of MKL's ILP64 cblas_sgemm (64-bit sizes, as blas.py passes them), or None."""
    lib = library()
    fn = None if lib is None else getattr(lib, "cblas_sgemm_64", None)
    return None if fn is None else ctypes.cast(fn, ctypes.c_void_p).value
