"""CPU gated convolution: the gate module decides each sample's active kernel groups, then
the convolution computes only those (DESIGN.md section 1)."""

import numpy as np
from numba import njit

from ...ops.conv import gate_cut
from ..macs import gate_macs
from .base import Act
from .conv import ConvKernel
from .conv_gemm import gemm_conv
from .pool import plane_max


@njit(cache=True, boundscheck=False, fastmath={"reassoc"})
def gate_logits(x, live, use_max, wh, bh, wg, bg):
    """Gate logits (N, G) in float64, one sample at a time so that a sample's decision
    does not depend on the rest of its batch. Dead channels pool to exactly 0."""
    n, c = x.shape[0], x.shape[1]
    hw = x.shape[2] * x.shape[3]
    hidden, groups = wh.shape[0], wg.shape[0]
    z = np.empty((n, groups))
    s = np.empty(c)
    h = np.empty(max(hidden, 1))
    lanes = np.empty(16, x.dtype)
    for i in range(n):
        for ch in range(c):
            if not live[i, ch]:
                s[ch] = 0.0
                continue
            plane = x[i, ch].ravel()
            if use_max:
                s[ch] = plane_max(plane, lanes)
            else:
                acc = 0.0
                for k in range(hw):
                    acc += plane[k]
                s[ch] = acc / hw
        feat = s
        if hidden > 0:
            for j in range(hidden):
                acc = float(bh[j])
                for ch in range(c):
                    acc += wh[j, ch] * s[ch]
                h[j] = max(acc, 0.0)
            feat = h
        nf = hidden if hidden > 0 else c
        for g in range(groups):
            acc = float(bg[g])
            for k in range(nf):
                acc += wg[g, k] * feat[k]
            z[i, g] = acc
    return z


@njit(cache=True, boundscheck=False)
def gated_gemm_conv(x, live, use_max, wh, bh, wg, bg, cut, group_size, active, w2, w2_t, bias, relu,
                    add_full_bias, geom, shifted, pointwise, gather_ratio, live_buf, act_buf, cols_buf,
                    w_buf, y_buf, buffer, out, zero):
    """A gated conv in one compiled call: the gate's logits, the mask they give (written into
    `active`, (N, C_out) bool) and gemm_conv. Run as three calls from Python (gate_logits,
    the cut as a NumPy compare, gemm_conv), the fixed cost of a gated layer was ~14 us."""
    z = gate_logits(x, live, use_max, wh, bh, wg, bg)
    for s in range(active.shape[0]):
        for c in range(active.shape[1]):
            active[s, c] = z[s, c // group_size] > cut
    gemm_conv(x, live, active, w2, w2_t, bias, relu, add_full_bias, geom, shifted, pointwise, gather_ratio,
              live_buf, act_buf, cols_buf, w_buf, y_buf, buffer, out, zero)


class GatedConvKernel(ConvKernel):
    """`one_call_gate`: run the gate and the conv as one compiled call (gated_gemm_conv)
    wherever gemm_conv can run the conv and no calibration hook needs the logits."""

    one_call_gate = True

    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        w = node.weights
        c = in_shapes[0][0]
        self.use_max = a["gate_pool"] == "max"
        self.gate_weight = np.ascontiguousarray(w["gate_weight"], np.float32)
        self.gate_bias = np.ascontiguousarray(w["gate_bias"], np.float32)
        self.hidden_weight = np.ascontiguousarray(w.get("gate_hidden_weight", np.zeros((0, c))), np.float32)
        self.hidden_bias = np.ascontiguousarray(w.get("gate_hidden_bias", np.zeros(0)), np.float32)
        self.group_size = a["group_size"]
        self.file_cut = gate_cut(a["threshold"])  # the usual case, computed once

    def run(self, xs, ctx, out=None):
        x = xs[0]
        n = x.data.shape[0]
        if ctx.gate_hook is None and self.one_call_gate:
            out, buffer, zero = self.output_and_zero_rows(n, out)
            if self.runs_in_one_call(x, buffer):
                t = ctx.threshold_for(self.name, None)
                active = np.empty((n, self.out_shape[0]), np.bool_)
                gated_gemm_conv(x.data, self.live_of(x), self.use_max, self.hidden_weight, self.hidden_bias,
                                self.gate_weight, self.gate_bias, self.file_cut if t is None else gate_cut(t),
                                self.group_size, active, *self.gemm_args(), buffer, out, zero)
                self.note_zero_rows(n, active, buffer)
                return Act(out, active)
        live = x.live if x.live is not None else self.ones(n, x.data.shape[1])
        z = gate_logits(x.data, live, self.use_max, self.hidden_weight, self.hidden_bias,
                        self.gate_weight, self.gate_bias)
        if ctx.gate_hook is not None:  # calibration: the hook may move this gate's bias
            z = ctx.gate_hook(self.name, z, self.gate_bias)
        t = ctx.threshold_for(self.name, None)
        groups_on = z > (self.file_cut if t is None else gate_cut(t))
        active = np.repeat(groups_on, self.group_size, axis=1) if self.group_size > 1 else groups_on
        return Act(self.convolve(x, active, out), active)

    def macs(self, xs, y):
        executed, dense = super().macs(xs, y)
        gate = gate_macs(self.in_shapes[0][0], self.hidden_weight.shape[0], self.gate_weight.shape[0])
        return executed + gate, dense
