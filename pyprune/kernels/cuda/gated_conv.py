"""CUDA gated convolution: the gate module runs on the GPU in two launches, the pooled
features of the live channels and then listing.decide_and_list (one or two small layers,
the cut, each sample's mask and its listing for the conv); the convolution then computes
only the active channels. Masks never leave the GPU; the gate works in float64 like the
CPU's, so both devices decide alike."""

import numpy as np

from ...errors import InputError
from ...ops.conv import gate_cut
from ..macs import gate_macs
from .base import Act
from .conv import ConvKernel
from .listing import launch_gate
from .pool import launch_global_pool


class GatedConvKernel(ConvKernel):
    def __init__(self, device, node, a, in_shapes, out_shape):
        super().__init__(device, node, a, in_shapes, out_shape)
        w = node.weights
        self.c_in, self.hidden = in_shapes[0][0], a["gate_hidden"]
        self.n_groups = a["out_channels"] // a["group_size"]
        self.use_max = a["gate_pool"] == "max"
        self.gate_weight, self.gate_bias = self.upload(w["gate_weight"]), self.upload(w["gate_bias"])
        # Without a hidden layer decide_and_list skips it (n_hidden = 0); one-row stand-ins keep
        # its arguments real arrays.
        self.hidden_weight = self.upload(w["gate_hidden_weight"] if self.hidden else np.zeros((1, self.c_in)))
        self.hidden_bias = self.upload(w["gate_hidden_bias"] if self.hidden else np.zeros(1))
        self.group_size = a["group_size"]
        self.file_cut = gate_cut(a["threshold"])

    def run(self, xs, ctx, out=None):
        if ctx.gate_hook is not None:
            raise InputError("gate calibration runs on the CPU: use a session with device='cpu'")
        x = xs[0]
        n, co = x.data.shape[0], self.out_shape[0]
        feats = self.buffer("feats", (n, self.c_in), np.float64)
        launch_global_pool(self, x.data, self.live_or_ones(x), self.use_max, feats)
        cut = ctx.cut_for(self.name, self.file_cut)
        hidden = self.buffer("hidden", (n, max(self.hidden, 1)), np.float64)
        mask = self.buffer("mask", (n, co), np.bool_)
        order, n_act = self.buffer("order", (n, co), np.int32), self.buffer("n_act", (n,), np.int32)
        launch_gate(self, feats, self.hidden, self.hidden_weight, self.hidden_bias, hidden, self.gate_weight,
                    self.gate_bias, cut, self.group_size, mask, order, n_act)
        return Act(self.convolve(x, mask, out, listed=(order, n_act)), mask)

    def macs(self, xs, y):
        executed, dense = super().macs(xs, y)
        return executed + gate_macs(self.c_in, self.hidden, self.n_groups), dense
