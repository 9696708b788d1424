"""Atomic reads, writes and compare-and-swaps on an int64 array's elements, as LLVM
instructions: how pyprune's two threads hand jobs over (handover.py) and share a conv's
pixel panels (tile_gemm.py) without a lock."""

from numba import types
from numba.extending import intrinsic

from .llvm_vectors import array_data


def _typed_int_array(arr):
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.layout == "C"


@intrinsic
def load_acquire(typingctx, ctrl, i):
    """ctrl[i], read atomically (acquire): what the other thread wrote before it stored
    this with release is visible after."""
    if not _typed_int_array(ctrl):
        return None

    def codegen(context, builder, signature, args):
        at = builder.gep(array_data(context, builder, signature.args[0], args[0]), [args[1]])
        return builder.load_atomic(at, "acquire", 8)

    return types.int64(ctrl, types.intp), codegen


@intrinsic
def store_release(typingctx, ctrl, i, value):
    """ctrl[i] = value, atomically (release): everything written before it is visible to
    the thread that reads it with acquire."""
    if not _typed_int_array(ctrl):
        return None

    def codegen(context, builder, signature, args):
        at = builder.gep(array_data(context, builder, signature.args[0], args[0]), [args[1]])
        builder.store_atomic(args[2], at, "release", 8)
        return context.get_dummy_value()

    return types.void(ctrl, types.intp, types.int64), codegen


@intrinsic
def swap_if(typingctx, ctrl, i, expected, new):
    """Atomically: if ctrl[i] == expected, set it to new and return True; else False."""
    if not _typed_int_array(ctrl):
        return None

    def codegen(context, builder, signature, args):
        at = builder.gep(array_data(context, builder, signature.args[0], args[0]), [args[1]])
        pair = builder.cmpxchg(at, args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return types.boolean(ctrl, types.intp, types.int64, types.int64), codegen
