"""The steps of a convolution as im2col + GEMM, per sample: live and active indices,
im2col (or the live channels of a 1x1 conv), the gathered weights, and the epilogue that
adds the bias (and a fused ReLU) and leaves inactive channels as exact zeros. Both conv
paths use them: one Numba call per conv (conv_gemm.py) and the Python path (conv.py)."""

import numpy as np
from numba import njit

from .window import valid_range


@njit(cache=True, nogil=True, boundscheck=False)
def im2col(x, live_idx, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols):
    """cols[(l*kh + i)*kw + j, oy*wo + ox] = x[live_idx[l], oy*sh - pt + i*dh, ox*sw - pl + j*dw],
    0 where that falls in the padding. Only live channels are read.

    Written for its per-row cost, which dominates on small planes: unsigned offsets (no
    wrap checks), plain loops rather than slice assignments and no row views inside the
    row loop (1.2-1.7x faster than that on SqueezeNet's and MNIST's 3 x 3 convs)."""
    h, w = x.shape[1], x.shape[2]
    uwo, uho = np.uint64(wo), np.uint64(ho)
    for li in range(live_idx.shape[0]):
        src = x[live_idx[li]]
        for i in range(kh):
            ylo, yhi = valid_range(pt, i * dh, sh, h, ho)
            for j in range(kw):
                dst = cols[(li * kh + i) * kw + j]
                xlo, xhi = valid_range(pl, j * dw, sw, w, wo)
                uxlo, uxhi = np.uint64(xlo), np.uint64(xhi)
                count, first, step = np.uint64(xhi - xlo), np.uint64(xlo * sw - pl + j * dw), np.uint64(sw)
                for k in range(np.uint64(ylo) * uwo):
                    dst[k] = 0.0
                for k in range(np.uint64(yhi) * uwo, uho * uwo):
                    dst[k] = 0.0
                for oy in range(ylo, yhi):
                    base, iy = np.uint64(oy) * uwo, np.uint64(oy * sh - pt + i * dh)
                    for k in range(uxlo):
                        dst[base + k] = 0.0
                    for k in range(uxhi, uwo):
                        dst[base + k] = 0.0
                    seg = base + uxlo
                    for k in range(count):
                        dst[seg + k] = src[iy, first + k * step]


@njit(cache=True, nogil=True, boundscheck=False)
def im2col_shifted(x, live_idx, kh, kw, pt, pl, ho, wo, cols):
    """im2col for stride 1, dilation 1 and an output as wide as the input ('same' convs):
    then each row of cols is the whole plane shifted by one flat offset, so it is one long
    copy plus zeroing the columns that fall off the row ends (which the flat copy fills
    from the neighbouring row). 1.4-2x faster than im2col on SqueezeNet's and MNIST's
    3 x 3 convs, whose short rows made im2col's per-row work dominate. x and cols are
    C-contiguous and indexed flat: a row view per row (two reference counts each) made
    it 1.15-1.25x slower on planes of 7 x 7 to 14 x 14."""
    h, w = x.shape[1], x.shape[2]
    n, plane = np.uint64(ho * wo), np.uint64(h * w)
    src, dst = x.reshape(x.size), cols.reshape(cols.size)
    for li in range(live_idx.shape[0]):
        s0 = np.uint64(live_idx[li]) * plane
        for i in range(kh):
            ylo, yhi = valid_range(pt, i, 1, h, ho)
            for j in range(kw):
                d0 = np.uint64((li * kh + i) * kw + j) * n
                xlo, xhi = valid_range(pl, j, 1, w, wo)
                off = (i - pt) * w + (j - pl)
                q0, q1 = max(ylo * wo, -off), min(yhi * wo, h * w - off)  # src stays in bounds
                q1 = max(q0, q1)
                for k in range(np.uint64(q0)):
                    dst[d0 + k] = 0.0
                head, first = d0 + np.uint64(q0), s0 + np.uint64(q0 + off)
                for k in range(np.uint64(q1 - q0)):
                    dst[head + k] = src[first + k]
                for k in range(np.uint64(q1), n):
                    dst[d0 + k] = 0.0
                if xlo > 0 or xhi < wo:
                    for oy in range(ylo, yhi):
                        b = d0 + np.uint64(oy * wo)
                        for ox in range(xlo):
                            dst[b + ox] = 0.0
                        for ox in range(xhi, wo):
                            dst[b + ox] = 0.0


@njit(cache=True, nogil=True, boundscheck=False)
def gather_weights(w2, kk, act_idx, live_idx, out):
    """out[i, l*kk + k] = w2[act_idx[i], live_idx[l]*kk + k]: the GEMM's left operand.
    Unsigned offsets and flat rows keep the copies free of wrap checks; 1x1 kernels
    (kk == 1) get a plain gather, 1.6-2.8x faster than the general loop of one-element copies.
    With every channel live a row is one copy (0.52x on MNIST's conv2: 20 rows of 288)."""
    ukk = np.uint64(kk)
    nl = live_idx.shape[0]
    all_live = nl * kk == w2.shape[1]
    for i in range(act_idx.shape[0]):
        src = w2[act_idx[i]]
        dst = out[i]
        if all_live:
            for k in range(src.shape[0]):
                dst[k] = src[k]
            continue
        if kk == 1:
            for li in range(nl):
                dst[li] = src[live_idx[li]]
            continue
        for li in range(nl):
            s0, d0 = np.uint64(live_idx[li]) * ukk, np.uint64(li) * ukk
            for k in range(ukk):
                dst[d0 + k] = src[s0 + k]


@njit(cache=True, nogil=True, boundscheck=False)
def gather_rows(w2_t, kk, live_idx, out, j0, j1):
    """out[l*kk + k, j] = w2_t[live_idx[l]*kk + k, j] for j in [j0, j1): the live channels'
    rows of the transposed weights (C_in * kk, C_out), or the columns of them that one part
    of a GEMM cut by rows reads (conv_gemm.gather_part), copied by an explicit loop (row
    assignment went through Numba's generic setitem: 0.085 vs 0.05 ms for conv10's 256 live rows)."""
    u0, u1 = np.uint64(j0), np.uint64(j1)
    for li in range(live_idx.shape[0]):
        for k in range(kk):
            src, dst = w2_t[live_idx[li] * kk + k], out[li * kk + k]
            for j in range(u0, u1):
                dst[j] = src[j]


@njit(cache=True, nogil=True, boundscheck=False)
def gather_channels(x2, live_idx, out, c0, c1):
    """out[l, c] = x2[live_idx[l], c] for c in [c0, c1), x2 of shape (C, H*W): a 1x1
    convolution's right operand, or the columns of it that one part of a GEMM cut by
    columns reads (conv_gemm.gather_part)."""
    u0, u1 = np.uint64(c0), np.uint64(c1)
    for li in range(live_idx.shape[0]):
        src, dst = x2[live_idx[li]], out[li]
        for k in range(u0, u1):
            dst[k] = src[k]


@njit(cache=True, nogil=True, boundscheck=False)
def indices_of(mask, buf):
    """Write the ascending indices of mask's True entries into buf; return their count
    (np.flatnonzero without its allocation and call overhead: about 1 us a call)."""
    k = 0
    for i in range(mask.shape[0]):
        if mask[i]:
            buf[k] = i
            k += 1
    return k


@njit(cache=True, nogil=True, boundscheck=False)
def scatter_rows(y, act_idx, bias, relu, out, written):
    """out[act_idx[i]] = y[i] + bias[act_idx[i]] (ReLU'd if asked), every other row 0: an
    inactive channel ends as exact zeros, without its bias. act_idx is ascending. Rows
    with written[c] unset are known to hold zeros already (a reused buffer) and are not
    written."""
    scatter_block(y, act_idx, bias, relu, out, written, 0, act_idx.shape[0], 0, out.shape[1])


@njit(cache=True, nogil=True, boundscheck=False)
def scatter_block(y, act_idx, bias, relu, out, written, r0, r1, c0, c1):
    """scatter_rows for rows r0:r1 of y and columns c0:c1, one part of a GEMM cut in two
    (conv_gemm.parts_of): the rows' channels get y + bias, and the inactive channels from
    act_idx[r0] (0 for the first part) up to act_idx[r1] (C_out for the last) get zeros.
    y and out are C-contiguous and indexed flat: row views cost 1.2-2x on rows of 49-729
    (equal on 3025)."""
    co, na = out.shape[0], act_idx.shape[0]
    hw = np.uint64(out.shape[1])
    uc0, uc1 = np.uint64(c0), np.uint64(c1)
    src, dst = y.reshape(y.size), out.reshape(out.size)
    i = r0
    c = 0 if r0 == 0 else act_idx[r0]
    stop = co if r1 == na else act_idx[r1]
    while c < stop:
        if i < r1 and act_idx[i] == c:
            s0, d0, b = np.uint64(i) * hw, np.uint64(c) * hw, bias[c]
            if relu:
                for k in range(uc0, uc1):
                    v = src[s0 + k] + b
                    dst[d0 + k] = v if v > 0.0 else 0.0
            else:
                for k in range(uc0, uc1):
                    dst[d0 + k] = src[s0 + k] + b
            i += 1
            c += 1
            continue
        end = act_idx[i] if i < r1 else stop  # the inactive rows up to the next active one
        zero_written_rows(written, dst, out.shape[1], c, end, c0, c1)
        c = end


@njit(cache=True, nogil=True, boundscheck=False)
def zero_written_rows(written, dst, width, start, stop, c0, c1):
    """Columns c0:c1 of rows start:stop of dst (flat, rows of `width`) that may hold
    non-zeros (written), set to zero. Over whole rows, consecutive rows are cleared as one
    flat run: short rows (13 x 13) spent more in per-row loop overhead than in the stores."""
    hw, uc0, uc1 = np.uint64(width), np.uint64(c0), np.uint64(c1)
    whole_rows = c0 == 0 and c1 == width
    c = start
    while c < stop:
        if not written[c]:
            c += 1
            continue
        run_end = c + 1
        while run_end < stop and written[run_end]:
            run_end += 1
        if whole_rows:
            for k in range(np.uint64(c) * hw, np.uint64(run_end) * hw):
                dst[k] = 0.0
        else:
            for row in range(c, run_end):
                d0 = np.uint64(row) * hw
                for k in range(uc0, uc1):
                    dst[d0 + k] = 0.0
        c = run_end


@njit(cache=True, nogil=True, boundscheck=False)
def zero_inactive_block(act_idx, written, out, c0, c1):
    """Columns c0:c1 of out's rows that are not in act_idx (ascending) and may hold non-zeros
    (written), set to zero: what scatter_block does for inactive channels, where the active
    ones were stored in place (tile_gemm)."""
    dst, c = out.reshape(out.size), 0
    for i in range(act_idx.shape[0]):
        zero_written_rows(written, dst, out.shape[1], c, act_idx[i], c0, c1)
        c = act_idx[i] + 1
    zero_written_rows(written, dst, out.shape[1], c, out.shape[0], c0, c1)


@njit(cache=True, nogil=True, boundscheck=False)
def add_bias(out, bias, relu):
    add_bias_block(out, bias, relu, 0, out.shape[0], 0, out.shape[1])


@njit(cache=True, nogil=True, boundscheck=False)
def add_bias_block(out, bias, relu, r0, r1, c0, c1):
    """out[r, c0:c1] += bias[r] for rows r0:r1 (then ReLU, if asked). out is C-contiguous
    and indexed flat with unsigned offsets: with signed ones from c0 the loop kept its
    wraparound checks and did not vectorise (1.3-1.8x the time of SqueezeNet's 1 x 1
    expands, whose GEMMs are short)."""
    hw = np.uint64(out.shape[1])
    uc0, uc1 = np.uint64(c0), np.uint64(c1)
    flat = out.reshape(out.size)
    for r in range(r0, r1):
        b = bias[r]
        base = np.uint64(r) * hw
        if relu:
            for k in range(base + uc0, base + uc1):
                flat[k] = max(flat[k] + b, 0.0)
        else:
            for k in range(base + uc0, base + uc1):
                flat[k] += b
