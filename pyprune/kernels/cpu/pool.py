"""CPU pooling kernels. Dead channels are not read: their output is written as 0.0."""

import numpy as np
from numba import njit

from .base import Act, CpuKernel, kept
from .window import valid_range


@njit(cache=True, nogil=True)
def fmax(a, b):
    """max as a compare-and-select, which LLVM vectorises (the max builtin stays scalar).
    Inputs are NaN-free: sessions reject NaN inputs and files with NaN weights."""
    return a if a > b else b


@njit(cache=True, nogil=True, boundscheck=False)
def plane_max(plane, lanes):
    """Max of a flat plane, kept in 16 running lanes (`lanes`, a scratch of 16) so that the
    loop vectorises: a single running max is a serial chain (4.7x slower on 64 x 3025)."""
    n = plane.shape[0]
    for lane in range(16):
        lanes[lane] = plane[0]
    k = 0
    while k + 16 <= n:
        for lane in range(16):
            lanes[lane] = fmax(lanes[lane], plane[k + lane])
        k += 16
    m = plane[0]
    for lane in range(16):
        m = fmax(m, lanes[lane])
    for j in range(k, n):
        m = fmax(m, plane[j])
    return m


@njit(cache=True, nogil=True, boundscheck=False)
def rows_max(src, ya, yb, tmp):
    """tmp = element-wise max of rows ya..yb-1 of the plane src."""
    w = src.shape[1]
    first = src[ya]
    for k in range(w):  # not tmp[:] = ...: Numba's slice assignment costs ~50 ns a call
        tmp[k] = first[k]
    for iy in range(ya + 1, yb):
        r = src[iy]
        for k in range(w):
            tmp[k] = fmax(tmp[k], r[k])


@njit(cache=True, nogil=True, boundscheck=False)
def edge_windows(src, plane, kh, kw, sh, sw, pt, pl, ylo, yhi, lo, hi):
    """Outputs outside rows [ylo, yhi) x columns [lo, hi), whose windows hang over the
    padding, straight from src."""
    h, w = src.shape
    ho, wo = plane.shape
    for oy in range(ho):
        y0 = oy * sh - pt
        for ox in range(wo):
            if ylo <= oy < yhi and lo <= ox < hi:
                continue
            x0 = ox * sw - pl
            m = -np.inf
            for iy in range(max(y0, 0), min(y0 + kh, h)):
                for ix in range(max(x0, 0), min(x0 + kw, w)):
                    m = fmax(m, src[iy, ix])
            plane[oy, ox] = m


@njit(cache=True, nogil=True, boundscheck=False)
def max_pool(x, live, kh, kw, sh, sw, pt, pl, out):
    """Separable: a vertical max of the window's rows into tmp, then a horizontal max over
    kw taps. Shaped for LLVM's vectoriser (2-4x faster than scalar code on SqueezeNet's
    pools): whole-row loops over x and out indexed flat at unsigned offsets (signed ones
    such as `dst[lo + k]` kept Numba's negative-index check in the loop: 0.58-0.76x of
    that on SqueezeNet's pools), a literal stride for the common 3x3/2 and 2x2/2, and
    edge windows out of line, because even untaken branches in the row loop cost as much
    as the row's work. x and out must be C-contiguous."""
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    lo, hi = valid_range(pl, 0, sw, w - kw + 1, wo)
    ylo, yhi = valid_range(pt, 0, sh, h - kh + 1, ho)
    tmp = np.empty(w, np.float32)
    src_flat, dst_flat = x.reshape(x.size), out.reshape(out.size)
    uw, uwo, usw = np.uint64(w), np.uint64(wo), np.uint64(sw)
    plane_in, plane_out = np.uint64(h * w), np.uint64(ho * wo)
    first, count, ulo = np.uint64(lo * sw - pl), np.uint64(hi - lo), np.uint64(lo)  # interior columns
    one, two = np.uint64(1), np.uint64(2)
    for s in range(n):
        for ch in range(c):
            plane = np.uint64(s * c + ch)
            o0, i0 = plane * plane_out, plane * plane_in
            if not live[s, ch]:
                for k in range(plane_out):
                    dst_flat[o0 + k] = 0.0
                continue
            src = x[s, ch]
            for oy in range(ho):
                y0 = oy * sh - pt
                if kh == 3 and ylo <= oy < yhi:
                    ra = i0 + np.uint64(y0) * uw
                    rb = ra + uw
                    rc = rb + uw
                    for k in range(uw):
                        tmp[k] = fmax(fmax(src_flat[ra + k], src_flat[rb + k]), src_flat[rc + k])
                else:
                    rows_max(src, max(y0, 0), min(y0 + kh, h), tmp)
                d = o0 + np.uint64(oy) * uwo + ulo
                if sw == 2 and kw == 3:
                    for k in range(count):
                        j = first + two * k
                        dst_flat[d + k] = fmax(fmax(tmp[j], tmp[j + one]), tmp[j + two])
                elif sw == 2 and kw == 2:
                    for k in range(count):
                        j = first + two * k
                        dst_flat[d + k] = fmax(tmp[j], tmp[j + one])
                else:
                    for k in range(count):
                        j = first + usw * k
                        m = tmp[j]
                        for t in range(1, kw):
                            m = fmax(m, tmp[j + np.uint64(t)])
                        dst_flat[d + k] = m
            if lo > 0 or hi < wo:
                edge_windows(src, out[s, ch], kh, kw, sh, sw, pt, pl, 0, ho, lo, hi)


# max_pool_3x3s2 pays on rows of up to 27 outputs (0.72-0.89x max_pool); on rows of 55
# (64 planes of 111 x 111) it took 1.13-1.23x, its extra copy then outweighing the loop
# entries it saves.
FLAT_POOL_MAX_WIDTH = 32


@njit(cache=True, nogil=True, boundscheck=False)
def max_pool_3x3s2(x, live, pt, pl, out):
    """3 x 3, stride 2 (SqueezeNet's, AlexNet's, ResNet's stem pool): separable as max_pool,
    but each plane's horizontal pass is one loop over all its interior rows. The vertical
    maxima go into rows of an even width, one column wider than the windows need, so
    that output m of the flat loop reads tmp[2m .. 2m + 2] across row ends too; each
    row's extra output is dropped as the rows are copied out. A loop of 13 or 27 outputs
    per row spent most of its time entering and leaving the vector loop: 0.72-0.73x
    max_pool's time on 256 planes of 27 x 27, 0.77-0.89x on 128 of 55 x 55, warm and
    flushed (bench/README.md, seventeenth session; FLAT_POOL_MAX_WIDTH says where it
    runs). x and out must be C-contiguous."""
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    lo, hi = valid_range(pl, 0, 2, w - 2, wo)
    ylo, yhi = valid_range(pt, 0, 2, h - 2, ho)
    rows, count = yhi - ylo, hi - lo
    if count == 0:  # no interior column: the edge windows are every output
        rows = 0
    half = count + 1              # outputs per row of the flat loop, the last one dropped
    width = 2 * half              # tmp's row stride; a row holds 2*count + 1 vertical maxima
    tmp = np.empty(rows * width + 2, np.float32)
    res = np.empty(rows * half, np.float32)
    src_flat, dst_flat = x.reshape(x.size), out.reshape(out.size)
    uw, uwo, uwidth, uhalf = np.uint64(w), np.uint64(wo), np.uint64(width), np.uint64(half)
    first, ulo, ucount = np.uint64(2 * lo - pl), np.uint64(lo), np.uint64(count)
    cols = np.uint64(2 * count + 1)
    one, two = np.uint64(1), np.uint64(2)
    for s in range(n):
        for ch in range(c):
            plane = np.uint64(s * c + ch)
            o0, i0 = plane * np.uint64(ho * wo), plane * np.uint64(h * w)
            if not live[s, ch]:
                for k in range(ho * wo):
                    dst_flat[o0 + np.uint64(k)] = 0.0
                continue
            for r in range(rows):
                ra = i0 + np.uint64(2 * (ylo + r) - pt) * uw + first
                rb = ra + uw
                rc = rb + uw
                t0 = np.uint64(r) * uwidth
                for k in range(cols):
                    tmp[t0 + k] = fmax(fmax(src_flat[ra + k], src_flat[rb + k]), src_flat[rc + k])
            for m in range(np.uint64(rows * half)):
                j = two * m
                res[m] = fmax(fmax(tmp[j], tmp[j + one]), tmp[j + two])
            for r in range(rows):
                d = o0 + np.uint64(ylo + r) * uwo + ulo
                e = np.uint64(r) * uhalf
                for k in range(ucount):
                    dst_flat[d + k] = res[e + k]
            if ylo > 0 or yhi < ho or lo > 0 or hi < wo:
                edge_windows(x[s, ch], out[s, ch], 3, 3, 2, 2, pt, pl, ylo, yhi, lo, hi)


@njit(cache=True, nogil=True, boundscheck=False)
def max_pool_2x2s2(x, live, pt, pl, out):
    """2 x 2, stride 2 (LeNet/VGG-style nets): each interior output straight from its four
    inputs, 1.5x faster than the separable kernel on MNIST's planes (the same direct form
    was slower for 3 x 3 / 2, which stays separable)."""
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    lo, hi = valid_range(pl, 0, 2, w - 1, wo)
    ylo, yhi = valid_range(pt, 0, 2, h - 1, ho)
    for s in range(n):
        for ch in range(c):
            plane = out[s, ch]
            if not live[s, ch]:
                plane[:, :] = 0.0
                continue
            src = x[s, ch]
            for oy in range(ylo, yhi):
                r0, r1, dst = src[2 * oy - pt], src[2 * oy - pt + 1], plane[oy]
                a0, a1, mid = r0[2 * lo - pl:], r1[2 * lo - pl:], dst[lo:]
                for k in range(hi - lo):
                    mid[k] = fmax(fmax(a0[2 * k], a0[2 * k + 1]), fmax(a1[2 * k], a1[2 * k + 1]))
            if ylo > 0 or yhi < ho or lo > 0 or hi < wo:
                edge_windows(src, plane, 2, 2, 2, 2, pt, pl, ylo, yhi, lo, hi)


@njit(cache=True, nogil=True, boundscheck=False)
def avg_pool(x, live, kh, kw, sh, sw, pt, pl, pb, pr, count_include_pad, out):
    """Separable sums like max_pool; count_include_pad divides by the window clipped to the
    padded input (PyTorch rule), otherwise by the number of input elements in it."""
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    scale = np.empty((ho, wo), np.float32)
    for oy in range(ho):
        y0 = oy * sh - pt
        for ox in range(wo):
            x0 = ox * sw - pl
            if count_include_pad:
                count = (min(y0 + kh, h + pb) - y0) * (min(x0 + kw, w + pr) - x0)
            else:
                count = (min(y0 + kh, h) - max(y0, 0)) * (min(x0 + kw, w) - max(x0, 0))
            scale[oy, ox] = 1.0 / count
    tmp = np.empty(w, np.float32)
    for s in range(n):
        for ch in range(c):
            plane = out[s, ch]
            plane[:, :] = 0.0
            if not live[s, ch]:
                continue
            src = x[s, ch]
            for oy in range(ho):
                y0 = oy * sh - pt
                tmp[:] = 0.0
                for iy in range(max(y0, 0), min(y0 + kh, h)):
                    row = src[iy]
                    for k in range(w):
                        tmp[k] += row[k]
                dst = plane[oy]
                for j in range(kw):
                    xlo, xhi = valid_range(pl, j, sw, w, wo)
                    count, first, step = np.uint64(xhi - xlo), np.uint64(xlo * sw - pl + j), np.uint64(sw)
                    seg = dst[xlo:]
                    for k in range(count):
                        seg[k] += tmp[first + k * step]
                for ox in range(wo):
                    dst[ox] *= scale[oy, ox]


@njit(cache=True, nogil=True, boundscheck=False)
def add_bias_relu(out, live, bias, relu):
    """The epilogue of the conv before this pool (ConvKernel.hand_epilogue_to_pool) on out
    viewed as (N, C, H*W): max commutes with adding a channel's bias and with ReLU. Dead
    channels stay 0."""
    n, c = out.shape[0], out.shape[1]
    for s in range(n):
        for ch in range(c):
            if not live[s, ch]:
                continue
            plane, b = out[s, ch], bias[ch]
            if relu:
                for k in range(plane.shape[0]):
                    v = plane[k] + b
                    plane[k] = v if v > 0.0 else 0.0
            else:
                for k in range(plane.shape[0]):
                    plane[k] += b


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc"}, inline="always")
def plane_pool(plane, use_max, lanes):
    """Max or mean of a flat plane (lanes: plane_max's scratch of 16). The mean sums in
    float64, so letting LLVM reorder (vectorise) the sum costs no accuracy that float32
    would notice (7x faster than the sequential sum on 1000 x 13 x 13). Inlined, it takes
    its caller's fastmath flags: callers must allow "reassoc". As a call of its own it
    made global_pool 2.9x slower on 1000 x 13 x 13."""
    if use_max:
        return plane_max(plane, lanes)
    acc = 0.0
    for k in range(plane.shape[0]):
        acc += plane[k]
    return acc / plane.shape[0]


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc"})
def global_pool(x, live, use_max, out):
    """Max or mean (plane_pool) of each plane of x viewed as (N, C, H*W); dead channels 0."""
    n, c = x.shape[0], x.shape[1]
    lanes = np.empty(16, np.float32)
    for s in range(n):
        for ch in range(c):
            out[s, ch] = plane_pool(x[s, ch], use_max, lanes) if live[s, ch] else 0.0


def pair_halves(n, c, pair):
    """Whether a pool of n samples of c channels runs as two halves of its channels on
    `pair`'s two threads (a PairThread, or None): a batch of one, where the helper serves
    (SqueezeNet's pool4, pool6 and its global pool: 4-6% of a gated run at 2 threads,
    twenty-fourth session)."""
    return pair is not None and n == 1 and c >= 2


def channel_halves(arrays):
    """(first, second): arrays (N = 1, C, ...) cut at channel C // 2, each half C-contiguous."""
    mid = arrays[0].shape[1] // 2
    return tuple(a[:, :mid] for a in arrays), tuple(a[:, mid:] for a in arrays)


class PoolKernel(CpuKernel):
    """Max and average pooling. `epilogue` (bias, relu), set by the plan on a max pool that
    alone reads a conv's output, finishes that conv's work on the pooled tensor."""

    epilogue = None

    def run(self, xs, ctx):
        x = xs[0]
        out = np.empty((x.data.shape[0], *self.out_shape), np.float32)
        for f, args in self._calls(x, out, ctx.pair):
            f(*args)
        return Act(out, x.live)

    def bind(self, xs, phase, store, pair=None):
        """run()'s calls into a kept output (CpuKernel.bind)."""
        x = xs[0]
        if not x.data.flags.c_contiguous:
            return None
        out = kept(store, "out", (x.data.shape[0], *self.out_shape))
        return self._calls(x, out, pair), Act(out, x.live)

    def _calls(self, x, out, pair=None):
        """The compiled calls that pool x into out: the pool (a 3 x 3 / 2 max pool of a
        batch of one on both threads where `pair`, a PairThread, is given), then the
        epilogue if any."""
        n, c = x.data.shape[:2]
        live = self.live_of(x)
        a = self.attrs
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = a["kernel_size"], a["stride"], a["padding"]
        if "count_include_pad" in a:
            calls = [(avg_pool, (x.data, live, kh, kw, sh, sw, pt, pl, pb, pr, a["count_include_pad"], out))]
        elif (kh, kw, sh, sw) == (2, 2, 2, 2):
            calls = [(max_pool_2x2s2, (x.data, live, pt, pl, out))]
        elif (kh, kw, sh, sw) == (3, 3, 2, 2) and self.out_shape[2] <= FLAT_POOL_MAX_WIDTH:
            data = np.ascontiguousarray(x.data)
            if pair_halves(n, c, pair):
                first, second = channel_halves((data, live, out))
                calls = [(pair.max_pool_halves, (first, second, pt, pl))]
            else:
                calls = [(max_pool_3x3s2, (data, live, pt, pl, out))]
        else:
            calls = [(max_pool, (np.ascontiguousarray(x.data), live, kh, kw, sh, sw, pt, pl, out))]
        if self.epilogue is not None:
            calls.append((add_bias_relu, (out.reshape(n, c, -1), live, *self.epilogue)))
        return tuple(calls)


class GlobalPoolKernel(CpuKernel):
    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        self.use_max = node.op == "GlobalMaxPool"

    def run(self, xs, ctx):
        x = xs[0]
        n, c = x.data.shape[:2]
        out = np.empty((n, c), np.float32)
        for f, args in self._calls(x, out, ctx.pair):
            f(*args)
        return Act(out.reshape(n, c, 1, 1), x.live)

    def bind(self, xs, phase, store, pair=None):
        """global_pool into a kept output (CpuKernel.bind)."""
        x = xs[0]
        n, c = x.data.shape[:2]
        out = kept(store, "out", (n, c))
        return self._calls(x, out, pair), Act(out.reshape(n, c, 1, 1), x.live)

    def _calls(self, x, out, pair):
        """global_pool of x into out (N, C), for a batch of one on both threads where
        `pair` is given."""
        n, c = x.data.shape[:2]
        args = (np.ascontiguousarray(x.data).reshape(n, c, -1), self.live_of(x), out)
        if pair_halves(n, c, pair):
            return ((pair.global_pool_halves, (*channel_halves(args), self.use_max)),)
        return ((global_pool, (args[0], args[1], self.use_max, out)),)
