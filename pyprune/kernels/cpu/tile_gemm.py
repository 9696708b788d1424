"""3 x 3 convolutions of stride 1 and padding 1 (SqueezeNet's expand3x3, VGG-style layers)
without im2col, and 1 x 1 convolutions without a gather or a GEMM's packing: a register tile
of 6 output channels x 16 pixels in 6 vectors of 16 floats (llvm_vectors.LANES), written as
LLVM IR (Numba would not keep such a tile in registers), reads the input in place over weights packed once at load
(or per call, for the active kernels over the live channels), and applies the bias and
ReLU as it stores.

How the input is read in place: the live channels are first copied into `guarded` planes,
each with a row of zeros above and below. Output pixel p = oy*W + ox then reads tap (i, j)
of channel l at guarded[l][p + i*W + j - 1]: for 16 pixels in a row of memory, 16
consecutive floats, whatever output rows they span. Only the taps that fall off a row's
left or right end (j = 0 at ox = 0, j = 2 at ox = W - 1) read a neighbouring row's value,
and the tile masks those lanes to zero.

Why: im2col + sgemm writes K x H*W floats (1.7 MB for fire2/expand3x3, more than the AMD
host's 512 KB L2) for OpenBLAS to pack again, and a second pass then adds the bias. On
that host, one thread, SqueezeNet's 3 x 3 expands took 0.80-0.97x their im2col + sgemm
time in the network dense and 0.66-0.96x gated (their weights then packed per call), the
whole nets 0.94x dense and 0.96-0.97x gated (bench/README.md, fifteenth session).

The work runs one tile of kernels at a time over a block of pixel panels whose input rows
stay in L2 (tiled_conv says why). Each output value is the same sum, in the same order,
whatever unit of work it is computed in, so a conv gives the same bits alone, in a batch,
and in two parts on two threads.

`tile_lanes` is the same tile transposed, 16 output channels in the vector lanes x 6
pixels, for a conv with few input channels that writes channels-last rows: SqueezeNet's
stem, in conv_pool.py.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .atomics import load_acquire, swap_if
from .llvm_vectors import (I64, LANES, TILE_INTS, TILE_VEC, array_data, fmuladd, load16, no_relu, prefetch_floats,
                           splat, store_act, typed)

ROWS = 6        # output channels per tile (pack_tiles unrolls six)
COLS = LANES    # pixels per tile: one TILE_VEC
GUARD = 16      # zeros before the first guarded plane and after the last: the masked lanes' reads stay inside


def _by_row_count(builder, nrows_, emit):
    """emit(builder, r) for the tile's r = nrows rows (1 to ROWS; ROWS for any other value),
    each count its own copy of the tile's code.
    Why: a last tile of kernels with fewer than ROWS active ones repeated its last row,
    computing up to 5 rows of 6 for nothing: 31 active kernels of a gated expand3x3 took
    36 rows' work (bench/README.md, thirty-third session)."""
    done = builder.append_basic_block("tile_done")
    cases = [builder.append_basic_block(f"tile_rows{r}") for r in range(1, ROWS + 1)]
    switch = builder.switch(nrows_, cases[-1])
    for r, block in enumerate(cases, 1):
        if r < ROWS:
            switch.add_case(I64(r), block)
        builder.position_at_end(block)
        emit(builder, r)
        builder.branch(done)
    builder.position_at_end(done)


def _tile_rows(builder, rows_p, r0_, count, nrows_=None):
    """The output rows of a tile of `count` rows: rows[r0 + j] for j < count, or where nrows
    is given, rows[r0 + min(j, nrows - 1)] (a tile of fewer rows repeats its last one)."""
    top = None if nrows_ is None else builder.sub(nrows_, I64(1))
    return [builder.load(builder.gep(rows_p, [builder.add(r0_, I64(j) if top is None else builder.select(
        builder.icmp_signed("<", I64(j), top), I64(j), top))])) for j in range(count)]


def _accumulate(builder, count, body, rows=ROWS):
    """The tile's k loop: `rows` accumulators, zero at first, carried through `count`
    iterations of body(builder, k, sums) -> sums (no iteration where count <= 0); returns
    the totals."""
    zero = ir.Constant(TILE_VEC, [0.0] * COLS)
    entry = builder.block
    loop = builder.append_basic_block("tile_k")
    done = builder.append_basic_block("tile_store")
    builder.cbranch(builder.icmp_signed(">", count, I64(0)), loop, done)
    builder.position_at_end(loop)
    k = builder.phi(I64)
    k.add_incoming(I64(0), entry)
    acc = []
    for _ in range(rows):
        phi = builder.phi(TILE_VEC)
        phi.add_incoming(zero, entry)
        acc.append(phi)
    sums = body(builder, k, list(acc))
    k_next = builder.add(k, I64(1))
    k.add_incoming(k_next, builder.block)
    for phi, value in zip(acc, sums):
        phi.add_incoming(value, builder.block)
    loop_end = builder.block
    builder.cbranch(builder.icmp_signed("<", k_next, count), loop, done)
    builder.position_at_end(done)
    totals = []
    for value in sums:  # phis first: LLVM wants them at the top of the block
        total = builder.phi(TILE_VEC)
        total.add_incoming(zero, entry)
        total.add_incoming(value, loop_end)
        totals.append(total)
    return totals


def _fma_row(builder, fma, w_first, xv, sums):
    """sums[j] += w_first[j] * xv for the tile's rows j: one tap of one k."""
    for j in range(len(sums)):
        wv = splat(builder, builder.load(builder.gep(w_first, [I64(j)])), TILE_VEC)
        sums[j] = builder.call(fma, [wv, xv, sums[j]])
    return sums


def _store_tile(builder, totals, out_p, out_rows, ldo_, p0_, bias_p, relu_):
    """out[o_j*ldo + p0 + q] = act(totals[j, q] + bias[o_j]), act the ReLU where relu."""
    plain = no_relu(builder, relu_)
    for j in range(len(totals)):
        b = splat(builder, builder.load(builder.gep(bias_p, [out_rows[j]])), TILE_VEC)
        dst = builder.gep(out_p, [builder.add(builder.mul(out_rows[j], ldo_), p0_)])
        store_act(builder, builder.fadd(totals[j], b), dst, plain)


@intrinsic
def tile_3x3(typingctx, out, ldo, guarded, plane, width, nl, live, by_live, w_tiles, w0, rows, r0, nrows, p0, keep,
             bias, relu):
    """For j < nrows (1 to 6) and q < 16, with o = rows[r0 + j] and p = p0 + q:
        out[o*ldo + p] = act(bias[o] + sum over l < nl, taps (a, b) of
                             w_tiles[w0 + ((9c + 3a + b)*6 + j)] * x_l[p + a*width + b - 1])
    where c = live[l] if by_live else l (weights packed for the live channels, or for all
    of them and read at the live ones), x_l = guarded[GUARD + l*plane:] (guard_planes),
    and a tap that falls off its output row's left or right end counts 0: keep (int32)
    holds -1 for lane q at keep[q] where its left taps (b = 0) count and at keep[16 + q]
    where its right taps (b = 2) do, else 0 (tiled_conv fills it from edge_masks); summed
    in (l, a, b) order with fused multiply-adds (where the CPU has them); act is ReLU where
    relu. Flat arrays; the caller guarantees every index is in bounds."""
    if not typed((out, guarded, w_tiles, bias), ((live, types.int64), (rows, types.int64), (keep, types.int32))):
        return None
    sig = types.void(out, ldo, guarded, plane, width, nl, live, by_live, w_tiles, w0, rows, r0, nrows, p0, keep, bias,
                     relu)

    def codegen(context, builder, signature, args):
        tys = signature.args
        out_p, x_p, live_p, w_p, rows_p, keep_p, bias_p = (array_data(context, builder, tys[i], args[i])
                                                           for i in (0, 2, 6, 8, 10, 14, 15))
        ldo_, plane_, width_, nl_, w0_, r0_, nrows_, p0_ = (context.cast(builder, args[i], tys[i], types.int64)
                                                            for i in (1, 3, 4, 5, 9, 11, 12, 13))
        by_live_ = context.cast(builder, args[7], tys[7], types.boolean)
        relu_ = context.cast(builder, args[16], tys[16], types.boolean)
        fma = fmuladd(builder)
        keep_p = builder.bitcast(keep_p, TILE_INTS.as_pointer())
        keep_left, keep_right = (builder.load(builder.gep(keep_p, [I64(v)]), align=4) for v in range(2))
        # Tap (a, b) of pixel p0 sits at x + p0 + a*width + b - 1 (GUARD floats before plane 0).
        x_first = builder.gep(x_p, [builder.add(p0_, I64(GUARD - 1))])
        tap_offsets = [builder.add(builder.mul(width_, I64(a)), I64(b)) for a in range(3) for b in range(3)]
        w_first = builder.gep(w_p, [w0_])

        def channel(builder, l, sums):
            x_plane = builder.gep(x_first, [builder.mul(l, plane_)])
            c = builder.select(by_live_, builder.load(builder.gep(live_p, [l])), l)
            w_channel = builder.gep(w_first, [builder.mul(c, I64(9 * ROWS))])
            for tap, offset in enumerate(tap_offsets):
                xv = load16(builder, builder.gep(x_plane, [offset]))
                if tap % 3 != 1:  # a bitwise and: a select kept 4 masks in registers, which spilled the tile
                    keep = keep_left if tap % 3 == 0 else keep_right
                    xv = builder.bitcast(builder.and_(builder.bitcast(xv, TILE_INTS), keep), TILE_VEC)
                sums = _fma_row(builder, fma, builder.gep(w_channel, [I64(tap * ROWS)]), xv, sums)
            return sums

        def rows_of(builder, r):
            totals = _accumulate(builder, nl_, channel, r)
            _store_tile(builder, totals, out_p, _tile_rows(builder, rows_p, r0_, r), ldo_, p0_, bias_p, relu_)

        _by_row_count(builder, nrows_, rows_of)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def tile_1x1(typingctx, out, ldo, x, x0, plane, live, x_live, by_live, nl, w_tiles, w0, rows, r0, nrows, p0, bias,
             relu):
    """tile_3x3's tile for a 1 x 1 conv: for j < 6 and q < 16, with o = rows[r0 + min(j, nrows - 1)]:
        out[o*ldo + p0 + q] = act(bias[o] + sum over l < nl of w_tiles[w0 + c*6 + j] * x[x0 + i*plane + q])
    with i = live[l] if x_live else l (x's planes read where they lie, x0 = p0; or a panel
    of pack_panels' copy, plane = 16) and c = live[l] if by_live else l, summed in l order
    with fused multiply-adds (where the CPU has them); a tile of fewer than 6 rows computes
    its last one again for the others. One loop for every row count: copies per count, as
    tile_3x3 has, made the 6-row loop 1.07x slower in the same function (LLVM no longer
    unswitched x_live and by_live out of it), and in a function of their own gained
    nothing on SqueezeNet's 1 x 1 shapes, whose tiles wait on reading x, not on their
    FMAs (bench/README.md, thirty-third session). Flat arrays; the caller guarantees every
    index is in bounds."""
    if not typed((out, x, w_tiles, bias), ((live, types.int64), (rows, types.int64))):
        return None
    sig = types.void(out, ldo, x, x0, plane, live, x_live, by_live, nl, w_tiles, w0, rows, r0, nrows, p0, bias, relu)

    def codegen(context, builder, signature, args):
        tys = signature.args
        out_p, x_p, live_p, w_p, rows_p, bias_p = (array_data(context, builder, tys[i], args[i])
                                                   for i in (0, 2, 5, 9, 11, 15))
        ldo_, x0_, plane_, nl_, w0_, r0_, nrows_, p0_ = (context.cast(builder, args[i], tys[i], types.int64)
                                                         for i in (1, 3, 4, 8, 10, 12, 13, 14))
        x_live_, by_live_ = (context.cast(builder, args[i], tys[i], types.boolean) for i in (6, 7))
        relu_ = context.cast(builder, args[16], tys[16], types.boolean)
        fma = fmuladd(builder)
        x_first = builder.gep(x_p, [x0_])
        w_first = builder.gep(w_p, [w0_])

        def channel(builder, l, sums):
            channel = builder.load(builder.gep(live_p, [l]))
            plane_i = builder.select(x_live_, channel, l)
            xv = load16(builder, builder.gep(x_first, [builder.mul(plane_i, plane_)]))
            c = builder.select(by_live_, channel, l)
            return _fma_row(builder, fma, builder.gep(w_first, [builder.mul(c, I64(ROWS))]), xv, sums)

        out_rows = _tile_rows(builder, rows_p, r0_, ROWS, nrows_)
        totals = _accumulate(builder, nl_, channel)
        _store_tile(builder, totals, out_p, out_rows, ldo_, p0_, bias_p, relu_)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def tile_lanes(typingctx, out, ldp, out0, x, x0, taps, ntaps, xstep, w_lanes, w0, bias, b0, relu):
    """The transposed tile, output channels in the vector lanes: for i < 6 and c < 16,
        out[out0 + i*ldp + c] = act(bias[b0 + c] + sum over l < ntaps of
                                    w_lanes[w0 + l*16 + c] * x[x0 + taps[l] + i*xstep])
    summed in l order with fused multiply-adds (where the CPU has them); act is ReLU where
    relu. For a conv with few input channels (a stem's 3), whose output pixels sit at a
    stride in the input (xstep) and which writes channels-last rows (conv_pool.py): each
    tap is 6 scalar loads, one per pixel, broadcast. Flat arrays; the caller guarantees
    every index is in bounds."""
    if not typed((out, x, w_lanes, bias), ((taps, types.int64),)):
        return None
    sig = types.void(out, ldp, out0, x, x0, taps, ntaps, xstep, w_lanes, w0, bias, b0, relu)

    def codegen(context, builder, signature, args):
        tys = signature.args
        out_p, x_p, taps_p, w_p, bias_p = (array_data(context, builder, tys[i], args[i]) for i in (0, 3, 5, 8, 10))
        ldp_, out0_, x0_, ntaps_, xstep_, w0_, b0_ = (context.cast(builder, args[i], tys[i], types.int64)
                                                      for i in (1, 2, 4, 6, 7, 9, 11))
        relu_ = context.cast(builder, args[12], tys[12], types.boolean)
        fma = fmuladd(builder)
        x_first = builder.gep(x_p, [x0_])
        w_first = builder.gep(w_p, [w0_])
        steps = [builder.mul(xstep_, I64(i)) for i in range(ROWS)]

        def tap(builder, l, sums):
            wv = load16(builder, builder.gep(w_first, [builder.mul(l, I64(COLS))]))
            x_tap = builder.gep(x_first, [builder.load(builder.gep(taps_p, [l]))])
            for i in range(ROWS):
                xs = splat(builder, builder.load(builder.gep(x_tap, [steps[i]])), TILE_VEC)
                sums[i] = builder.call(fma, [wv, xs, sums[i]])
            return sums

        totals = _accumulate(builder, ntaps_, tap)
        plain = no_relu(builder, relu_)
        bv = load16(builder, builder.gep(bias_p, [b0_]))
        for i in range(ROWS):
            dst = builder.gep(out_p, [builder.add(out0_, builder.mul(ldp_, I64(i)))])
            store_act(builder, builder.fadd(totals[i], bv), dst, plain)
        return context.get_dummy_value()

    return sig, codegen


# A conv's work counter (one int64): units claimed from the front in its low half, from the back in its high half.
BACK = 1 << 32


@njit(cache=True, nogil=True, boundscheck=False)
def claim_unit(counter, units, from_back):
    """The next of `units` units of a conv's work (tiled_conv) that no thread has claimed,
    taken from the front or the back, or -1 when none is left; counter[0] is set to 0
    before the first claim. Two threads sharing a conv claim from opposite ends, so each
    writes one run of the output: claiming in turn from one end interleaved their pixel
    panels (when panels were the units), and the output lines two threads' panels share
    went back and forth between their cores."""
    while True:
        old = load_acquire(counter, 0)
        front, back = old & (BACK - 1), old >> 32
        if front + back >= units:
            return -1
        if from_back:
            if swap_if(counter, 0, old, old + BACK):
                return units - 1 - back
        elif swap_if(counter, 0, old, old + 1):
            return front


def tile_count(rows):
    """Tiles of ROWS channels that cover `rows` channels (the last may hold fewer)."""
    return -(-rows // ROWS)


@njit(cache=True, nogil=True)
def guarded_size(channels, h, w):
    """Floats of guard_planes' buffer for `channels` planes of h x w."""
    return 2 * GUARD + channels * (h + 2) * w


@njit(cache=True, nogil=True, boundscheck=False)
def pack_tiles(w2, kk, act_idx, live_idx, out):
    """The weights of kernels act_idx over channels live_idx as tile_3x3 reads them:
    out[(t*K + l*kk + q)*6 + j] = w2[act_idx[min(6t + j, na - 1)], live_idx[l]*kk + q] with
    K = len(live_idx) * kk, each tile's K x 6 block contiguous (a last tile of fewer kernels
    repeats its last one: tile_1x1 computes it again, tile_3x3 skips it). w2 is (C_out,
    C_in * kk). Written in order, six rows' values per tap: 0.66-0.92x the time of a loop
    over each row's taps, which stored at a stride of 6 (SqueezeNet's gated expand3x3
    shapes, warm; `.exp/pack_ab.py`). Prefetching the rows of the tiles 2, 6 or all tiles
    ahead did not speed it from memory (SqueezeNet's gated 50% shapes after a 32 MB sweep:
    381 us in all, 357-416 with them; bench/README.md, thirty-third session)."""
    na, nl = act_idx.shape[0], live_idx.shape[0]
    flat, width, ukk = w2.reshape(w2.size), np.uint64(w2.shape[1]), np.uint64(kk)
    rows = np.empty(ROWS, np.uint64)
    d = np.uint64(0)
    for t in range((na + ROWS - 1) // ROWS):
        for j in range(ROWS):
            rows[j] = np.uint64(act_idx[min(t * ROWS + j, na - 1)]) * width
        r0, r1, r2, r3, r4, r5 = rows[0], rows[1], rows[2], rows[3], rows[4], rows[5]
        for li in range(nl):
            s0 = np.uint64(live_idx[li]) * ukk
            for q in range(ukk):
                s = s0 + q
                out[d] = flat[r0 + s]
                out[d + np.uint64(1)] = flat[r1 + s]
                out[d + np.uint64(2)] = flat[r2 + s]
                out[d + np.uint64(3)] = flat[r3 + s]
                out[d + np.uint64(4)] = flat[r4 + s]
                out[d + np.uint64(5)] = flat[r5 + s]
                d += np.uint64(ROWS)


@njit(cache=True, nogil=True, boundscheck=False)
def guard_planes(x2, live_idx, h, w, out):
    """out = GUARD zeros, then for each live channel a row of w zeros, its h x w plane and
    another row of zeros, then GUARD zeros (guarded_size floats). x2 is x as (C, h*w)."""
    src, dst = x2.reshape(x2.size), out.reshape(out.size)
    hw, uw, guard = np.uint64(h * w), np.uint64(w), np.uint64(GUARD)
    plane = hw + np.uint64(2) * uw
    end = guard + np.uint64(live_idx.shape[0]) * plane
    for k in range(guard):
        dst[k] = 0.0
        dst[end + k] = 0.0
    for li in range(live_idx.shape[0]):
        top, s0 = guard + np.uint64(li) * plane, np.uint64(live_idx[li]) * hw
        for k in range(uw):
            dst[top + k] = 0.0
            dst[top + uw + hw + k] = 0.0
        for k in range(hw):
            dst[top + uw + k] = src[s0 + k]


@njit(cache=True, nogil=True, boundscheck=False)
def pack_panels(x2, live_idx, c0, c1, out):
    """The live channels of x2 (C, H*W) over pixels [c0, c1) as tiled_conv's 1 x 1 tiles
    read them with x_panels: out[(p*nl + l)*16 + q] = x2[live_idx[l], p0 + q], p0 the first
    pixel of panel p as tiled_conv places it (the last panel overlaps the one before where
    16 does not divide c1 - c0).
    Why: read where they lie, a tile's 16 pixels of each live plane are 64 bytes at an
    irregular stride, across two cache lines where the plane's width is not a multiple of
    16, which the prefetchers do not follow from L2; a panel's rows, one after another,
    they do. Over conv10's 1000 kernels (167 tiles read each panel) that pays for the copy:
    alone, with the copy, 0.89x the time in place at 384 or 256 of 512 live channels, 0.84x
    at 128, 0.97x at all 512; over 16-64 kernels, 1.0-1.6x (bench/README.md, thirty-third
    session)."""
    nl, panels = live_idx.shape[0], (c1 - c0 + COLS - 1) // COLS
    src, dst = x2.reshape(x2.size), out.reshape(out.size)
    hw = np.uint64(x2.shape[1])
    d = np.uint64(0)
    for p in range(panels):
        p0 = np.uint64(min(c0 + p * COLS, c1 - COLS))
        for li in range(nl):
            s0 = np.uint64(live_idx[li]) * hw + p0
            for q in range(np.uint64(COLS)):
                dst[d + q] = src[s0 + q]
            d += np.uint64(COLS)


@njit(cache=True, nogil=True)
def panels_size(channels, c0, c1):
    """Floats of pack_panels' copy of `channels` planes over pixels [c0, c1)."""
    return (c1 - c0 + COLS - 1) // COLS * COLS * channels


# A block of panels reads at most about this much of the input planes: half the Zen 3 host's L2, a quarter
# of the Zen 4's, where 512 KB measured no better (bench/README.md, thirty-second session).
BLOCK_BYTES = 256 * 1024
BLOCK_PANELS = 32  # and holds at most this many panels, so that two threads share even a few tiles' work evenly


@njit(cache=True, nogil=True)
def panel_blocks(nl, w, panels):
    """Panels per block of tiled_conv's work over nl input planes w pixels wide: the block's
    input rows (its panels' 16 pixels each, and for a 3 x 3 conv a row above and below;
    w = 0 for a 1 x 1) stay in L2 while every tile of kernels runs over them."""
    fit = (BLOCK_BYTES // (4 * max(nl, 1)) - 2 * w) // COLS
    return max(1, min(fit, BLOCK_PANELS, panels))


@njit(cache=True, nogil=True)
def work_units(nl, w, na, c0, c1):
    """tiled_conv's units of work for na active kernels over pixels [c0, c1) of planes w
    pixels wide (0 for a 1 x 1 conv): one tile of kernels over one block of panels each
    (the count a thread's claims run over)."""
    panels = (c1 - c0 + COLS - 1) // COLS
    per_block = panel_blocks(nl, w, panels)
    return (panels + per_block - 1) // per_block * ((na + ROWS - 1) // ROWS)


@njit(cache=True, nogil=True, boundscheck=False)
def edge_masks(w):
    """The tile's keep masks by the column ox where a panel starts: row ox holds, for lane q,
    -1 where pixel ox + q's left taps count (keep[q]) and where its right taps do
    (keep[16 + q]), else 0 (tile_3x3)."""
    keep = np.empty((w, 2 * COLS), np.int32)
    for start in range(w):
        ox = start
        for q in range(COLS):
            keep[start, q] = 0 if ox == 0 else -1
            keep[start, COLS + q] = 0 if ox == w - 1 else -1
            ox = 0 if ox == w - 1 else ox + 1
    return keep


@njit(cache=True, nogil=True, boundscheck=False)
def tiled_conv(x, kk, live_idx, nl, h, w, w_tiles, w_channels, act_idx, bias, relu, dst, c0, c1, counter,
               from_back=False, x_panels=False, prefetch=False):
    """Output pixels [c0, c1) (c1 - c0 >= 16) of a conv on tiles over nl live channels
    live_idx, for the active kernels act_idx (ascending), into dst (C_out, h*w), with the
    bias and ReLU on the store: kk = 9, a 3 x 3, stride 1, padding 1 conv over `guarded`
    (guard_planes' copy of the live channels); kk = 1, a 1 x 1 conv over x (C_in, h*w)
    itself, its live channels read where they lie, or where x_panels over pack_panels'
    copy of them for [c0, c1).
    w_tiles holds the weights of exactly the kernels act_idx, packed by pack_tiles over
    w_channels input channels: the nl live ones (w_channels == nl), or all C_in of them
    (w_channels > nl: the kernel's weights packed at load, read at the live channels, so
    that a conv whose kernels are all active packs nothing per call).
    The pixels go in panels of 16 and the panels in blocks (panel_blocks); the work goes in
    units of one tile of 6 kernels over one block, block by block, each unit claimed from
    counter[0] (set to 0 before; claim_unit): two threads given the same arguments but
    opposite `from_back` share the work, each unit computed once, by whichever claims it.
    Where `prefetch`, each panel of a unit prefetches a share of the weights of the tile
    this thread most likely claims next (config.TILE_PREFETCH).
    A range that does not split into panels of 16 ends with one that overlaps the panel
    before (its pixels are computed twice, alike).
    Why a tile over a block of panels, not every tile over one panel: a tile then writes
    its 6 kernels' rows in order, 6 store streams the hardware prefetchers follow, where
    a panel's tiles wrote 16 floats to each of up to 256 rows; and the per-panel work
    (masks, claims) is done once per block. On SqueezeNet's expand3x3 convs, L2 swept
    before each call: 0.91-0.97x the time dense, 0.80-0.90x gated 25%; the whole nets at
    1 thread 0.966x dense, 0.988x gated 50%, 0.990x gated 25% (bench/README.md,
    twenty-fifth session)."""
    na, hw = act_idx.shape[0], dst.shape[1]
    k, by_live = w_channels * kk, w_channels != nl
    out, w_flat, x_flat = dst.reshape(dst.size), w_tiles.reshape(w_tiles.size), x.reshape(x.size)
    panels = (c1 - c0 + COLS - 1) // COLS
    per_block = panel_blocks(nl, w if kk == 9 else 0, panels)
    units = work_units(nl, w if kk == 9 else 0, na, c0, c1)
    # Two functions, each with its own loops: with tile_3x3's copies per row count in the
    # same function, LLVM no longer unswitched tile_1x1's loop and it ran 1.07x slower.
    if kk == 9:
        _units_3x3(out, hw, x_flat, w, nl, live_idx, by_live, w_flat, k, act_idx, bias, relu, c0, c1, panels,
                   per_block, units, counter, from_back, prefetch)
    else:
        _units_1x1(out, hw, x_flat, nl, live_idx, by_live, w_flat, k, act_idx, bias, relu, c0, c1, panels, per_block,
                   units, counter, from_back, x_panels, prefetch)


@njit(cache=True, nogil=True, boundscheck=False)
def _prefetch_next_tile(w_flat, block, t, tiles, from_back, i, count):
    """Share i of count of the weights (`block` floats a tile) of the tile this thread most
    likely claims after tile t: the one after it from the front, before it from the back."""
    t_next = (t - 1 if from_back else t + 1) % tiles
    share = (block + count - 1) // count
    q = i * share
    prefetch_floats(w_flat, t_next * block + q, min(share, block - q))


@njit(cache=True, nogil=True, boundscheck=False)
def _units_3x3(out, hw, x_flat, w, nl, live_idx, by_live, w_flat, k, act_idx, bias, relu, c0, c1, panels, per_block,
               units, counter, from_back, prefetch):
    """tiled_conv's units of work that this thread claims, for a 3 x 3 conv."""
    na, plane = act_idx.shape[0], hw + 2 * w
    tiles = (na + ROWS - 1) // ROWS
    keep = edge_masks(w)
    block = k * ROWS  # a tile's weights
    u = claim_unit(counter, units, from_back)
    while u >= 0:
        b, t = u // tiles, u % tiles
        first, last = b * per_block, min((b + 1) * per_block, panels)
        for p in range(first, last):
            if prefetch:
                _prefetch_next_tile(w_flat, block, t, tiles, from_back, p - first, last - first)
            p0 = min(c0 + p * COLS, c1 - COLS)
            tile_3x3(out, hw, x_flat, plane, w, nl, live_idx, by_live, w_flat, t * k * ROWS, act_idx, t * ROWS,
                     min(ROWS, na - t * ROWS), p0, keep[p0 % w], bias, relu)
        u = claim_unit(counter, units, from_back)


@njit(cache=True, nogil=True, boundscheck=False)
def _units_1x1(out, hw, x_flat, nl, live_idx, by_live, w_flat, k, act_idx, bias, relu, c0, c1, panels, per_block,
               units, counter, from_back, x_panels, prefetch):
    """tiled_conv's units of work that this thread claims, for a 1 x 1 conv."""
    na = act_idx.shape[0]
    tiles = (na + ROWS - 1) // ROWS
    block = k * ROWS  # a tile's weights
    u = claim_unit(counter, units, from_back)
    while u >= 0:
        b, t = u // tiles, u % tiles
        first, last = b * per_block, min((b + 1) * per_block, panels)
        for p in range(first, last):
            if prefetch:
                _prefetch_next_tile(w_flat, block, t, tiles, from_back, p - first, last - first)
            p0 = min(c0 + p * COLS, c1 - COLS)
            if x_panels:  # panel p of pack_panels' copy, its live channels' rows one after another
                tile_1x1(out, hw, x_flat, p * nl * COLS, COLS, live_idx, False, by_live, nl, w_flat, t * k * ROWS,
                         act_idx, t * ROWS, min(ROWS, na - t * ROWS), p0, bias, relu)
            else:
                tile_1x1(out, hw, x_flat, p0, hw, live_idx, True, by_live, nl, w_flat, t * k * ROWS, act_idx,
                         t * ROWS, min(ROWS, na - t * ROWS), p0, bias, relu)
        u = claim_unit(counter, units, from_back)
