"""LLVM IR pieces shared by the CPU kernels written as Numba intrinsics (tile_gemm.py,
conv_pool.py): vector types, splats, unaligned 16-float loads, stores with an optional
ReLU, an 8 x 8 transpose and a move within an array. Numba would not keep a
register tile or a transpose's shuffles from plain Python loops, so these kernels spell
the vector code out.

The register tiles compute on vectors of 16 floats (LANES): one AVX-512 register, and
where the CPU has only AVX2, LLVM splits each into two of 8 (the instructions of tiles
written on 8-float vectors, as they were until the thirty-second session). On an AMD EPYC
Zen 4 host (AVX-512), one thread, SqueezeNet's dense 3 x 3 expands ran at 51-54 GMAC/s on
16-float vectors against 41-43 on 8-float ones, and the whole dense net took 0.87x the
time (`python bench/profile_layers.py` at 11ff682 and after; bench/README.md). Each lane
sums the same products in the same order either way: the bits do not change."""

import functools

from llvmlite import ir
from numba import types
from numba.core import config as numba_config
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

F32, I64, I32, I1 = ir.FloatType(), ir.IntType(64), ir.IntType(32), ir.IntType(1)
VEC = ir.VectorType(F32, 8)  # 8 float32: one AVX register (transpose8)
LANES = 16
TILE_VEC = ir.VectorType(F32, LANES)  # a register tile's vector (see above)
TILE_INTS = ir.VectorType(I32, LANES)


@functools.cache
def compiles_avx512():
    """Whether Numba compiles for a CPU with AVX-512F (NUMBA_CPU_FEATURES where set, else
    the host's): a TILE_VEC is then one register. Asked once per process: LLVM's feature
    query takes about 0.2 ms, and every conv kernel asks at load; neither answer changes
    after Numba's import."""
    features = numba_config.CPU_FEATURES if numba_config.CPU_FEATURES is not None else get_host_cpu_features()
    return "+avx512f" in features.split(",")


def function(module, name, fnty):
    """The module's declaration of `name` (an LLVM intrinsic), made on first use."""
    try:
        return module.get_global(name)
    except KeyError:
        return ir.Function(module, fnty, name)


def splat(builder, value, vec_type):
    """value in every lane of vec_type."""
    undef = ir.Constant(vec_type, ir.Undefined)
    one = builder.insert_element(undef, value, I32(0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(I32, vec_type.count), [0] * vec_type.count))


def array_data(context, builder, ty, value):
    """The data pointer of a Numba array argument."""
    return context.make_array(ty)(context, builder, value).data


def load16(builder, at):
    """16 floats from `at` as one TILE_VEC (unaligned)."""
    return builder.load(builder.bitcast(at, TILE_VEC.as_pointer()), align=4)


def no_relu(builder, relu_):
    """store_act's lane mask: all ones (as LANES int32) where relu_ is false, else all zeros."""
    plain = builder.sext(builder.not_(relu_), I32)
    return splat(builder, plain, TILE_INTS)


def store_act(builder, value, at, plain):
    """Store a TILE_VEC at `at`: value where `plain` (no_relu's mask), else its ReLU (v if
    v > 0 else +0). The ReLU is an integer mask and-ed onto the value's bits: on AVX2, a
    select on an i1 mask or-ed with `plain` compiled to 8 instructions a vector (the mask
    packed to 16 bits and back), this to 3; the bits stored are the same."""
    positive = builder.sext(builder.fcmp_ordered(">", value, ir.Constant(TILE_VEC, [0.0] * LANES)), TILE_INTS)
    bits = builder.and_(builder.bitcast(value, TILE_INTS), builder.or_(positive, plain))
    builder.store(bits, builder.bitcast(at, TILE_INTS.as_pointer()), align=4)


def fmuladd(builder):
    """llvm.fmuladd on a TILE_VEC: FMAs where the CPU has them."""
    return function(builder.module, f"llvm.fmuladd.v{LANES}f32", ir.FunctionType(TILE_VEC, [TILE_VEC] * 3))


def typed(arrays, int_arrays=()):
    """Whether an intrinsic's arrays have the dtypes its code assumes: float32 for `arrays`,
    and for each (array, dtype) of int_arrays that dtype."""
    ok = all(isinstance(a, types.Array) and a.dtype == types.float32 for a in arrays)
    return ok and all(isinstance(a, types.Array) and a.dtype == dt for a, dt in int_arrays)


@intrinsic
def transpose8(typingctx, src, s0, sld, dst, d0, dld):
    """dst[d0 + c*dld + i] = src[s0 + i*sld + c] for i, c < 8: an 8 x 8 block transposed in
    registers (8 loads, 24 shuffles, 8 stores) where a scalar loop takes 64 strided loads.
    Flat float32 arrays; the caller guarantees every index is in bounds."""
    if not typed((src, dst)):
        return None
    sig = types.void(src, s0, sld, dst, d0, dld)

    def codegen(context, builder, signature, args):
        tys = signature.args
        src_p, dst_p = (array_data(context, builder, tys[i], args[i]) for i in (0, 3))
        s0_, sld_, d0_, dld_ = (context.cast(builder, args[i], tys[i], types.int64) for i in (1, 2, 4, 5))
        vptr = VEC.as_pointer()
        first = builder.gep(src_p, [s0_])
        rows = [builder.load(builder.bitcast(builder.gep(first, [builder.mul(sld_, I64(i))]), vptr), align=4)
                for i in range(8)]

        def mix(a, b, order):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(I32, 8), order))

        lo, hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]  # pairs within 128-bit halves
        t = [mix(rows[i & ~1], rows[i | 1], lo if i % 2 == 0 else hi) for i in range(8)]
        lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]  # pairs of pairs
        u = [mix(t[a], t[a + 2], order) for a in (0, 1, 4, 5) for order in (lo, hi)]
        lo, hi = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]  # 128-bit halves
        cols = [mix(u[i], u[i + 4], lo) for i in range(4)] + [mix(u[i], u[i + 4], hi) for i in range(4)]
        out = builder.gep(dst_p, [d0_])
        for c in range(8):
            builder.store(cols[c], builder.bitcast(builder.gep(out, [builder.mul(dld_, I64(c))]), vptr), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def move_floats(typingctx, arr, dst, src, n):
    """arr[dst:dst + n] = arr[src:src + n] (flat float32, the ranges may overlap) as one
    llvm.memmove: a Numba loop copying within one array stays scalar, as it cannot rule
    out the overlap (3 GB/s for a 28 KB row in L2, 30 between two arrays). The caller
    guarantees both ranges are in bounds."""
    if not typed((arr,)):
        return None
    sig = types.void(arr, dst, src, n)

    def codegen(context, builder, signature, args):
        tys = signature.args
        base = array_data(context, builder, tys[0], args[0])
        d, s, count = (context.cast(builder, args[i], tys[i], types.int64) for i in (1, 2, 3))
        i8p = ir.IntType(8).as_pointer()
        fn = function(builder.module, "llvm.memmove.p0i8.p0i8.i64",
                      ir.FunctionType(ir.VoidType(), [i8p, i8p, I64, I1]))
        builder.call(fn, [builder.bitcast(builder.gep(base, [d]), i8p), builder.bitcast(builder.gep(base, [s]), i8p),
                          builder.mul(count, I64(4)), I1(0)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def prefetch_floats(typingctx, arr, first, count):
    """A prefetch, for reading, of the cache lines of arr[first:first + count] (flat float32):
    one llvm.prefetch every 16 floats from arr[first], and one at the last float, whose line
    those may miss where arr[first] does not start a line. A prefetch never faults; the
    caller keeps the range inside the array anyway."""
    if not typed((arr,)):
        return None
    sig = types.void(arr, first, count)

    def codegen(context, builder, signature, args):
        tys = signature.args
        base = array_data(context, builder, tys[0], args[0])
        start, n = (context.cast(builder, args[i], tys[i], types.int64) for i in (1, 2))
        i8p = ir.IntType(8).as_pointer()
        fn = function(builder.module, "llvm.prefetch.p0i8", ir.FunctionType(ir.VoidType(), [i8p, I32, I32, I32]))
        entry = builder.block
        loop = builder.append_basic_block("prefetch")
        done = builder.append_basic_block("prefetched")
        builder.cbranch(builder.icmp_signed(">", n, I64(0)), loop, done)
        builder.position_at_end(loop)
        k = builder.phi(I64)
        k.add_incoming(I64(0), entry)
        last = builder.sub(n, I64(1))
        offset = builder.select(builder.icmp_signed("<", k, last), k, last)
        at = builder.bitcast(builder.gep(base, [builder.add(start, offset)]), i8p)
        builder.call(fn, [at, I32(0), I32(3), I32(1)])  # read, keep in all levels, data
        k_next = builder.add(k, I64(16))
        k.add_incoming(k_next, builder.block)
        builder.cbranch(builder.icmp_signed("<", k_next, builder.add(n, I64(15))), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen
