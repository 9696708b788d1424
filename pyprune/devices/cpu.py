"""The CPU: host NumPy memory and the Numba kernels of kernels/cpu. It runs every op, so it
is the fallback for any node another device declines."""

import numpy as np

from ..kernels.cpu import CPU_KERNELS
from .base import Device


class CpuDevice(Device):
    name = "cpu"

    def decline(self, node, attrs, in_shapes, out_shape):
        return None if node.op in CPU_KERNELS else f"no CPU kernel for op {node.op}"

    def make_kernel(self, node, attrs, in_shapes, out_shape):
        return CPU_KERNELS[node.op](node, attrs, in_shapes, out_shape)

    def to_device(self, array):
        return array

    def to_host(self, array):
        return array

    def empty(self, shape, dtype):
        return np.empty(shape, dtype)
