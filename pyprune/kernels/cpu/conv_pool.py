"""A dense conv whose output only a max pool reads (SqueezeNet's stem), computed in bands
of a few output rows that the pool consumes at once: plan.py fuses the two where
`banded_fits` allows.

Why: SqueezeNet's conv1 writes 3.15 MB, more than this machine's 2 MB L2, and pool1 then
reads it back from L3. In bands of about 400 output pixels each band's GEMM output stays
in cache for the pool, and OpenBLAS runs the narrow GEMMs faster as well (conv1's GEMM:
364-376 us in bands of 111-444 pixels against 497-741 us whole). conv1 + ReLU + pool1
took 0.65-0.72x the time of the conv and the pool run one after the other on their own,
0.76-0.88x in the network (bench/README.md, ninth session).

The pool's rows overlap by kernel - stride conv rows; those rows move to the front of the
band buffer instead of being computed twice. The bias and ReLU go on the pooled tensor
(max commutes with both), as in ConvKernel.hand_epilogue_to_pool.
"""

import numpy as np
from numba import njit

from ... import config
from .base import Act, CpuKernel
from .blas import sgemm
from .conv_gemm import DH, DW, KH, KW, PL, PT, SH, SW, WO
from .conv_steps import im2col
from .pool import add_bias_relu, max_pool

# pool_plan indices: window, stride, left padding, pool rows per band
PKH, PKW, PSH, PSW, PPL, BAND = range(6)


def banded_fits(conv_out_shape, pool_attrs, pool_out_shape):
    """Whether the banded kernel can run this conv + max pool, and pays: no padding above,
    no window hanging below the conv's last row, and a conv output too large for L2."""
    co, ho, wo = conv_out_shape
    pkh, psh = pool_attrs["kernel_size"][0], pool_attrs["stride"][0]
    return (pool_attrs["padding"][0] == 0 and (pool_out_shape[1] - 1) * psh + pkh <= ho
            and 4 * co * ho * wo >= config.CONV_POOL_BAND_MIN_BYTES)


@njit(cache=True, nogil=True, boundscheck=False)
def conv_pool_bands(x, live_idx, w2, plan, pool_plan, live_all, cols_buf, band_buf, out):
    """out (N, C_out, PH, PW) = the max pool of the conv of x (every channel live; the
    conv plan `plan` and weights w2 (C_out, C_in*kh*kw)) without its bias. band_buf holds
    (C_out, R * Wo) floats, R the conv rows a band of pool rows reads."""
    kh, kw, sh, sw, pt, pl, dh, dw, wo = plan[KH], plan[KW], plan[SH], plan[SW], plan[PT], plan[PL], \
        plan[DH], plan[DW], plan[WO]
    pkh, pkw, psh, psw, ppl, per_band = pool_plan[PKH], pool_plan[PKW], pool_plan[PSH], pool_plan[PSW], \
        pool_plan[PPL], pool_plan[BAND]
    co, k = w2.shape
    rows = band_buf.shape[0] // (co * wo)
    band = band_buf.reshape(co, rows * wo)
    band4 = band_buf.reshape(1, co, rows, wo)
    ph = out.shape[2]
    for s in range(x.shape[0]):
        held_lo, held_hi = 0, 0  # conv rows the band holds, from its row 0
        for p0 in range(0, ph, per_band):
            p1 = min(ph, p0 + per_band)
            lo, hi = p0 * psh, (p1 - 1) * psh + pkh  # conv rows this band's pool rows read
            keep = max(0, held_hi - lo)
            if keep > 0:  # the overlap: move those rows to the front
                first = (lo - held_lo) * wo
                for c in range(co):
                    row = band[c]
                    for j in range(keep * wo):
                        row[j] = row[first + j]
            r0 = lo + keep
            npx = (hi - r0) * wo
            cols = cols_buf[:k * npx].reshape(k, npx)
            im2col(x[s], live_idx, kh, kw, sh, sw, pt - r0 * sh, pl, dh, dw, hi - r0, wo, cols)
            sgemm(False, co, npx, k, w2, k, cols, npx, band[:, keep * wo:], rows * wo)
            max_pool(band4, live_all, pkh, pkw, psh, psw, 0, ppl, out[s:s + 1, :, p0:p1])
            held_lo, held_hi = lo, hi


class ConvPoolKernel(CpuKernel):
    """A Conv2d kernel and the MaxPool2d kernel that alone reads it, run as one step (the
    conv's): in bands (conv_pool_bands) where the input has every channel live and the
    conv can call sgemm from Numba, else the two kernels one after the other. `banded`
    switches the bands off (bench/ab_flag.py banded)."""

    banded = True

    def __init__(self, node, conv, pool):
        super().__init__(node, conv.attrs, conv.in_shapes, pool.out_shape)
        self.conv, self.pool = conv, pool
        a = pool.attrs
        (pkh, pkw), (psh, psw), wo = a["kernel_size"], a["stride"], conv.out_shape[2]
        per_band = max(1, round(config.CONV_POOL_BAND_PIXELS / (psh * wo)))
        self.pool_plan = np.array([pkh, pkw, psh, psw, a["padding"][1], per_band], np.int64)
        rows = (per_band - 1) * psh + pkh
        co, k = conv.w2.shape
        self.band_buf = np.empty(co * rows * wo, np.float32)
        self.cols_buf = np.empty(k * rows * wo, np.float32)
        self.live_idx = np.arange(conv.in_shapes[0][0], dtype=np.int64)

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
        n, co = x.data.shape[0], self.out_shape[0]
        out = np.empty((n, *self.out_shape), np.float32)
        live_all = self.ones(1, co)
        conv_pool_bands(x.data, self.live_idx, self.conv.w2, self.conv.conv_plan, self.pool_plan, live_all,
                        self.cols_buf, self.band_buf, out)
        add_bias_relu(out.reshape(n, co, -1), self.ones(n, co), self.conv.bias, self.conv.fused_relu)
        return Act(out, None)

    def macs(self, xs, y):
        """The conv's MACs: the pool has none."""
        return self.conv.macs(xs, Act(None, None))
