"""What a CUDA kernel is: prepared once per node (weights copied to the GPU), run per batch
on its device's stream. Outputs go to buffers the kernel keeps, reused across calls of the
same batch size (a session runs one call at a time), so such a run allocates nothing.

Each module also lists its @cuda.jit functions with a signature in PTX_SIGNATURES, so that
`python -m pyprune.kernels.cuda.ptx` can compile every kernel with no GPU present.
"""

import numpy as np

from ... import config
from ..cpu.base import Act

# Array types of the PTX signatures: 'A' layout, as outputs may be strided concat slices.
F1, F2, F3, F4 = "float32[:]", "float32[:, :]", "float32[:, :, :]", "float32[:, :, :, :]"
D2 = "float64[:, :]"
B2 = "boolean[:, :]"
I1, I2 = "int32[:]", "int32[:, :]"


def threads_for(count, cap=None):
    """Threads per block for `count` items: a power of two from 32 to the cap. Blocks are
    no larger than the work, as the simulator pays for every thread, idle or not."""
    cap = cap or config.CUDA_THREADS
    t = 32
    while t < count and t < cap:
        t *= 2
    return t


def blocks_for(count, threads):
    return max(1, -(-count // threads))


class CudaKernel:
    """Base of CUDA kernels. A subclass copies its weights to the device in __init__ and
    implements run(xs, ctx[, out]) on Acts whose arrays live on the GPU."""

    def __init__(self, device, node, a, in_shapes, out_shape):
        self.device, self.name, self.attrs = device, node.name, a
        self.in_shapes, self.out_shape = in_shapes, out_shape
        self._buffers = {}

    @classmethod
    def decline(cls, a, in_shapes, out_shape):
        """None when this kernel handles these parameters, else why not (the CPU takes it)."""
        return None

    def run(self, xs, ctx):
        raise NotImplementedError

    def macs(self, xs, y):
        return np.zeros(xs[0].data.shape[0], np.int64), 0

    def buffer(self, key, shape, dtype=np.float32):
        """A device array reused across calls while the shape stays the same. One per key:
        a new batch size replaces the old buffer, so GPU memory stays bounded by the
        largest batch rather than growing with every batch size ever seen."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype):
            buf = self._buffers[key] = self.device.empty(shape, dtype)
        return buf

    def upload(self, array, dtype=np.float32):
        return self.device.to_device(np.ascontiguousarray(array, dtype))

    def launch(self, kernel, blocks, threads, *args):
        kernel[blocks, threads, self.device.stream](*args)

    def launch_flat(self, kernel, count, *args):
        """A 1-D launch of one thread per item (the kernel checks its index < count)."""
        threads = threads_for(count)
        self.launch(kernel, blocks_for(count, threads), threads, *args)

    def live_or_ones(self, act):
        return act.live if act.live is not None else self.device.ones(act.data.shape[0], act.data.shape[1])


class ChannelWindow:
    """Channels [first, first + count) of a contiguous (N, C, H, W) device array, where a conv
    writes into a concat buffer. Not a slice: numba-cuda builds a sliced device array by listing
    its contiguous runs in Python, one per (sample, channel, row). On an H100 machine each
    fire-module expand took about 215 ms of host time per call at batch 32 that way, and
    SqueezeNet 1.1 1.37 s instead of 23 ms. Kernels take the whole buffer and `first`
    instead. It is the Act data of such a conv's output, which only the concat reads, for its
    shape."""

    __slots__ = ("buffer", "first", "count")

    def __init__(self, buffer, first, count):
        self.buffer, self.first, self.count = buffer, first, count

    @property
    def shape(self):
        return (self.buffer.shape[0], self.count, *self.buffer.shape[2:])


def flat(array):
    """A contiguous device array viewed as 1-D."""
    return array.reshape(array.size)


def channels_view(array):
    """(N, C, ...) contiguous device array viewed as (N, C, P)."""
    n, c = array.shape[:2]
    return array.reshape(n, c, array.size // (n * c))


__all__ = ["Act", "ChannelWindow", "CudaKernel", "threads_for", "blocks_for", "flat", "channels_view"]
