"""A dense conv whose output only a max pool reads (SqueezeNet's stem), computed in bands
of a few output rows that the pool consumes at once: plan.py fuses the two where
`banded_fits` allows.

Why bands: SqueezeNet's conv1 writes 3.15 MB, more than this machine's 2 MB L2, and pool1
then reads it back from L3. In bands of about 400 output pixels each band's GEMM output
stays in cache for the pool, and OpenBLAS runs the narrow GEMMs faster as well (conv1's
GEMM: 364-376 us in bands of 111-444 pixels against 497-741 us whole). The conv row two
bands share moves to the front of the band buffer instead of being computed twice.

Why phases: a pool of stride s reads every s-th column, and LLVM leaves such strided
loads scalar (the separable max_pool spent 0.28-0.57 ms on conv1's bands). So each conv row
is stored as s phases, columns o = r, r + s, r + 2s, ... in phase r (`im2col_phased` orders
the GEMM's columns that way; the conv output is never seen in any other form). Window tap
t of pool column j then lies at j + a constant in one phase, and the pool's loops run over
contiguous memory: 0.13-0.18 ms for conv1's bands, with the bias and ReLU (max commutes
with both) applied as each pooled row is stored.
"""

import numpy as np
from numba import njit

from ... import config
from .base import Act, CpuKernel
from .blas import sgemm
from .conv_gemm import DH, DW, KH, KW, PL, PT, SH, SW, WO
from .pool import fmax
from .window import valid_range

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


@njit(cache=True, nogil=True)
def phase_length(conv_width, pool_stride):
    """Columns per phase of a conv row stored in pool-stride phases (the first phase is the
    longest); a row then takes pool_stride * phase_length floats."""
    return -(-conv_width // pool_stride)


@njit(cache=True, nogil=True, boundscheck=False)
def im2col_phased(x, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, psw, plen, cols):
    """im2col of every channel of x (C, H, W) with each output row's columns in psw phases:
    cols[(c*kh + i)*kw + j, oy*psw*plen + (ox % psw)*plen + ox // psw] =
    x[c, oy*sh - pt + i*dh, ox*sw - pl + j*dw], 0 in the padding and in the unused tail of
    short phases. Unsigned offsets, as in im2col: signed ones keep Numba's wraparound
    checks, which stop LLVM from vectorising."""
    h, w = x.shape[1], x.shape[2]
    row = np.uint64(psw * plen)
    uplen = np.uint64(plen)
    for c in range(x.shape[0]):
        src = x[c]
        for i in range(kh):
            ylo, yhi = valid_range(pt, i * dh, sh, h, ho)
            for j in range(kw):
                dst = cols[(c * kh + i) * kw + j]
                for k in range(np.uint64(ylo) * row):
                    dst[k] = 0.0
                for k in range(np.uint64(yhi) * row, np.uint64(ho) * row):
                    dst[k] = 0.0
                step = np.uint64(psw * sw)
                for r in range(psw):
                    count = (wo - r + psw - 1) // psw
                    mlo, mhi = valid_range(pl - r * sw, j * dw, psw * sw, w, count)
                    umlo, umhi = np.uint64(mlo), np.uint64(mhi)
                    first = np.uint64(r * sw - pl + j * dw + mlo * psw * sw)
                    for oy in range(ylo, yhi):
                        base = np.uint64(oy) * row + np.uint64(r * plen)
                        line = src[oy * sh - pt + i * dh]
                        for m in range(umlo):
                            dst[base + m] = 0.0
                        for m in range(umhi, uplen):
                            dst[base + m] = 0.0
                        seg = base + umlo
                        for m in range(umhi - umlo):
                            dst[seg + m] = line[first + m * step]


@njit(cache=True, nogil=True, boundscheck=False)
def pool_phased_rows(band, row, wo, plen, pool_plan, bias, relu, p0, p1, out, tmp, acc):
    """out[c, p] for pool rows p in [p0, p1) of band (C, rows * row), which holds conv rows
    from p0 * stride on in im2col_phased's column order: the max over each window, plus
    the bias, then the ReLU where `relu`. tmp and acc are scratch of row and PW floats.
    Interior windows here; those that hang over the padding or past the row's end in
    _edge_windows, out of these loops: even a call that never ran, inside them, made them
    1.6x slower."""
    pkh, pkw, psh, psw, ppl = pool_plan[PKH], pool_plan[PKW], pool_plan[PSH], pool_plan[PSW], pool_plan[PPL]
    pw = out.shape[2]
    lo, hi = valid_range(ppl, 0, psw, wo - pkw + 1, pw)  # windows wholly inside the row
    n, urow, ulo = np.uint64(hi - lo), np.uint64(row), np.uint64(lo)
    # where tap t of interior column j = lo + k lies in tmp: starts[t] + k
    starts = np.empty(pkw, np.uint64)
    for t in range(pkw):
        d = t - ppl
        starts[t] = np.uint64((d % psw) * plen + lo + d // psw)
    for c in range(band.shape[0]):
        src, b, dst_plane = band[c], bias[c], out[c]
        for p in range(p0, p1):
            # Each loop below runs over one short row, where the scalar remainder after the
            # vector body costs as much as the body: so the common 3-row, 3-column window
            # takes one fused loop each way, and `relu` picks between loops rather than
            # being tested inside one (a branch there kept LLVM from vectorising).
            r0 = np.uint64((p - p0) * psh) * urow
            if pkh == 3:
                r1 = r0 + urow
                r2 = r1 + urow
                for k in range(urow):
                    tmp[k] = fmax(fmax(src[r0 + k], src[r1 + k]), src[r2 + k])
            else:
                for k in range(urow):
                    tmp[k] = src[r0 + k]
                for i in range(1, pkh):
                    o = r0 + np.uint64(i) * urow
                    for k in range(urow):
                        tmp[k] = fmax(tmp[k], src[o + k])
            dst = dst_plane[p]
            if pkw == 3:
                s0, s1, s2 = starts[0], starts[1], starts[2]
                if relu:
                    for k in range(n):
                        dst[ulo + k] = fmax(fmax(fmax(tmp[s0 + k], tmp[s1 + k]), tmp[s2 + k]) + b, np.float32(0.0))
                else:
                    for k in range(n):
                        dst[ulo + k] = fmax(fmax(tmp[s0 + k], tmp[s1 + k]), tmp[s2 + k]) + b
            else:
                for k in range(n):
                    acc[k] = tmp[starts[0] + k]
                for t in range(1, pkw):
                    st = starts[t]
                    for k in range(n):
                        acc[k] = fmax(acc[k], tmp[st + k])
                for k in range(n):
                    v = acc[k] + b
                    dst[ulo + k] = fmax(v, np.float32(0.0)) if relu else v
    if hi - lo < pw:
        _edge_windows(band, row, wo, plen, pool_plan, bias, relu, lo, hi, p0, p1, out)


@njit(cache=True, nogil=True, boundscheck=False)
def _edge_windows(band, row, wo, plen, pool_plan, bias, relu, lo, hi, p0, p1, out):
    """pool_phased_rows' pooled columns outside [lo, hi), straight from the band."""
    pkh, pkw, psh, psw, ppl = pool_plan[PKH], pool_plan[PKW], pool_plan[PSH], pool_plan[PSW], pool_plan[PPL]
    for c in range(band.shape[0]):
        src = band[c]
        for p in range(p0, p1):
            for j in range(out.shape[2]):
                if lo <= j < hi:
                    continue
                m = -np.inf
                for i in range(pkh):
                    line = ((p - p0) * psh + i) * row
                    for t in range(pkw):
                        ox = j * psw - ppl + t
                        if 0 <= ox < wo:
                            m = fmax(m, src[line + (ox % psw) * plen + ox // psw])
                v = np.float32(m) + bias[c]
                out[c, p, j] = fmax(v, np.float32(0.0)) if relu else v


@njit(cache=True, nogil=True, boundscheck=False)
def conv_pool_rows(x, w2, bias, relu, plan, pool_plan, cols_buf, band_buf, out, p_start, p_stop):
    """Pool rows p_start:p_stop of out (C_out, PH, PW), the max pool of the conv of one
    sample x (C_in, H, W; every channel live; the conv plan `plan`, weights w2
    (C_out, C_in*kh*kw) and bias), then the ReLU where `relu`. band_buf holds
    (C_out, R * psw * plen) floats, R the conv rows a band of pool rows reads. Calls on
    disjoint rows with their own buffers can run at once."""
    kh, kw, sh, sw, pt, pl, dh, dw, wo = plan[KH], plan[KW], plan[SH], plan[SW], plan[PT], plan[PL], \
        plan[DH], plan[DW], plan[WO]
    pkh, psh, psw, per_band = pool_plan[PKH], pool_plan[PSH], pool_plan[PSW], pool_plan[BAND]
    co, k = w2.shape
    plen = phase_length(wo, psw)
    row = psw * plen
    rows = band_buf.shape[0] // (co * row)
    band = band_buf.reshape(co, rows * row)
    tmp = np.empty(row, np.float32)
    acc = np.empty(out.shape[2], np.float32)
    held_lo, held_hi = 0, 0  # conv rows the band holds, from its row 0
    for p0 in range(p_start, p_stop, per_band):
        p1 = min(p_stop, p0 + per_band)
        lo, hi = p0 * psh, (p1 - 1) * psh + pkh  # conv rows this band's pool rows read
        keep = max(0, held_hi - lo)
        if keep > 0:  # the overlap: move those rows to the front
            first = (lo - held_lo) * row
            for c in range(co):
                line = band[c]
                for j in range(keep * row):
                    line[j] = line[first + j]
        r0 = lo + keep
        npx = (hi - r0) * row
        cols = cols_buf[:k * npx].reshape(k, npx)
        im2col_phased(x, kh, kw, sh, sw, pt - r0 * sh, pl, dh, dw, hi - r0, wo, psw, plen, cols)
        sgemm(False, co, npx, k, w2, k, cols, npx, band[:, keep * row:], rows * row)
        pool_phased_rows(band, row, wo, plen, pool_plan, bias, relu, p0, p1, out, tmp, acc)
        held_lo, held_hi = lo, hi


@njit(cache=True, nogil=True)
def first_half(pool_rows):
    """Pool rows in the first of a sample's two halves."""
    return (pool_rows + 1) // 2


@njit(cache=True, nogil=True, boundscheck=False)
def conv_pool_bands(x, w2, bias, relu, plan, pool_plan, cols_buf, band_buf, out):
    """out (N, C_out, PH, PW): conv_pool_rows over each sample's pool rows, as two halves one
    after the other where pool_plan says so (as two threads run them for a batch of one,
    ConvPoolKernel)."""
    mid = first_half(out.shape[2]) if pool_plan[HALVES] != 0 else out.shape[2]
    for s in range(x.shape[0]):
        conv_pool_rows(x[s], w2, bias, relu, plan, pool_plan, cols_buf, band_buf, out[s], 0, mid)
        conv_pool_rows(x[s], w2, bias, relu, plan, pool_plan, cols_buf, band_buf, out[s], mid, out.shape[2])


class ConvPoolKernel(CpuKernel):
    """A Conv2d kernel and the MaxPool2d kernel that alone reads it, run as one step (the
    conv's): in bands (conv_pool_bands) where the input has every channel live and the
    conv can call sgemm from Numba, else the two kernels one after the other. `banded`
    switches the bands off (bench/ab_flag.py banded).

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
        rows = (per_band - 1) * psh + pkh
        row = psw * phase_length(wo, psw)
        co, k = conv.w2.shape
        self.band_buf = np.empty(co * rows * row, np.float32)
        self.cols_buf = np.empty(k * rows * row, np.float32)
        self._second_bufs = None  # (cols, band) buffers for the pair's half, made on first need

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
        if not (self.banded and x.live is None and self.conv.blas_in_numba and x.data.flags.c_contiguous):
            return self.pool.run([self.conv.run(xs, ctx)], ctx)
        out = np.empty((x.data.shape[0], *self.out_shape), np.float32)
        weights = (self.conv.w2, self.conv.bias, self.conv.fused_relu, self.conv.conv_plan, self.pool_plan)
        if x.data.shape[0] == 1 and ctx.pair is not None and self.pool_plan[HALVES]:
            if self._second_bufs is None:
                self._second_bufs = (np.empty_like(self.cols_buf), np.empty_like(self.band_buf))
            ph = self.out_shape[1]
            mid = first_half(ph)
            ctx.pair.run_both(conv_pool_rows, (x.data[0], *weights, self.cols_buf, self.band_buf, out[0], 0, mid),
                              (x.data[0], *weights, *self._second_bufs, out[0], mid, ph))
        else:
            conv_pool_bands(x.data, *weights, self.cols_buf, self.band_buf, out)
        return Act(out, None)

    def macs(self, xs, y):
        """The conv's MACs: the pool has none."""
        return self.conv.macs(xs, Act(None, None))
