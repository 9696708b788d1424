"""sgemm callable from inside Numba kernels, so that a whole convolution (gathers, im2col,
GEMM, epilogue) runs as one compiled call instead of a Python sequence of calls.

Two libraries can serve it, both single-threaded (threads.py says why): NumPy's own
OpenBLAS (its 64-bit-integer cblas_sgemm) and, where the `mkl` extra is installed, Intel
MKL's (mkl.py). Compiled code calls whichever address the pointer variable SYMBOL holds,
and LLVM knows that variable by a fixed name, so cached kernels link in every later process
and `use()` switches library without recompiling.

PYPRUNE_BLAS=openblas or mkl picks the library; auto (the default) takes MKL on Intel CPUs
only. There its sgemm took 0.85-0.92x OpenBLAS's time for whole SqueezeNet nets (twelfth
session); on an AMD EPYC (Zen 3) it took 1.03-1.18x (thirteenth session): MKL keeps its
fast code paths for Intel's processors (bench/README.md).

AVAILABLE is False where neither library has an ILP64 sgemm (NumPy with another BLAS, or
a 32-bit-integer build); the conv kernels then take their Python path, which calls
np.matmul.
"""

import ctypes
import os

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ... import mkl, openblas
from ...errors import PyPruneError

SYMBOL = "pyprune_sgemm_target"  # a pointer variable: the address of the sgemm in use
_CANDIDATES = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")  # ILP64 builds only: ints are int64
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
CHOICES = ("auto", "mkl", "openblas")
_target = ctypes.c_void_p(None)


def _choice():
    wanted = os.environ.get("PYPRUNE_BLAS", "auto").strip().lower() or "auto"
    if wanted not in CHOICES:
        raise PyPruneError(f"PYPRUNE_BLAS must be one of {', '.join(CHOICES)}, got {wanted!r}")
    return wanted


def _takes_mkl(found):
    """The rule, given the other libraries `found`: MKL on Intel CPUs, or where no OpenBLAS is."""
    return mkl.cpu_is_intel() or "openblas" not in found


def _addresses():
    """Backend name -> address of its ILP64 sgemm, for the libraries PYPRUNE_BLAS allows.
    auto loads MKL only where preferred() could pick it (an Intel CPU, or no OpenBLAS):
    loading it and setting its modes costs start-up time for nothing elsewhere."""
    wanted = _choice()
    found = {}
    if wanted in ("auto", "openblas"):
        symbol = openblas.first_symbol(_CANDIDATES)
        if symbol is not None:
            found["openblas"] = symbol[1]
    if wanted == "mkl" or (wanted == "auto" and _takes_mkl(found)):
        address = mkl.sgemm_address()
        if address is not None:
            found["mkl"] = address
        elif wanted == "mkl":
            raise PyPruneError("PYPRUNE_BLAS=mkl, but Intel MKL's runtime was not found: "
                               "install it with pip install 'pyprune[mkl]'")
    return found


ADDRESSES = _addresses()
AVAILABLE = bool(ADDRESSES)
llvm.add_symbol(SYMBOL, ctypes.addressof(_target))
BACKEND = None  # the library sgemm calls now: 'mkl', 'openblas' or None


def use(backend):
    """Make sgemm call `backend`'s library from now on (one of ADDRESSES)."""
    global BACKEND
    _target.value = ADDRESSES[backend]
    BACKEND = backend


def preferred():
    """The library pyprune's GEMMs run on: MKL where PYPRUNE_BLAS allows it and _takes_mkl,
    else OpenBLAS; None where neither is there."""
    if "mkl" in ADDRESSES and _takes_mkl(ADDRESSES):
        return "mkl"
    return "openblas" if "openblas" in ADDRESSES else None


if AVAILABLE:
    use(preferred())


def describe(backend="now"):
    """The BLAS that runs the CPU convs' GEMMs now (or `backend`'s), in words, for the demo
    and the benchmarks."""
    backend = BACKEND if backend == "now" else backend
    if backend == "mkl":
        return f"Intel MKL {mkl.version()}"
    return "NumPy's OpenBLAS" if backend == "openblas" else "np.matmul (no BLAS callable from Numba)"


@intrinsic
def sgemm(typingctx, trans_a, m, n, k, a, lda, b, ldb, c, ldc):
    """c[:m, :n] = op(a) @ b[:k, :n] for row-major float32 arrays with row strides lda, ldb
    and ldc (in elements), op(a) = a[:m, :k], or a[:k, :m].T when trans_a. The caller
    guarantees the extents; only call it where AVAILABLE is True."""
    for arr in (a, b, c):
        if not isinstance(arr, types.Array) or arr.dtype != types.float32:
            return None
    sig = types.void(trans_a, m, n, k, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        vp = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, vp, i64,
                                               vp, i64, f32, vp, i64])
        fn = builder.bitcast(builder.load(_target_variable(builder.module, vp)), fnty.as_pointer())
        ta, m_, n_, k_, a_, lda_, b_, ldb_, c_, ldc_ = zip(args, signature.args)

        def as_int(arg):
            return context.cast(builder, *arg, types.int64)

        def data(arg):
            return builder.bitcast(context.make_array(arg[1])(context, builder, arg[0]).data, vp)

        trans = builder.select(context.cast(builder, *ta, types.boolean), i32(_TRANS), i32(_NO_TRANS))
        builder.call(fn, [i32(_ROW_MAJOR), trans, i32(_NO_TRANS), as_int(m_), as_int(n_), as_int(k_),
                          f32(1.0), data(a_), as_int(lda_), data(b_), as_int(ldb_),
                          f32(0.0), data(c_), as_int(ldc_)])
        return context.get_dummy_value()

    return sig, codegen


def _target_variable(module, ty):
    """The external pointer variable SYMBOL, declared once per module; LLVM resolves it
    to _target's address (llvm.add_symbol above) wherever the module is linked."""
    try:
        return module.get_global(SYMBOL)
    except KeyError:
        return ir.GlobalVariable(module, ty, SYMBOL)
