"""A groups == 1 convolution per sample: `prepare_sample` (live and active indices, im2col
or the packed tiles) decides which GEMM to run; `finish_part` gathers the live channels of
a 1x1 conv and the weights of the live channels and active kernels (`gather_part`, each
of a GEMM's two parts its own share), runs sgemm called from Numba (blas.py) and the
epilogue; `gemm_conv` runs the whole batch so as one compiled call. The Python path in
conv.py runs prepare_sample, gather_part, np.matmul and the epilogue as separate calls;
one compiled call saves their dispatch, 3-4 us per conv call, which is most of a small
gated layer's fixed cost.

A conv's geometry and settings reach the compiled code as one int64 array, the conv plan
(indices below): Numba's dispatcher costs about 0.1 us per argument, and a gated conv once
passed 27 of them."""

import numpy as np
from numba import njit

from .blas import sgemm
from .conv_steps import (add_bias_block, gather_channels, gather_rows, gather_weights, im2col, im2col_shifted,
                         indices_of, scatter_block, zero_inactive_block)
from .tile_gemm import COLS, guard_planes, guarded_size, pack_panels, pack_tiles, panels_size, tiled_conv


# What prepare_sample left for the GEMM of a sample:
EMPTY = 0       # nothing active, or only zeros in: the output is 0, or the bias
FULL = 1        # every kernel over every channel: w2 @ cols
TRANSPOSED = 2  # every kernel, some channels: w_buf as (k, C_out), read transposed
PARTIAL = 3     # some kernels: w_buf as (na, k), into y, then scattered to their rows
TILED = 4       # on tile_gemm's tiles: for a 3 x 3 conv cols is guard_planes' copy of x's live channels (a
                # 1 x 1 reads x itself, or pack_panels' copy where packs_panels), w_buf the packed weights
                # of the active kernels over the live channels (the kernel's w_tiles where all are)

# The conv plan: kernel size, stride, padding (top, left), dilation, output size, then the settings:
KH, KW, SH, SW, PT, PL, DH, DW, HO, WO = range(10)
SHIFTED = 10        # 1: im2col_shifted (stride 1, dilation 1, output as wide as the input)
POINTWISE = 11      # 1: a 1x1 stride-1 unpadded conv (its right operand is x's channels)
RELU = 12           # 1: a ReLU fused into the epilogue
ADD_FULL_BIAS = 13  # 0: a pool after the conv adds the bias (and ReLU) to a full output
GATHER_RATIO = 14   # config.POINTWISE_GATHER_RATIO, read when the kernel is made
SPLIT_MACS = 15     # a sample's GEMM of at least this many MACs runs in two parts (ConvKernel.set_cuts)
TILES = 16          # 1: the conv runs on tile_gemm's tiles (where tiles_fit held when the kernel was made)
ROW_PAD = 17        # zero rows PARTIAL's GEMM may add to reach a multiple of 4 rows (gemm_rows)
GATHER_IN_PARTS = 18  # 1: each part of a GEMM gathers its share (gather_part); 0: prepare_sample all of it
TILE_MAX_K = 19     # a 1 x 1 conv with TILES runs a sample on tiles where it has at most this many live
                    # channels (config.POINTWISE_TILE_MAX_K), or a dead channel and at most
TILE_MAX_ROWS = 20  # this many active kernels (config.POINTWISE_TILE_MAX_ROWS); else on sgemm
TILE_ALWAYS = 21    # 1: a 1 x 1 conv with TILES runs every sample on tiles, whatever its live channels and
                    # active kernels (config.POINTWISE_TILES_ALWAYS_ON_AVX512)
PANEL_MIN_ROWS = 22  # a 1 x 1 conv with TILES runs a sample with at least this many active kernels on tiles
                     # over pack_panels' copy of its live channels (config.POINTWISE_PANEL_MIN_ROWS; 0: never)
PREFETCH = 23       # 1: tiles prefetch the weights of the tile they most likely run next (config.TILE_PREFETCH)
NEVER_CUT = 2**62   # SPLIT_MACS where GEMMs are never cut


def conv_plan(kernel_size, geometry, out_size, shifted, pointwise, gather_ratio, split_macs, tiles=False,
              row_pad=0, gather_in_parts=True, tile_max_k=0, tile_max_rows=0, tiles_always=False, panel_min_rows=0,
              prefetch=False):
    """A new conv plan; geometry is (sh, sw, pt, pl, dh, dw); the epilogue starts as bias
    without ReLU."""
    return np.array([*kernel_size, *geometry, *out_size, shifted, pointwise, False, True, gather_ratio, split_macs,
                     tiles, row_pad, gather_in_parts, tile_max_k, tile_max_rows, tiles_always, panel_min_rows,
                     prefetch], np.int64)


def tiles_fit(kernel_size, stride, padding, dilation, groups, out_size):
    """Whether a conv can run on tile_gemm's tiles: 3 x 3 with stride 1 and padding 1, or
    1 x 1 with stride 1 and no padding; one group, at least a tile's pixels."""
    shape = ((kernel_size == (3, 3) and padding == (1, 1, 1, 1))
             or (kernel_size == (1, 1) and padding == (0, 0, 0, 0)))
    return (shape and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and out_size[0] * out_size[1] >= COLS)


@njit(cache=True, nogil=True, boundscheck=False)
def packs_panels(kk, na, plan):
    """Whether a sample with na active kernels, on tiles, reads its input as pack_panels'
    copy (a 1 x 1 conv whose plan sets PANEL_MIN_ROWS, with at least that many)."""
    return kk == 1 and 0 < plan[PANEL_MIN_ROWS] <= na


@njit(cache=True, nogil=True, boundscheck=False)
def gemm_rows(mode, na, co, row_pad):
    """Rows of a sample's GEMM: C_out for FULL and TRANSPOSED; for PARTIAL, its na active
    kernels, rounded up to a multiple of 4 with zero rows where that adds at most row_pad
    rows and stays within C_out.
    Why: OpenBLAS's sgemm (Haswell kernels, on Zen 3) runs the rows in fours and each
    leftover 2 or 1 as another pass over the packed right operand, so 7 rows cost more than
    8; on SqueezeNet's gated 1 x 1 shapes, 2-35 rows rounded up took 0.53-0.93x the time
    at 3 rows over a multiple of 4, 0.77-1.04x at 2, but 0.74-1.21x at 1
    (config.GEMM_ROW_PAD; `python .exp/m_sweep2.py`). The real rows' bits can differ from
    an unpadded GEMM's, but depend only on the count."""
    if mode == FULL or mode == TRANSPOSED:
        return co
    if mode != PARTIAL:
        return na
    up = (na + 3) // 4 * 4
    return up if up - na <= row_pad and up <= co else na


@njit(cache=True, nogil=True, boundscheck=False)
def right_operand(x, plan, k, cols_flat):
    """The (k, Ho*Wo) right operand of a sample x's GEMM with k rows: x itself for a 1x1
    conv over all its channels, else the front of the work buffer (im2col's columns, or
    the gathered live channels)."""
    c_in, hw = x.shape[0], plan[HO] * plan[WO]
    if plan[POINTWISE] != 0 and k == c_in:
        return x.reshape(c_in, hw)
    return cols_flat[:k * hw].reshape(k, hw)


@njit(cache=True, nogil=True, boundscheck=False)
def prepare_sample(x, live, active, w2, w2_t, plan, index_buf, cols_flat, w_buf):
    """For one sample x (C_in, H, W) with masks live (C_in,) and active (C_out,): the live
    then the active indices into index_buf (C_in + C_out + 1: its last element is TILED's
    count of claimed units of work), and the GEMM's operands: im2col's columns, or for TILED
    guard_planes' copy of x (a 3 x 3 conv) and the packed weights; the gathered live
    channels of a 1x1 conv and the gathered weights only where the GEMM is cut in two parts
    that both read them whole (else finish_part gathers them, each part its own share:
    gather_part).
    Returns (mode, na, k, cols): na active kernels, k rows of cols (for TILED, cols is one
    row: guard_planes' copy, or x for a 1 x 1 conv)."""
    kh, kw, sh, sw, pt, pl, dh, dw, ho, wo = plan[KH], plan[KW], plan[SH], plan[SW], plan[PT], plan[PL], \
        plan[DH], plan[DW], plan[HO], plan[WO]
    shifted, pointwise, gather_ratio = plan[SHIFTED] != 0, plan[POINTWISE] != 0, plan[GATHER_RATIO]
    c_in, co = x.shape[0], w2.shape[0]
    hw, kk = ho * wo, kh * kw
    live_buf, act_buf = index_buf[:c_in], index_buf[c_in:c_in + co]
    nl = indices_of(live, live_buf)
    na = indices_of(active, act_buf)
    if na == 0 or nl == 0:
        return EMPTY, na, 0, cols_flat[:0].reshape(0, hw)
    full_in, full_out = nl == c_in, na == co
    # A 3 x 3 conv with TILES always runs on them; a 1 x 1 where it pays (config.POINTWISE_TILE_MAX_K,
    # _MAX_ROWS, _PANEL_MIN_ROWS; always on AVX-512, config.POINTWISE_TILES_ALWAYS_ON_AVX512): it
    # reads its live planes where they lie, with no gather and no packing of them as sgemm
    # does, or over many kernels a copy of them in panels (pack_panels).
    if plan[TILES] != 0 and (kk == 9 or plan[TILE_ALWAYS] != 0 or nl <= plan[TILE_MAX_K]
                             or (not full_in and na <= plan[TILE_MAX_ROWS]) or packs_panels(kk, na, plan)):
        if not full_out:  # else the kernel's w_tiles, packed at load, read at the live channels
            pack_tiles(w2, kk, act_buf[:na], live_buf[:nl], w_buf)
        index_buf[c_in + co] = 0  # the units of work claimed (tiled_conv)
        if packs_panels(kk, na, plan):
            panels = cols_flat[:panels_size(nl, 0, hw)]
            pack_panels(x.reshape(c_in, hw), live_buf[:nl], 0, hw, panels)
            return TILED, na, nl, panels.reshape(1, panels.size)
        if kk == 1:
            return TILED, na, nl, x.reshape(1, x.size)
        guarded = cols_flat[:guarded_size(nl, ho, wo)]
        guard_planes(x.reshape(c_in, hw), live_buf[:nl], ho, wo, guarded)
        return TILED, na, nl * kk, guarded.reshape(1, guarded.size)
    if pointwise and not full_in and na * (c_in - nl) <= gather_ratio * nl:
        # Few kernels over many channels: multiplying the dead (all-zero) channels
        # costs less than copying the live ones out (config.POINTWISE_GATHER_RATIO).
        for i in range(c_in):
            live_buf[i] = i
        nl, full_in = c_in, True
    live_idx = live_buf[:nl]
    k = nl * kk
    cols = right_operand(x, plan, k, cols_flat)
    if not pointwise:
        if shifted:
            im2col_shifted(x, live_idx, kh, kw, pt, pl, ho, wo, cols)
        else:
            im2col(x, live_idx, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols)
    mode = FULL if full_in and full_out else TRANSPOSED if full_out else PARTIAL
    # The gathers that each part of the GEMM can make of its own share (gather_part) wait
    # for finish_part; those that both parts read whole are made here.
    parts, by_columns, _ = parts_of(mode, na, k, hw, co, plan)
    in_parts = plan[GATHER_IN_PARTS] != 0
    whole_cols = not in_parts or (parts == 2 and not by_columns)  # each part reads every column
    whole_weights = not in_parts or (parts == 2 and by_columns)  # each part reads every row
    if whole_cols or whole_weights:
        gather_part(x, mode, na, k, cols, w2, w2_t, w_buf, plan, index_buf, 0, gemm_rows(mode, na, co, plan[ROW_PAD]),
                    0, hw, whole_weights, whole_cols)
    return mode, na, k, cols


@njit(cache=True, nogil=True, boundscheck=False)
def gather_part(x, mode, na, k, cols, w2, w2_t, w_buf, plan, index_buf, r0, r1, c0, c1, weights, channels):
    """What prepare_sample left for a GEMM's rows [r0, r1) and columns [c0, c1): where
    `weights`, those rows of its gathered weights (TRANSPOSED: the live rows of w2_t, their
    columns r0:r1; PARTIAL: the active kernels' rows over the live channels, and zeros in
    gemm_rows' padding rows); where `channels`, those columns of the live channels of a
    1x1 conv's input (pointwise and not every channel: right_operand).
    Why in parts: at 2 threads each part gathers what it alone reads, on its own thread,
    rather than the calling thread gathering everything before the parts begin (conv10's
    256 live rows of transposed weights are 1 MB)."""
    c_in, hw = x.shape[0], x.shape[1] * x.shape[2]
    kk = plan[KH] * plan[KW]
    live_idx = index_buf[:k // kk]
    if channels and plan[POINTWISE] != 0 and k != c_in:
        gather_channels(x.reshape(c_in, hw), live_idx, cols, c0, c1)
    if not weights:
        return
    co = w2.shape[0]
    if mode == TRANSPOSED:  # w_buf as (k, C_out): the product's rows are its columns
        gather_rows(w2_t, kk, live_idx, w_buf[:k * co].reshape(k, co), r0, r1)
    elif mode == PARTIAL:
        real = min(r1, na)
        if r0 < real:
            act_idx = index_buf[c_in + r0:c_in + real]
            gather_weights(w2, kk, act_idx, live_idx, w_buf[r0 * k:real * k].reshape(real - r0, k))
        w_buf[max(r0, na) * k:r1 * k] = 0.0  # gemm_rows' padding


@njit(cache=True, nogil=True, boundscheck=False)
def parts_of(mode, na, k, hw, co, plan):
    """(parts, by_columns, cut): how a sample's GEMM runs, as one part or as two that two
    threads can run at once. Only the sizes and the plan (SPLIT_MACS, ROW_PAD) decide, never
    whether the parts run at once, so that a sample's bits are the same alone and in a
    batch (a GEMM cut in two rounds differently from the whole). Wide outputs are cut by columns (pixels),
    narrow ones (13 x 13) by rows (kernels), where a column half of 85 pixels ran no
    faster on two threads; the cuts fall on multiples of 16 columns or 8 rows."""
    rows = gemm_rows(mode, na, co, plan[ROW_PAD])
    if mode == EMPTY or rows * k * hw < plan[SPLIT_MACS]:
        return 1, False, 0
    if mode == TILED:  # both parts claim the same conv's units of work, from opposite ends (tile_gemm.claim_unit)
        return 2, True, 0
    if hw >= 512:
        return 2, True, (hw // 2 + 15) // 16 * 16
    if rows >= 32:  # both parts hold real rows: rows - cut >= 9 > a PARTIAL's padding
        return 2, False, (rows // 2 + 7) // 8 * 8
    return 1, False, 0


@njit(cache=True, nogil=True, boundscheck=False)
def finish_part(x, mode, na, k, cols, w2, w2_t, w_tiles, w_buf, y_buf, bias, plan, index_buf, dst, written, part):
    """Part `part` of a sample x's prepared GEMM and epilogue (parts_of): the gathers of its
    share that prepare_sample left (gather_part), its rows or columns of sgemm, then the
    bias, ReLU and scatter of the same block into dst (C_out, Ho*Wo);
    for TILED, the units of work it claims first on tile_gemm's tiles (part 0 also zeroes
    the inactive rows).
    Both parts of a sample can run at once, on two threads: they write disjoint blocks of
    dst and y_buf and only read the rest. index_buf holds the live then the active
    indices (prepare_sample)."""
    co, hw = dst.shape[0], dst.shape[1]
    relu, add_full_bias = plan[RELU] != 0, plan[ADD_FULL_BIAS] != 0
    parts, by_columns, cut = parts_of(mode, na, k, hw, co, plan)
    rows = gemm_rows(mode, na, co, plan[ROW_PAD])
    r0, r1, c0, c1 = 0, rows, 0, hw
    if parts == 2 and by_columns:
        c0, c1 = (0, cut) if part == 0 else (cut, hw)
    elif parts == 2:
        r0, r1 = (0, cut) if part == 0 else (cut, rows)
    m, n = r1 - r0, c1 - c0
    c_in = w2.shape[1] // (plan[KH] * plan[KW])
    act_idx = index_buf[c_in:c_in + na]
    if mode == TILED:  # where a pool takes the epilogue, bias is 0 and relu off
        kk = plan[KH] * plan[KW]
        packed, w_channels = (w_tiles, c_in) if na == co else (w_buf, k // kk)
        x_panels = packs_panels(kk, na, plan)
        tiled_conv(cols.reshape(cols.size) if kk == 9 or x_panels else x.reshape(x.size), kk, index_buf[:k // kk],
                   k // kk, plan[HO], plan[WO], packed, w_channels, act_idx, bias, relu, dst, 0, hw,
                   index_buf[c_in + co:], part == 1, x_panels, plan[PREFETCH] != 0)
        if na < co and part == 0:
            zero_inactive_block(act_idx, written, dst, 0, hw)
        return
    if mode != EMPTY and plan[GATHER_IN_PARTS] != 0:
        gather_part(x, mode, na, k, cols, w2, w2_t, w_buf, plan, index_buf, r0, r1, c0, c1,
                    parts == 1 or not by_columns, parts == 1 or by_columns)
    b = cols.reshape(cols.size)[c0:]
    if mode == FULL or mode == TRANSPOSED:
        c = dst.reshape(dst.size)[r0 * hw + c0:]
        if mode == FULL:
            sgemm(False, m, n, k, w2.reshape(w2.size)[r0 * k:], k, b, hw, c, hw)
        else:  # w_buf holds the weights as (k, C_out): rows r0:r1 of the product are its columns
            sgemm(True, m, n, k, w_buf[r0:], co, b, hw, c, hw)
        if add_full_bias:  # else the pool after adds bias and ReLU
            add_bias_block(dst, bias, relu, r0, r1, c0, c1)
        return
    y = y_buf[:na * hw].reshape(na, hw)
    if mode == EMPTY:
        y[:] = 0.0
    else:  # rows from na on are gemm_rows' padding, computed and dropped
        sgemm(False, m, n, k, w_buf[r0 * k:], k, b, hw, y_buf[r0 * hw + c0:], hw)
    scatter_block(y, act_idx, bias, relu, dst, written, r0, min(r1, na), c0, c1)


@njit(cache=True, nogil=True, boundscheck=False)
def sample_planes(buffer, out, co, hw):
    """buffer viewed as (N, C_total, Ho*Wo), and the first channel of `out` in it."""
    n, c_total = buffer.shape[0], buffer.shape[1]
    first = (out.ctypes.data - buffer.ctypes.data) // (4 * hw)
    if out.shape[1] != co or (out.ctypes.data - buffer.ctypes.data) % (4 * hw) != 0 \
            or first < 0 or first + co > c_total:
        raise ValueError("out must be a channel slice of buffer")
    return buffer.reshape(n, c_total, hw), first


@njit(cache=True, nogil=True, boundscheck=False)
def prepare_first(x, live, active, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out,
                  written):
    """gemm_conv for a batch of one, up to its GEMM where parts_of cuts that in two: returns
    (mode, na, k, parts); with parts == 2 the caller runs finish_first's two parts (on two
    threads), else the sample is done."""
    co, hw = w2.shape[0], plan[HO] * plan[WO]
    planes, first = sample_planes(buffer, out, co, hw)
    mode, na, k, cols = prepare_sample(x[0], live[0], active[0], w2, w2_t, plan, index_buf,
                                       cols_buf.reshape(cols_buf.size), w_buf)
    parts = parts_of(mode, na, k, hw, co, plan)[0]
    if parts == 1:
        finish_part(x[0], mode, na, k, cols, w2, w2_t, w_tiles, w_buf, y_buf, bias, plan, index_buf,
                    planes[0][first:first + co], written[0], 0)
    return mode, na, k, parts


@njit(cache=True, nogil=True, boundscheck=False)
def finish_first(x, mode, na, k, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out,
                 written, part):
    """Part `part` of the GEMM and epilogue of the batch of one that prepare_first left
    (mode, na, k): finish_part on the operands prepare_sample left in the buffers."""
    co, hw, c_in = w2.shape[0], plan[HO] * plan[WO], x.shape[1]
    planes, first = sample_planes(buffer, out, co, hw)
    if mode == TILED:  # guard_planes' copy of x
        cols = cols_buf.reshape(1, cols_buf.size)
    else:
        cols = right_operand(x[0], plan, k, cols_buf.reshape(cols_buf.size))
    finish_part(x[0], mode, na, k, cols, w2, w2_t, w_tiles, w_buf, y_buf, bias, plan, index_buf,
                planes[0][first:first + co], written[0], part)


@njit(cache=True, nogil=True, boundscheck=False)
def gemm_conv(x, live, active, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out,
              written):
    """x (N, C_in, H, W) C-contiguous; live (N, C_in) and active (N, C_out) bool; w2 the
    weights as (C_out, C_in*kh*kw), w2_t its transpose and w_tiles the same packed for
    tile_gemm (empty where the plan has no TILES); plan the conv plan (above); buffer
    (N, C_total, Ho, Wo) C-contiguous, and out the (N, C_out, Ho, Wo) channel slice of it
    to write (or buffer itself); written (N, C_out): the rows that may hold non-zeros (the
    others hold zeros already). Each sample's GEMM runs in its parts one after the other,
    as two threads would run them."""
    co, hw = w2.shape[0], plan[HO] * plan[WO]
    planes, first = sample_planes(buffer, out, co, hw)
    cols_flat = cols_buf.reshape(cols_buf.size)
    for s in range(x.shape[0]):
        dst = planes[s][first:first + co]
        mode, na, k, cols = prepare_sample(x[s], live[s], active[s], w2, w2_t, plan, index_buf, cols_flat, w_buf)
        parts = parts_of(mode, na, k, hw, co, plan)[0]
        for part in range(parts):
            finish_part(x[s], mode, na, k, cols, w2, w2_t, w_tiles, w_buf, y_buf, bias, plan, index_buf, dst,
                        written[s], part)
