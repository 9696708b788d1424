"""CUDA gated convolution: the gate module runs on the GPU (pooled features of the live
channels, one or two small layers, the cut) and writes each sample's mask; the convolution
then computes only the active channels. Masks never
leave the GPU; the gate works in float64 like the CPU's, so both devices decide alike."""

import numpy as np
from numba import cuda

from ...errors import InputError
from ...ops.conv import gate_cut
from ..macs import gate_macs
from .base import B2, D2, F1, F2, Act
from .conv import ConvKernel
from .pool import launch_global_pool


@cuda.jit(cache=True)
def gate_hidden(feats, weight, bias, out):
    """out[s, j] = relu(bias[j] + sum_c weight[j, c] * feats[s, c]), one thread per (s, j)."""
    i = cuda.grid(1)
    n, hidden = out.shape
    if i < n * hidden:
        s, j = i // hidden, i % hidden
        acc = np.float64(bias[j])
        for c in range(feats.shape[1]):
            acc += weight[j, c] * feats[s, c]
        out[s, j] = max(acc, 0.0)


@cuda.jit(cache=True)
def gate_decide(feats, weight, bias, cut, group_size, logits, mask):
    """One thread per (sample, group): the logit, and the group's channels in the mask."""
    i = cuda.grid(1)
    n, n_groups = logits.shape
    if i < n * n_groups:
        s, g = i // n_groups, i % n_groups
        acc = np.float64(bias[g])
        for k in range(feats.shape[1]):
            acc += weight[g, k] * feats[s, k]
        logits[s, g] = acc
        on = acc > cut
        for c in range(g * group_size, (g + 1) * group_size):
            mask[s, c] = on


PTX_SIGNATURES = [
    (gate_hidden, f"void({D2}, {F2}, {F1}, {D2})"),
    (gate_decide, f"void({D2}, {F2}, {F1}, float64, int64, {D2}, {B2})"),
]


class GatedConvKernel(ConvKernel):
    def __init__(self, device, node, a, in_shapes, out_shape):
        super().__init__(device, node, a, in_shapes, out_shape)
        w = node.weights
        self.c_in, self.hidden = in_shapes[0][0], a["gate_hidden"]
        self.n_groups = a["out_channels"] // a["group_size"]
        self.use_max = a["gate_pool"] == "max"
        self.gate_weight, self.gate_bias = self.upload(w["gate_weight"]), self.upload(w["gate_bias"])
        if self.hidden:
            self.hidden_weight = self.upload(w["gate_hidden_weight"])
            self.hidden_bias = self.upload(w["gate_hidden_bias"])
        self.group_size = a["group_size"]
        self.file_cut = gate_cut(a["threshold"])

    def run(self, xs, ctx, out=None):
        if ctx.gate_hook is not None:
            raise InputError("gate calibration runs on the CPU: use a session with device='cpu'")
        x = xs[0]
        n, co = x.data.shape[0], self.out_shape[0]
        feats = self.buffer("feats", (n, self.c_in), np.float64)
        launch_global_pool(self, x.data, self.live_or_ones(x), self.use_max, feats)
        if self.hidden:
            hidden = self.buffer("hidden", (n, self.hidden), np.float64)
            self.launch_flat(gate_hidden, hidden.size, feats, self.hidden_weight, self.hidden_bias, hidden)
            feats = hidden
        t = ctx.threshold_for(self.name, None)
        cut = self.file_cut if t is None else gate_cut(t)
        logits = self.buffer("logits", (n, self.n_groups), np.float64)
        mask = self.buffer("mask", (n, co), np.bool_)
        self.launch_flat(gate_decide, logits.size, feats, self.gate_weight, self.gate_bias, cut,
                         self.group_size, logits, mask)
        return Act(self.convolve(x, mask, out), mask)

    def macs(self, xs, y):
        executed, dense = super().macs(xs, y)
        return executed + gate_macs(self.c_in, self.hidden, self.n_groups), dense
