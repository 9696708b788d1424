"""A dense conv whose output only a max pool reads (SqueezeNet's stem), computed in bands
of a few output rows that the pool consumes at once: plan.py fuses the two where
`banded_fits` allows.

Why bands: SqueezeNet's conv1 writes 3.15 MB, more than L2, and pool1 would then read it
back from L3. In bands of about config.CONV_POOL_BAND_PIXELS output pixels each band stays
in cache for the pool.
The conv row two bands share moves to the front of the band buffer instead of being
computed twice.

How: the band is channels-last, a conv row of W_out pixels x C (C rounded up to 16)
floats. The conv runs on tile_gemm's `tile_lanes`, 16 channels x 6 pixels of a row at a
time, reading the input in place (a padded copy where the conv pads): each of the
C_in*kh*kw taps is one scalar per pixel, broadcast, so no im2col is built, and the bias and
ReLU go on as it stores (max commutes with both). The pool then takes the max down the
window's rows and along its columns over whole channel vectors, and writes its rows back
channels-first. On the AMD host, SqueezeNet's stem took 1.55 ms as im2col + OpenBLAS's
sgemm (K = 27) + a phase-split pool, of which 0.30 the im2col and 0.84 the sgemm
(bench/README.md, sixteenth session).
"""

import numpy as np
from numba import njit

from ... import config
from .base import Act, CpuKernel, kept
from .conv_gemm import DH, DW, HO, KH, KW, PL, PT, SH, SW, WO
from .pool import fmax
from .llvm_vectors import move_floats, transpose8
from .tile_gemm import COLS, ROWS, tile_lanes
from .window import valid_range

LANES = COLS  # channels per tile_lanes call
# pool_plan indices: window, stride, left padding, pool rows per band, and whether each
# sample's pool rows are computed as two halves (ConvPoolKernel.set_halves)
PKH, PKW, PSH, PSW, PPL, BAND, HALVES = range(7)


def banded_fits(conv_out_shape, pool_attrs, pool_out_shape):
    """Whether the banded kernel can run this conv + max pool, and pays: no padding above,
    no window hanging below the conv's last row, and a conv output too large for L2."""
    co, ho, wo = conv_out_shape
    pkh, psh = pool_attrs["kernel_size"][0], pool_attrs["stride"][0]
    return (pool_attrs["padding"][0] == 0 and (pool_out_shape[1] - 1) * psh + pkh <= ho
            and 4 * co * ho * wo >= config.CONV_POOL_BAND_MIN_BYTES)


def input_extent(plan):
    """(rows, columns) of the input a conv of plan reads, padding included: its padded copy's
    size, widened so that a row's 6-pixel tile stays inside where the row has fewer."""
    kh, kw, sh, sw, dh, dw, ho, wo = (int(plan[i]) for i in (KH, KW, SH, SW, DH, DW, HO, WO))
    return sh * (ho - 1) + (kh - 1) * dh + 1, sw * (max(wo, ROWS) - 1) + (kw - 1) * dw + 1


def reads_in_place(in_shape, plan):
    """Whether the conv can read its input where it lies: no padding, and rows of at least
    one tile."""
    rows, cols = input_extent(plan)
    return plan[PT] == 0 and plan[PL] == 0 and plan[WO] >= ROWS and rows <= in_shape[1] and cols <= in_shape[2]


@njit(cache=True, nogil=True, boundscheck=False)
def pad_input(x, pt, pl, out):
    """out (C, Hp, Wp) = x (C, H, W) at row pt, column pl, zeros around (cut where out is
    smaller)."""
    out[:] = 0.0
    h, w = min(x.shape[1], out.shape[1] - pt), min(x.shape[2], out.shape[2] - pl)
    for c in range(x.shape[0]):
        for y in range(h):
            out[c, pt + y, pl:pl + w] = x[c, y, :w]


@njit(cache=True, nogil=True, boundscheck=False)
def stem_input(x, plan, x_pad, in_place):
    """A sample x (C, H, W) as conv_rows reads it: x itself where the conv reads in place
    (reads_in_place), else its padded copy in x_pad."""
    if in_place:
        return x
    pad_input(x, plan[PT], plan[PL], x_pad)
    return x_pad


def lane_taps(c_in, plan, in_shape):
    """taps[(c*kh + a)*kw + b]: where tap (c, a, b) of output (0, 0) lies in the flat input of
    in_shape (C, H, W), as tile_lanes reads it."""
    kh, kw, dh, dw = (int(plan[i]) for i in (KH, KW, DH, DW))
    h, w = in_shape[1], in_shape[2]
    return np.array([(c * h + a * dh) * w + b * dw for c in range(c_in) for a in range(kh) for b in range(kw)],
                    np.int64)


def pack_lanes(w2, bias):
    """(weights, bias) as tile_lanes reads them: w2 (C_out, K) as blocks of 16 channels,
    out[(t*K + l)*16 + c] = w2[16t + c, l], and the bias, zeros past C_out."""
    co, k = w2.shape
    tiles = -(-co // LANES)
    w = np.zeros((tiles * LANES, k), np.float32)
    w[:co] = w2
    b = np.zeros(tiles * LANES, np.float32)
    b[:co] = bias
    return np.ascontiguousarray(w.reshape(tiles, LANES, k).transpose(0, 2, 1)).reshape(-1), b


@njit(cache=True, nogil=True, boundscheck=False)
def conv_rows(xin, w_lanes, taps, bias, relu, sh, sw, wo, r0, r1, band, at):
    """Conv rows [r0, r1) of xin (C_in, H, W, read from row r0*sh and column 0; taps from
    lane_taps) into band from float `at` on, channels last: row y, pixel x, channel c at
    at + ((y - r0)*wo + x)*C + c, C = len(bias). Where wo < 6 a row's tile writes into the
    next rows (computed after it) and past the last (the band's slack)."""
    cp, k = bias.shape[0], taps.shape[0]
    w = xin.shape[2]
    x_flat = xin.reshape(xin.size)
    groups = (wo + ROWS - 1) // ROWS
    for y in range(r0, r1):
        for g in range(groups):
            ox = max(0, min(g * ROWS, wo - ROWS))  # a row's last tile overlaps the one before
            dst = at + ((y - r0) * wo + ox) * cp
            src = y * sh * w + ox * sw
            for t in range(cp // LANES):
                tile_lanes(band, cp, dst + t * LANES, x_flat, src, taps, k, sw, w_lanes, t * k * LANES, bias,
                           t * LANES, relu)


@njit(cache=True, nogil=True, boundscheck=False)
def pool_rows(band, wo, cp, pool_plan, p0, p1, out, vert, horiz):
    """out[:, p] for pool rows p in [p0, p1): the max over each window of band, which holds
    conv rows from p0 * stride on as conv_rows wrote them; columns past the row's ends count
    for nothing. vert (wo*cp) and horiz (PW*cp floats) are scratch."""
    pkh, pkw, psh, psw, ppl = pool_plan[PKH], pool_plan[PKW], pool_plan[PSH], pool_plan[PSW], pool_plan[PPL]
    co, pw = out.shape[0], out.shape[2]
    row, ucp = np.uint64(wo * cp), np.uint64(cp)
    flat, plane = out.reshape(out.size), out.shape[1] * pw
    lo, hi = valid_range(ppl, 0, psw, wo - pkw + 1, pw)  # windows wholly inside the row
    for p in range(p0, p1):
        first = np.uint64((p - p0) * psh) * row
        window_max(band, first, row, pkh, row, 1, row, vert, np.uint64(0))
        # the windows wholly inside the row in one call, those over its ends one by one
        window_max(vert, np.uint64(lo * psw - ppl) * ucp, ucp, pkw, ucp, hi - lo, np.uint64(psw) * ucp, horiz,
                   np.uint64(lo) * ucp)
        for j in range(pw):
            if lo <= j < hi:
                continue
            t0 = max(0, ppl - j * psw)
            t1 = max(t0, min(pkw, wo + ppl - j * psw))  # the window's columns inside the row
            window_max(vert, np.uint64(j * psw - ppl + t0) * ucp, ucp, t1 - t0, ucp, 1, ucp, horiz,
                       np.uint64(j) * ucp)
        channels_first(horiz, cp, co, pw, flat, p * pw, plane)


@njit(cache=True, nogil=True, boundscheck=False)
def channels_first(src, cp, co, n, dst, at, plane):
    """dst[at + c*plane + j] = src[j*cp + c] for c < co, j < n: a channels-last row back to
    channels first, in 8 x 8 blocks transposed in registers (a scalar loop took 95 µs of
    conv1's pool, the blocks about 20). Where co or n is not a multiple of 8, the last
    block along it overlaps the one before and writes some values twice (the same ones):
    a scalar loop over SqueezeNet's 7 pixels past 48 took as long as the 48 (conv1's 55
    pool rows: 90 against 43 µs; bench/README.md, eighteenth session)."""
    if co < 8 or n < 8:
        for c in range(co):
            for j in range(n):
                dst[at + c * plane + j] = src[j * cp + c]
        return
    for cb in range(0, co, 8):
        c0 = min(cb, co - 8)
        for jb in range(0, n, 8):
            j0 = min(jb, n - 8)
            transpose8(src, j0 * cp + c0, cp, dst, at + c0 * plane + j0, plane)


@njit(cache=True, nogil=True, boundscheck=False)
def window_max(src, first, step, taps, n, windows, stride, dst, at):
    """dst[at + w*n + k] = max over t < taps of src[first + w*stride + t*step + k], for
    w < windows and k < n (-inf where taps is 0). Each tap count below 4 has loops of its
    own: a running max through dst kept LLVM from vectorising (0.67 ms for conv1's
    vertical pass, 0.075 ms fused), and a call per window cost 0.08 ms more."""
    for w in range(windows):
        s0 = first + np.uint64(w) * stride
        d = at + np.uint64(w) * n
        if taps == 3:
            s1, s2 = s0 + step, s0 + step + step
            for k in range(n):
                dst[d + k] = fmax(fmax(src[s0 + k], src[s1 + k]), src[s2 + k])
        elif taps == 2:
            s1 = s0 + step
            for k in range(n):
                dst[d + k] = fmax(src[s0 + k], src[s1 + k])
        elif taps == 1:
            for k in range(n):
                dst[d + k] = src[s0 + k]
        elif taps <= 0:
            for k in range(n):
                dst[d + k] = -np.inf
        else:
            for k in range(n):
                m = src[s0 + k]
                for t in range(1, taps):
                    m = fmax(m, src[s0 + np.uint64(t) * step + k])
                dst[d + k] = m


@njit(cache=True, nogil=True, boundscheck=False)
def conv_pool_rows(xin, w_lanes, taps, bias, relu, plan, pool_plan, band, out, p_start, p_stop):
    """Pool rows p_start:p_stop of out (C_out, PH, PW), the max pool of the conv of one
    sample (xin: the input as conv_rows reads it; the conv plan `plan`, weights and bias
    from pack_lanes), then the ReLU where `relu`. band holds the conv rows a band of pool
    rows reads, channels last, plus one tile's slack. Calls on disjoint rows with their own
    band can run at once."""
    sh, sw, wo = plan[SH], plan[SW], plan[WO]
    pkh, psh, per_band = pool_plan[PKH], pool_plan[PSH], pool_plan[BAND]
    cp = bias.shape[0]
    row = wo * cp
    vert = np.empty(row, np.float32)
    horiz = np.empty(out.shape[2] * cp, np.float32)
    held_lo, held_hi = 0, 0  # conv rows the band holds, from its row 0
    for p0 in range(p_start, p_stop, per_band):
        p1 = min(p_stop, p0 + per_band)
        lo, hi = p0 * psh, (p1 - 1) * psh + pkh  # conv rows this band's pool rows read
        keep = max(0, held_hi - lo)
        if keep > 0:  # the overlap: move those rows to the front
            move_floats(band, 0, (lo - held_lo) * row, keep * row)
        conv_rows(xin, w_lanes, taps, bias, relu, sh, sw, wo, lo + keep, hi, band, keep * row)
        pool_rows(band, wo, cp, pool_plan, p0, p1, out, vert, horiz)
        held_lo, held_hi = lo, hi


@njit(cache=True, nogil=True)
def first_half(pool_rows):
    """Pool rows in the first of a sample's two halves."""
    return (pool_rows + 1) // 2


@njit(cache=True, nogil=True, boundscheck=False)
def conv_pool_bands(x, w_lanes, taps, bias, relu, plan, pool_plan, x_pad, in_place, band, out):
    """out (N, C_out, PH, PW): conv_pool_rows over each sample's pool rows (x (N, C, H, W)
    read in place, else through x_pad), as two halves one after the other where pool_plan
    says so (as two threads run them for a batch of one, ConvPoolKernel)."""
    mid = first_half(out.shape[2]) if pool_plan[HALVES] != 0 else out.shape[2]
    for s in range(x.shape[0]):
        xin = stem_input(x[s], plan, x_pad, in_place)
        conv_pool_rows(xin, w_lanes, taps, bias, relu, plan, pool_plan, band, out[s], 0, mid)
        conv_pool_rows(xin, w_lanes, taps, bias, relu, plan, pool_plan, band, out[s], mid, out.shape[2])


class ConvPoolKernel(CpuKernel):
    """A Conv2d kernel and the MaxPool2d kernel that alone reads it, run as one step (the
    conv's): in bands (conv_pool_bands) where the input has every channel live, else the
    two kernels one after the other. `banded` switches the bands off (bench/ab_flag.py
    banded).

    Where the session runs on two or more threads (`set_halves`), each sample's pool rows
    are computed as two halves, each from its own first band, so that a batch of one given
    a PairThread runs the halves on two threads at once with the bits they have one after
    the other, in a batch."""

    banded = True

    def __init__(self, node, conv, pool):
        super().__init__(node, conv.attrs, conv.in_shapes, pool.out_shape)
        self.conv, self.pool = conv, pool
        a = pool.attrs
        (pkh, pkw), (psh, psw), wo = a["kernel_size"], a["stride"], conv.out_shape[2]
        per_band = max(1, round(config.CONV_POOL_BAND_PIXELS / (psh * wo)))
        self.pool_plan = np.array([pkh, pkw, psh, psw, a["padding"][1], per_band, True], np.int64)
        self.w_lanes, self.bias_lanes = pack_lanes(conv.w2, conv.bias)
        in_shape, plan = conv.in_shapes[0], conv.conv_plan
        self.in_place = reads_in_place(in_shape, plan)
        # the padded copy of a sample (stem_input); a stand-in, never read, where the conv reads in place
        self.x_pad = np.zeros((1, 1, 1) if self.in_place else (in_shape[0], *input_extent(plan)), np.float32)
        self.taps = lane_taps(in_shape[0], plan, in_shape if self.in_place else self.x_pad.shape)
        rows = (per_band - 1) * psh + pkh
        cp = self.bias_lanes.shape[0]
        self.band = np.empty((rows * wo + ROWS) * cp, np.float32)  # + a tile's slack (conv_rows)
        self._second_band = None  # the pair's half's band, made on first need

    def set_halves(self, on):
        """Compute each sample's pool rows as two halves (on) or in one pass, and let the
        conv cut its GEMMs likewise (its fallback path)."""
        self.pool_plan[HALVES] = bool(on)
        self.conv.set_cuts(on)

    # The conv's work buffers serve its fallback path (plan._shared_workspace).
    @property
    def groups(self):
        return self.conv.groups

    def workspace_sizes(self):
        return self.conv.workspace_sizes()

    def use_workspace(self, cols, w, y):
        self.conv.use_workspace(cols, w, y)

    def run(self, xs, ctx):
        x = xs[0]
        if not (self.banded and x.live is None and x.data.flags.c_contiguous):
            return self.pool.run([self.conv.run(xs, ctx)], ctx)
        out = np.empty((x.data.shape[0], *self.out_shape), np.float32)
        for f, args in self._calls(x.data, out, ctx.pair):
            f(*args)
        return Act(out, None)

    def bind(self, xs, phase, store, pair=None):
        """run()'s calls into a kept output (CpuKernel.bind), where run() takes them."""
        x = xs[0]
        if not (self.banded and x.live is None and x.data.flags.c_contiguous):
            return None
        out = kept(store, "out", (x.data.shape[0], *self.out_shape))
        return self._calls(x.data, out, pair), Act(out, None)

    def _calls(self, data, out, pair):
        """The compiled calls that run the stem on data into out: in bands; or, for a batch
        of one with `pair` where the pool rows go in halves, the padded copy of the input
        (where the conv does not read it in place) and then both halves on both threads."""
        plan = self.conv.conv_plan
        weights = (self.w_lanes, self.taps, self.bias_lanes, self.conv.fused_relu, plan, self.pool_plan)
        if not (data.shape[0] == 1 and pair is not None and self.pool_plan[HALVES]):
            return ((conv_pool_bands, (data, *weights, self.x_pad, self.in_place, self.band, out)),)
        if self._second_band is None:
            self._second_band = np.empty_like(self.band)
        calls = [] if self.in_place else [(stem_input, (data[0], plan, self.x_pad, False))]
        xin = data[0] if self.in_place else self.x_pad
        ph = self.out_shape[1]
        calls.append((pair.stem_halves, (xin, *weights, self.band, self._second_band, out[0], first_half(ph), ph)))
        return tuple(calls)

    def macs(self, xs, y):
        """The conv's MACs: the pool has none."""
        return self.conv.macs(xs, Act(None, None))
