"""A simulated device for tests of placement and transfers, needing no hardware.

Its memory is NumPy arrays wrapped in `FakeArray`, which no CPU kernel accepts, so a plan
that forgets a copy fails loudly instead of silently reading host memory. It runs the CPU
kernels on the unwrapped arrays, declines the ops it is told to, and counts its copies.
"""

import numpy as np

from ..kernels.cpu import CPU_KERNELS, Act
from .base import Device


class FakeArray:
    """Memory of the fake device: a NumPy array that must be copied to be read on the host."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    @property
    def shape(self):
        return self.array.shape

    def __getitem__(self, index):  # a view stays on the device (concat buffer slices)
        return FakeArray(self.array[index])


def _unwrap(act):
    return Act(act.data.array, None if act.live is None else act.live.array)


def _wrap(act):
    return Act(FakeArray(act.data), None if act.live is None else FakeArray(act.live))


class FakeKernel:
    """A CPU kernel running on FakeArrays: unwraps its inputs and wraps its output."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __getattr__(self, name):
        return getattr(self.kernel, name)

    def __setattr__(self, name, value):
        if name == "kernel":
            object.__setattr__(self, name, value)
        else:
            setattr(self.kernel, name, value)

    def run(self, xs, ctx, out=None):
        xs = [_unwrap(x) for x in xs]
        if out is None:
            return _wrap(self.kernel.run(xs, ctx))
        return _wrap(self.kernel.run(xs, ctx, out=out.array))

    def output_buffer(self, n):
        return FakeArray(self.kernel.output_buffer(n))

    def assemble(self, xs, data):
        return _wrap(self.kernel.assemble([_unwrap(x) for x in xs], data.array))


class FakeDevice(Device):
    name = "fake"

    def __init__(self, declines=()):
        self.declines = set(declines)
        self.uploads = self.downloads = 0

    def decline(self, node, attrs, in_shapes, out_shape):
        if node.op in self.declines:
            return f"the fake device was told to decline {node.op}"
        return None

    def make_kernel(self, node, attrs, in_shapes, out_shape):
        return FakeKernel(CPU_KERNELS[node.op](node, attrs, in_shapes, out_shape))

    def to_device(self, array):
        assert isinstance(array, np.ndarray), "to_device takes host arrays"
        self.uploads += 1
        return FakeArray(array.copy())

    def to_host(self, array):
        assert isinstance(array, FakeArray), "to_host takes arrays of this device"
        self.downloads += 1
        return array.array.copy()

    def empty(self, shape, dtype):
        return FakeArray(np.empty(shape, dtype))
