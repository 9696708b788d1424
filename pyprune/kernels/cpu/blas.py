"""sgemm callable from inside Numba kernels, so that a whole convolution (gathers, im2col,
GEMM, epilogue) runs as one compiled call instead of a Python sequence of calls.

It is NumPy's own OpenBLAS (its 64-bit-integer cblas_sgemm), registered with LLVM under
a fixed name: cached kernels refer to that name, so they link in every later process.
AVAILABLE is False where NumPy ships no such OpenBLAS (another BLAS, or a 32-bit-integer
build); the conv kernels then take their Python path, which calls np.matmul.
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ... import openblas

SYMBOL = "pyprune_cblas_sgemm_ilp64"
_CANDIDATES = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")  # ILP64 builds only: ints are int64
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _register():
    found = openblas.first_symbol(_CANDIDATES)
    if found is None:
        return False
    llvm.add_symbol(SYMBOL, found[1])
    return True


AVAILABLE = _register()


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
        fn = cgutils.get_or_insert_function(builder.module, fnty, SYMBOL)
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
