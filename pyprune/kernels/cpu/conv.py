"""CPU convolution: im2col over live input channels + one BLAS GEMM over active kernels
(groups == 1; the steps are in conv_steps.py, run as one compiled call by conv_gemm.py),
and a direct loop kernel for grouped / depthwise convolutions.

Both read only the live input channels of each sample and compute only its active output
channels; an inactive channel is written as exact 0.0 (its bias is not added).
"""

import numpy as np
from numba import njit

from ... import config
from ..macs import conv_macs
from . import blas
from .base import Act, CpuKernel, c_contiguous, kept
from .blas import AVAILABLE as BLAS_IN_NUMBA
from .conv_gemm import (ADD_FULL_BIAS, EMPTY, FULL, GATHER_IN_PARTS, NEVER_CUT, PANEL_MIN_ROWS, POINTWISE, PREFETCH,
                        RELU, ROW_PAD, SHIFTED, SPLIT_MACS, TILE_ALWAYS, TILED, TILES, TRANSPOSED, conv_plan, finish_part,
                        gather_part, gemm_conv, gemm_rows, parts_of, prepare_first, prepare_sample, tiles_fit)
from .conv_steps import add_bias, scatter_rows
from .llvm_vectors import compiles_avx512
from .tile_gemm import ROWS, guarded_size, pack_tiles, panels_size, tile_count


@njit(cache=True, nogil=True, boundscheck=False)
def conv_direct(x, wt, b, live, active, sh, sw, pt, pl, dh, dw, groups, out):
    """Direct convolution for any groups; live (N, C_in) and active (N, C_out) are bool."""
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    co, cg, kh, kw = wt.shape
    ho, wo = out.shape[2], out.shape[3]
    cog = co // groups
    for s in range(n):
        for oc in range(co):
            if not active[s, oc]:
                out[s, oc, :, :] = 0.0
                continue
            out[s, oc, :, :] = b[oc]
            g = oc // cog
            for ci in range(cg):
                ic = g * cg + ci
                if not live[s, ic]:
                    continue
                for i in range(kh):
                    for j in range(kw):
                        wv = wt[oc, ci, i, j]
                        for oy in range(ho):
                            iy = oy * sh - pt + i * dh
                            if iy < 0 or iy >= h:
                                continue
                            for ox in range(wo):
                                ix = ox * sw - pl + j * dw
                                if 0 <= ix < w:
                                    out[s, oc, oy, ox] += wv * x[s, ic, iy, ix]


class _PlanFlag:
    """A bool setting of a ConvKernel kept in its conv plan (conv_gemm.py), the array the
    compiled conv reads: whoever sets it (the plan fusing a ReLU, ab_flag turning `shifted`
    off) changes the next call, with nothing to keep in step."""

    def __init__(self, index):
        self.index = index

    def __get__(self, kernel, owner=None):
        return self if kernel is None else bool(kernel.conv_plan[self.index])

    def __set__(self, kernel, value):
        kernel.conv_plan[self.index] = bool(value)


class ConvKernel(CpuKernel):
    """Weights are packed once; per call, each sample's active rows and live columns are
    gathered into reused work buffers (a session runs one call at a time). A following
    ReLU can be fused (`fused_relu`), and the output can be a slice of a concat buffer.
    When a max pool alone reads the output, the plan hands it the bias and the ReLU
    (`hand_epilogue_to_pool`): both commute with the max and cost a quarter as much on
    the pooled tensor.

    Outputs the caller never sees are kept across calls (the plan sets `reuse_output` on
    the conv, or on the concat it writes into), and then `track_zero_rows` keeps which
    output rows the last call wrote, so that an inactive channel that was inactive last
    time is not zeroed again.

    groups == 1 convs run the whole batch as one compiled call that calls sgemm from Numba
    (`blas_in_numba`, where NumPy's OpenBLAS allows it, blas.py); otherwise, and for
    buffers that are not C-contiguous, the same steps run as Python calls around np.matmul.
    A batch of one given a PairThread (`pair`, where pyprune has two threads) runs a
    GEMM that parts_of cuts in two on both threads at once (`may_split`: the layer's dense
    GEMM is big enough to be cut; `set_cuts` turns cutting on and off)."""

    blas_in_numba = BLAS_IN_NUMBA
    shifted = _PlanFlag(SHIFTED)
    pointwise = _PlanFlag(POINTWISE)
    gather_in_parts = _PlanFlag(GATHER_IN_PARTS)  # off: prepare_sample gathers it all (bench/ab_flag.py)
    fused_relu = _PlanFlag(RELU)
    pointwise_tiles_always = _PlanFlag(TILE_ALWAYS)  # config.POINTWISE_TILES_ALWAYS_ON_AVX512 (bench/ab_flag.py)
    tile_prefetch = _PlanFlag(PREFETCH)  # config.TILE_PREFETCH (bench/ab_flag.py)

    @property
    def pointwise_panels(self):
        """Whether a 1 x 1 conv on tiles reads many kernels' input as pack_panels' copy
        (config.POINTWISE_PANEL_MIN_ROWS; bench/ab_flag.py turns it off, or on at that
        setting)."""
        return bool(self.conv_plan[PANEL_MIN_ROWS])

    @pointwise_panels.setter
    def pointwise_panels(self, on):
        self.conv_plan[PANEL_MIN_ROWS] = config.POINTWISE_PANEL_MIN_ROWS if on else 0

    @property
    def tiles(self):
        """Whether the conv runs on tile_gemm's tiles; it can only where tiles_fit (ab_flag
        turns it off)."""
        return bool(self.conv_plan[TILES])

    @tiles.setter
    def tiles(self, on):
        self.conv_plan[TILES] = bool(on) and self.tiles_fit

    @property
    def pointwise_tiles(self):
        """Whether a 1 x 1 conv runs on tiles (bench/ab_flag.py turns it off alone, leaving
        the 3 x 3 convs on theirs)."""
        return self.tiles and self.pointwise

    @pointwise_tiles.setter
    def pointwise_tiles(self, on):
        if self.pointwise:
            self.tiles = on

    @property
    def row_pad(self):
        """Zero rows a GEMM over some kernels may add to reach a multiple of 4
        (conv_gemm.gemm_rows; config.GEMM_ROW_PAD for the BLAS in use when the kernel was
        made; 0 turns it off)."""
        return int(self.conv_plan[ROW_PAD])

    @row_pad.setter
    def row_pad(self, rows):
        self.conv_plan[ROW_PAD] = rows

    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        self.weight = np.ascontiguousarray(node.weights["weight"], np.float32)
        self.bias = np.ascontiguousarray(node.weights["bias"], np.float32)
        co, cg, kh, kw = self.weight.shape
        self.groups = a["groups"]
        self.geometry = (*a["stride"], a["padding"][0], a["padding"][1], *a["dilation"])
        self.tiles_fit = config.TILE_CONVS and tiles_fit((kh, kw), a["stride"], a["padding"], a["dilation"],
                                                         self.groups, out_shape[1:])
        self.conv_plan = conv_plan(
            (kh, kw), self.geometry, out_shape[1:],
            shifted=a["stride"] == (1, 1) and a["dilation"] == (1, 1) and out_shape[2] == in_shapes[0][2],
            pointwise=(kh, kw) == (1, 1) and a["stride"] == (1, 1) and a["padding"] == (0, 0, 0, 0),
            gather_ratio=config.POINTWISE_GATHER_RATIO, split_macs=config.SPLIT_GEMM_MACS, tiles=self.tiles_fit,
            row_pad=config.GEMM_ROW_PAD.get(blas.BACKEND, 0), tile_max_k=config.POINTWISE_TILE_MAX_K,
            tile_max_rows=config.POINTWISE_TILE_MAX_ROWS,
            tiles_always=config.POINTWISE_TILES_ALWAYS_ON_AVX512 and compiles_avx512(),
            panel_min_rows=config.POINTWISE_PANEL_MIN_ROWS, prefetch=config.TILE_PREFETCH)
        # (C_out, C_in*kh*kw): rows of active kernels x the kh*kw columns of each live
        # channel are gathered from here, in the order im2col writes its rows.
        self.w2 = self.weight.reshape(co, -1)
        # The same, as tile_gemm reads it (a dense sample on tiles; empty where tiles_fit fails).
        self.w_tiles = np.empty(tile_count(co) * ROWS * self.w2.shape[1] if self.tiles_fit else 0, np.float32)
        if self.tiles_fit:
            pack_tiles(self.w2, kh * kw, np.arange(co), np.arange(cg), self.w_tiles)
        self.w2_t = None  # (C_in * kh * kw, C_out), made on first need (gather_rows)
        self.index_buf = np.empty(in_shapes[0][0] + co + 1, np.int64)  # live, active indices; a counter
        self.epilogue_bias = self.bias  # zeros once a pool adds the bias instead
        self.may_split = co * cg * kh * kw * out_shape[1] * out_shape[2] >= config.SPLIT_GEMM_MACS
        self.track_zero_rows = False
        self._written, self._written_in = None, None  # (N, C_out) rows the last call wrote, and where
        self._gemm_args = None  # gemm_args(), made on first need
        if self.groups == 1:
            self.use_workspace(*(np.empty(size, np.float32) for size in self.workspace_sizes()))

    def workspace_sizes(self):
        """Float32 elements of the work buffers a groups == 1 conv needs: im2col's columns
        (or, on tiles, guard_planes' copy of x), the gathered weights (or the packed tiles of
        the active kernels) and the GEMM's output before the epilogue."""
        co, cg, kh, kw = self.weight.shape
        ho, wo = self.out_shape[1:]
        k = cg * kh * kw
        if not self.tiles_fit:
            return k * ho * wo, co * k, co * ho * wo
        copies = max(guarded_size(cg, ho, wo), panels_size(cg, 0, ho * wo))  # guard_planes', pack_panels'
        return max(k * ho * wo, -(-copies // k) * k), tile_count(co) * ROWS * k, co * ho * wo  # whole rows of k

    def use_workspace(self, cols, w, y):
        """Take work buffers as the leading parts of `cols`, `w` and `y` (flat float32). The
        plan gives every CPU conv of a session the same three arrays: a conv uses them only
        during its own call, and one shared workspace stays in cache from layer to layer
        where a private one per conv is cold every time (`python bench/ab_flag.py
        shared_workspace --rounds 16 --block 15`: 0.93-0.97x gated, 0.97-0.98x dense)."""
        n_cols, n_w, n_y = self.workspace_sizes()
        self.cols_buf = cols[:n_cols].reshape(self.w2.shape[1], -1)
        self.w_buf, self.y_buf = w[:n_w], y[:n_y]
        self._gemm_args = None

    def run(self, xs, ctx, out=None):
        return Act(self.convolve(xs[0], None, out, ctx.pair), None)

    def set_cuts(self, on):
        """Let parts_of cut this conv's big GEMMs in two (on), or never: the session turns
        cuts on where it has two or more threads to run the parts at once, and off at one
        thread, where the parts would only cost time (conv_gemm.SPLIT_MACS)."""
        self.conv_plan[SPLIT_MACS] = config.SPLIT_GEMM_MACS if on else NEVER_CUT

    def hand_epilogue_to_pool(self):
        """Stop adding the bias and applying a fused ReLU; return (bias, relu) for the pool."""
        relu, self.fused_relu = self.fused_relu, False
        self.epilogue_bias = np.zeros_like(self.bias)
        self.conv_plan[ADD_FULL_BIAS] = False
        self._gemm_args = None
        return self.bias, relu

    def convolve(self, x, active, out=None, pair=None):
        """Convolve x (an Act) computing only `active` (N, C_out) channels (None: all),
        into `out` (N, C_out, Ho, Wo; may be a channel slice of a bigger buffer) or a new
        array; a batch of one on two threads where `pair` (a PairThread) is given."""
        n = x.data.shape[0]
        x = c_contiguous(x)
        out, buffer, written, one_call = self.begin_call(x, out)
        if self.groups != 1:
            conv_direct(x.data, self.weight, self.epilogue_bias, self.live_of(x), self.active_of(n, active),
                        *self.geometry, self.groups, out)
            if self.fused_relu:
                np.maximum(out, 0.0, out=out)
        elif one_call and self.in_parts(n, pair):
            prepared = prepare_first(x.data, self.live_of(x), self.active_of(n, active), *self.gemm_args(x), buffer,
                                     out, written)
            self.finish_parts(x, prepared, buffer, out, written, pair)
        elif one_call:
            gemm_conv(x.data, self.live_of(x), self.active_of(n, active), *self.gemm_args(x), buffer, out,
                      written)
        else:
            self._python_gemm(x, active, out, written)
        self.end_call(n, active, buffer)
        return out

    def bind(self, xs, phase, store, pair=None):
        """gemm_conv into a kept output (CpuKernel.bind), where run() makes it one compiled
        call: every row is written (no gate), so `written` is all true."""
        x = xs[0]
        if not self.binds_one_call(x):
            return None
        n, co = x.data.shape[0], self.out_shape[0]
        out = kept(store, "out", (n, *self.out_shape))
        ones = self.ones(n, co)
        args = (x.data, self.live_of(x), ones, *self.gemm_args(x), out, out, ones)
        return (self.bound_call(x, gemm_conv, prepare_first, args, out, ones, pair),), Act(out, None)

    def bound_call(self, x, whole, first, args, out, written, pair):
        """(whole, args) for bind; where a batch of one shares its GEMM's parts with `pair`
        (in_parts), a call that runs `first` on args and then the parts, as convolve does."""
        if not self.in_parts(x.data.shape[0], pair):
            return whole, args

        def in_parts(*a):
            self.finish_parts(x, first(*a), out, out, written, pair)
        return in_parts, args

    def binds_one_call(self, x):
        """Whether a call on x runs as one compiled call in bind's arrays: one group, sgemm
        callable from Numba, x C-contiguous (the kept outputs are)."""
        return self.groups == 1 and self.blas_in_numba and x.data.flags.c_contiguous

    def begin_call(self, x, out):
        """(out, buffer, written, one_call) for a call on x: the output (new, or kept, where
        out is None), the buffer it lies in, the (N, C_out) rows of it that the last call
        may have left non-zero (every row, unless track_zero_rows knows better), and
        whether gemm_conv (sgemm called from Numba) can run the call."""
        if out is None:
            out = self.output_array(x.data.shape[0])
        buffer = out if out.base is None else out.base
        written = self.written_rows(buffer, len(out))
        one_call = (self.groups == 1 and self.blas_in_numba and buffer.flags.c_contiguous
                    and x.data.flags.c_contiguous)
        return out, buffer, written, one_call

    def written_rows(self, buffer, n):
        """The (N, C_out) rows of this conv's channels in `buffer` that the last call may have
        left non-zero: every row, unless track_zero_rows knows better (end_call)."""
        written = self._written
        if not self.track_zero_rows or self._written_in is not buffer or len(written) != n:
            written = self.ones(n, self.out_shape[0])
        return written

    def in_parts(self, n, pair):
        """Whether a call on n samples runs as prepare_first and finish_parts, given `pair`."""
        return n == 1 and pair is not None and self.may_split

    def finish_parts(self, x, prepared, buffer, out, written, pair):
        """A batch of one that prepare_first left in two parts (else it is done): part 0
        here and part 1 on pair's helper thread at once (PairThread.conv_parts), or here
        too where the helper has not claimed it by then."""
        mode, na, k, parts = prepared
        if parts == 2:
            w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf = self.gemm_args(x)
            pair.conv_parts(x.data, mode, na, k, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf,
                            buffer, out, written)

    def end_call(self, n, active, buffer):
        """After a call into `buffer`: the rows it wrote (its active ones), for the next call.
        `active` is kept as it is, not copied: live masks are never written to."""
        if self.track_zero_rows:
            self._written = self.active_of(n, active)
            self._written_in = buffer

    def active_of(self, n, active):
        """The (N, C_out) active mask as an array: an all-true one where active is None."""
        return self.ones(n, self.out_shape[0]) if active is None else active

    def gemm_args(self, x):
        """gemm_conv's arguments after (x, live, active) and before (buffer, out, written) for
        a call on x. Made once (the settings that the plan and ab_flag change live in
        conv_plan, which the tuple holds): building it per call cost about 0.3 us. Remade
        once, when the first input with a live mask brings the transposed weights
        (prepare_sample reads them only where an input channel is dead; until then w2
        stands in for the argument)."""
        # A 3 x 3 conv on tiles never reads it; a 1 x 1 one over many live channels does.
        if x.live is not None and self.w2_t is None and not (self.tiles and not self.pointwise):
            self.w2_t = np.ascontiguousarray(self.w2.T)
            self._gemm_args = None
        if self._gemm_args is None:
            self._gemm_args = (self.w2, self.w2 if self.w2_t is None else self.w2_t, self.w_tiles,
                               self.epilogue_bias, self.conv_plan, self.index_buf, self.cols_buf, self.w_buf,
                               self.y_buf)
        return self._gemm_args

    def _python_gemm(self, x, active, out, written):
        """The same steps as gemm_conv, with np.matmul between compiled calls: for where
        NumPy's BLAS cannot be called from Numba, and for non-contiguous arrays."""
        live, act = self.live_of(x), self.active_of(x.data.shape[0], active)
        w2, w2_t = self.gemm_args(x)[:2]
        co, ho, wo = self.out_shape
        hw = ho * wo
        cols_flat = self.cols_buf.reshape(-1)
        for s in range(x.data.shape[0]):
            flat = out[s].reshape(co, hw)
            sample = np.ascontiguousarray(x.data[s])
            mode, na, k, cols = prepare_sample(sample, live[s], act[s], w2, w2_t, self.conv_plan, self.index_buf,
                                               cols_flat, self.w_buf)
            if mode == TILED:  # no BLAS in it: the compiled parts run as they are
                dst = flat if flat.flags.c_contiguous else np.empty((co, hw), np.float32)
                for part in range(parts_of(mode, na, k, hw, co, self.conv_plan)[0]):
                    finish_part(sample, mode, na, k, cols, w2, w2_t, self.w_tiles, self.w_buf, self.y_buf,
                                self.epilogue_bias, self.conv_plan, self.index_buf, dst, written[s], part)
                if dst is not flat:
                    flat[...] = dst
                continue
            rows = gemm_rows(mode, na, co, self.conv_plan[ROW_PAD])  # na and the padding rows
            if mode != EMPTY and self.gather_in_parts:  # the gathers finish_part would make, all at once
                gather_part(sample, mode, na, k, cols, w2, w2_t, self.w_buf, self.conv_plan, self.index_buf, 0, rows,
                            0, hw, True, True)
            if mode == FULL or mode == TRANSPOSED:
                w = w2 if mode == FULL else self.w_buf[:k * co].reshape(k, co).T
                np.matmul(w, cols, out=flat)
                if self.conv_plan[ADD_FULL_BIAS]:  # else the pool after adds bias and ReLU
                    add_bias(flat, self.bias, self.fused_relu)
                continue
            y = self.y_buf[:rows * hw].reshape(rows, hw)
            if mode == EMPTY:
                y[...] = 0.0
            else:
                np.matmul(self.w_buf[:rows * k].reshape(rows, k), cols, out=y)
            act_idx = self.index_buf[x.data.shape[1]:][:na]
            scatter_rows(y[:na], act_idx, self.epilogue_bias, self.fused_relu, flat, written[s])

    def macs(self, xs, y):
        """MACs per sample that the masks leave (active kernels x live inputs per group), and
        the dense count. A 1x1 conv that multiplies dead channels instead of gathering the
        live ones (POINTWISE_GATHER_RATIO) runs a few more, which are not counted."""
        return conv_macs(self.weight.shape, self.groups, self.out_shape, xs[0].data.shape[0],
                         xs[0].live, y.live)
