"""CUDA Linear: one thread per (sample, output); the weight is stored transposed so that a
warp's threads, on consecutive outputs, read consecutive weights. Dead features (known
zeros) are skipped; the test is uniform over a block, which holds one sample."""

from numba import cuda

from ..macs import linear_macs
from .base import B2, F1, F2, Act, CudaKernel, blocks_for, threads_for


@cuda.jit(cache=True)
def linear(x, live, weight_t, bias, out):
    """Grid (output blocks, N): out[s, o] = bias[o] + sum over live f of x[s, f] * weight_t[f, o]."""
    o = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    s = cuda.blockIdx.y
    f_count, o_count = weight_t.shape
    if o >= o_count:
        return
    acc = bias[o]
    for f in range(f_count):
        if live[s, f]:
            acc += x[s, f] * weight_t[f, o]
    out[s, o] = acc


PTX_SIGNATURES = [(linear, f"void({F2}, {B2}, {F2}, {F1}, {F2})")]


class LinearKernel(CudaKernel):
    def __init__(self, device, node, a, in_shapes, out_shape):
        super().__init__(device, node, a, in_shapes, out_shape)
        self.weight_t = self.upload(node.weights["weight"].T)
        self.bias = self.upload(node.weights["bias"])

    def run(self, xs, ctx):
        x = xs[0]
        n, o = x.data.shape[0], self.out_shape[0]
        out = self.buffer("out", (n, o))
        threads = threads_for(o)
        self.launch(linear, (blocks_for(o, threads), n), threads, x.data, self.live_or_ones(x),
                    self.weight_t, self.bias, out)
        return Act(out, None)

    def macs(self, xs, y):
        return linear_macs(xs[0].live, xs[0].data.shape, self.out_shape[0])
