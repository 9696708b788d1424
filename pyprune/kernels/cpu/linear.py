"""CPU Linear: one BLAS GEMM over the batch when every feature is live, otherwise one
GEMM per sample over that sample's live features only."""

import numpy as np

from ..macs import linear_macs
from .base import Act, CpuKernel


class LinearKernel(CpuKernel):
    def __init__(self, node, a, in_shapes, out_shape):
        super().__init__(node, a, in_shapes, out_shape)
        self.weight = np.ascontiguousarray(node.weights["weight"], np.float32)
        self.weight_t = np.ascontiguousarray(self.weight.T)  # (F, out): rows gather contiguously
        self.bias = np.ascontiguousarray(node.weights["bias"], np.float32)

    def run(self, xs, ctx):
        x = xs[0]
        if x.live is None:
            return Act(x.data @ self.weight_t + self.bias, None)
        out = np.empty((x.data.shape[0], self.weight.shape[0]), np.float32)
        for s in range(x.data.shape[0]):
            idx = np.flatnonzero(x.live[s])
            out[s] = x.data[s, idx] @ self.weight_t[idx] + self.bias
        return Act(out, None)

    def macs(self, xs, y):
        return linear_macs(xs[0].live, xs[0].data.shape, self.weight.shape[0])
