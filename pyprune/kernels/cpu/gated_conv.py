"""CPU gated convolution: the gate module decides each sample's active kernel groups, then
the convolution computes only those (DESIGN.md section 1)."""

import numpy as np
from numba import njit

from ...ops.conv import gate_cut
from ..macs import gate_macs
from .base import Act, c_contiguous, kept, phase_masks
from .conv import ConvKernel
from .conv_gemm import gemm_conv, prepare_first
from .pool import global_pool


def pack_gate(use_max, hidden_weight, hidden_bias, gate_weight, gate_bias):
    """(gate_plan, gate_params): the gate as two arrays for the compiled calls, int64
    (max pooling, hidden units, groups) and float32 (the hidden layer's weights, transposed,
    and bias, then the logits'), so that it costs two arguments to dispatch rather than
    five. The weights are stored transposed, (inputs, outputs), for _dense_layer."""
    plan = np.array([use_max, hidden_weight.shape[0], gate_weight.shape[0]], np.int64)
    params = np.concatenate([np.ravel(w) for w in (hidden_weight.T, hidden_bias, gate_weight.T, gate_bias)])
    return plan, params.astype(np.float32)


@njit(cache=True, nogil=True, boundscheck=False)
def unpack_gate(c, plan, params):
    """(use_max, wh, bh, wg, bg) as views of pack_gate's arrays, for c input channels; the
    weights in their files' orientation, (outputs, inputs), as transposed views."""
    hidden, groups = plan[1], plan[2]
    nf = hidden if hidden > 0 else c
    o1, o2 = hidden * c, hidden * c + hidden
    o3 = o2 + groups * nf
    return (plan[0] != 0, params[:o1].reshape(c, hidden).T, params[o1:o2], params[o2:o3].reshape(nf, groups).T,
            params[o3:o3 + groups])


@njit(cache=True, nogil=True, boundscheck=False)
def _dense_layer(w_t, b, feat, out):
    """out[j] = b[j] + the sum over k of w_t[k, j] * feat[k], in float64, added in k order
    (w_t: the layer's weights transposed, (inputs, outputs)). The loop over j vectorises
    without reordering any sum, and an input of exactly 0 (a dead channel's pooled value,
    a hidden unit the ReLU cut) adds nothing and is skipped. The loop over k per output
    that this replaced vectorised only by reordering its sum (global_pool allows
    `reassoc`, for the pooling, where this runs without it): SqueezeNet's 24 gates took
    207-284 us against 256-340 in all."""
    for j in range(out.shape[0]):
        out[j] = b[j]
    for k in range(w_t.shape[0]):
        f = feat[k]
        if f == 0.0:
            continue
        row = w_t[k]
        for j in range(out.shape[0]):
            out[j] += row[j] * f


@njit(cache=True, nogil=True, boundscheck=False)
def pool_for_gate(x, live, use_max):
    """Each live plane of x pooled (global_pool: max, or mean in float64), (N, C); dead
    channels pool to exactly 0. x must be C-contiguous: its planes are read as rows of x
    viewed as (N, C, H*W), which pools up to 3x faster than a ravel() of each plane (~60 ns
    a plane, which shows on 512 planes of 13 x 13)."""
    n, c = x.shape[0], x.shape[1]
    pooled = np.empty((n, c))
    global_pool(x.reshape(n, c, x.shape[2] * x.shape[3]), live, use_max, pooled)
    return pooled


@njit(cache=True, nogil=True, boundscheck=False)
def logits_of_pooled(pooled, gate_plan, gate_params):
    """Gate logits (N, G) in float64 from pool_for_gate's (N, C), one sample at a time so
    that a sample's decision does not depend on the rest of its batch."""
    n, c = pooled.shape
    _, wh, bh, wg, bg = unpack_gate(c, gate_plan, gate_params)
    hidden, groups = wh.shape[0], wg.shape[0]
    wh_t, wg_t = wh.T, wg.T  # (inputs, outputs), C-contiguous
    z = np.empty((n, groups))
    h = np.empty(max(hidden, 1))
    for i in range(n):
        feat = pooled[i]
        if hidden > 0:
            _dense_layer(wh_t, bh, feat, h)
            for j in range(hidden):
                h[j] = max(h[j], 0.0)
            feat = h
        _dense_layer(wg_t, bg, feat, z[i])
    return z


@njit(cache=True, nogil=True, boundscheck=False)
def gate_logits(x, live, gate_plan, gate_params):
    """Gate logits (N, G) in float64 (pool_for_gate, then logits_of_pooled)."""
    return logits_of_pooled(pool_for_gate(x, live, gate_plan[0] != 0), gate_plan, gate_params)


@njit(cache=True, nogil=True, boundscheck=False)
def decide_pooled(pooled, gate_plan, gate_params, cut, active):
    """The (N, C_out) mask that the gate's logits on pool_for_gate's (N, C) give, written
    into `active`."""
    z = logits_of_pooled(pooled, gate_plan, gate_params)
    group_size = active.shape[1] // z.shape[1]
    for s in range(active.shape[0]):
        for c in range(active.shape[1]):
            active[s, c] = z[s, c // group_size] > cut


@njit(cache=True, nogil=True, boundscheck=False)
def decide_active(x, live, gate_plan, gate_params, cut, active):
    """The gate's logits, and the (N, C_out) mask they give, written into `active`."""
    decide_pooled(pool_for_gate(x, live, gate_plan[0] != 0), gate_plan, gate_params, cut, active)


@njit(cache=True, nogil=True, boundscheck=False)
def conv_with_gate(x, live, gate_plan, gate_params, cut, active, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf,
                   w_buf, y_buf, buffer, out, written):
    """A conv as one compiled call with or without a gate: its gate's decisions into
    `active` where gate_plan is not empty (else `active` is all true already), then
    gemm_conv, as gated_gemm_conv or conv.py run it (a fire module's convs, fire.py; the
    helper's CONV_WHOLE job, handover.py)."""
    if gate_plan.shape[0] != 0:
        decide_active(x, live, gate_plan, gate_params, cut, active)
    gemm_conv(x, live, active, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out,
              written)


@njit(cache=True, nogil=True, boundscheck=False)
def gated_gemm_conv(x, live, gate_plan, gate_params, cut, active, w2, w2_t, w_tiles, bias, plan, index_buf,
                    cols_buf, w_buf, y_buf, buffer, out, written):
    """A gated conv in one compiled call: the gate's logits, the mask they give (written into
    `active`, (N, C_out) bool) and gemm_conv. Run as three calls from Python (gate_logits,
    the cut as a NumPy compare, gemm_conv), the fixed cost of a gated layer was ~14 us."""
    decide_active(x, live, gate_plan, gate_params, cut, active)
    gemm_conv(x, live, active, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out,
              written)


@njit(cache=True, nogil=True, boundscheck=False)
def gated_prepare_first(x, live, gate_plan, gate_params, cut, active, w2, w2_t, w_tiles, bias, plan, index_buf,
                        cols_buf, w_buf, y_buf, buffer, out, written):
    """gated_gemm_conv for a batch of one, up to its GEMM where that runs in two parts
    (ConvKernel.finish_parts); returns what prepare_first does."""
    decide_active(x, live, gate_plan, gate_params, cut, active)
    return prepare_first(x, live, active, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer,
                         out, written)


class GatedConvKernel(ConvKernel):
    """`one_call_gate`: run the gate and the conv as one compiled call (gated_gemm_conv)
    wherever gemm_conv can run the conv and no calibration hook needs the logits."""

    one_call_gate = True

    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        w = node.weights
        c = in_shapes[0][0]
        self.gate_plan, self.gate_params = pack_gate(
            a["gate_pool"] == "max", w.get("gate_hidden_weight", np.zeros((0, c))),
            w.get("gate_hidden_bias", np.zeros(0)), w["gate_weight"], w["gate_bias"])
        # Views of gate_params, for the hook and macs().
        _, self.hidden_weight, _, self.gate_weight, self.gate_bias = unpack_gate(c, self.gate_plan, self.gate_params)
        self.group_size = a["group_size"]
        self.file_cut = gate_cut(a["threshold"])  # the usual case, computed once

    def run(self, xs, ctx, out=None):
        x = c_contiguous(xs[0])
        n = x.data.shape[0]
        if ctx.gate_hook is None and self.one_call_gate:
            out, buffer, written, one_call = self.begin_call(x, out)
            if one_call:
                active = np.empty((n, self.out_shape[0]), np.bool_)
                args = (x.data, self.live_of(x), self.gate_plan, self.gate_params,
                        ctx.cut_for(self.name, self.file_cut), active, *self.gemm_args(x), buffer, out, written)
                if self.in_parts(n, ctx.pair):
                    self.finish_parts(x, gated_prepare_first(*args), buffer, out, written, ctx.pair)
                else:
                    gated_gemm_conv(*args)
                self.end_call(n, active, buffer)
                return Act(out, active)
        z = gate_logits(x.data, self.live_of(x), self.gate_plan, self.gate_params)
        if ctx.gate_hook is not None:  # calibration: the hook may move this gate's bias
            z = ctx.gate_hook(self.name, z, self.gate_bias)
        groups_on = z > ctx.cut_for(self.name, self.file_cut)
        active = np.repeat(groups_on, self.group_size, axis=1) if self.group_size > 1 else groups_on
        return Act(self.convolve(x, active, out, ctx.pair), active)

    def bind(self, xs, phase, store, pair=None):
        """gated_gemm_conv into a kept output (CpuKernel.bind): this phase's mask takes the
        decisions, and the other phase's, the run before's, says which rows may hold
        non-zeros."""
        x = xs[0]
        if not (self.one_call_gate and self.binds_one_call(x)):
            return None
        n = x.data.shape[0]
        out = kept(store, "out", (n, *self.out_shape))
        active, written = phase_masks(store, "active", (n, self.out_shape[0]), phase)
        args = (x.data, self.live_of(x), self.gate_plan, self.gate_params, self.file_cut, active,
                *self.gemm_args(x), out, out, written)
        return (self.bound_call(x, gated_gemm_conv, gated_prepare_first, args, out, written, pair),), Act(out, active)

    def macs(self, xs, y):
        executed, dense = super().macs(xs, y)
        gate = gate_macs(self.in_shapes[0][0], self.hidden_weight.shape[0], self.gate_weight.shape[0])
        return executed + gate, dense
