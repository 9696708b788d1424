"""An NVIDIA GPU through numba.cuda (the `cuda` extra). The only module that owns CUDA
streams and memory; kernels launch on this device's stream, and activations stay in GPU
memory between layers.

With NUMBA_ENABLE_CUDASIM=1 numba.cuda simulates a GPU on the CPU, which is how the test
suite runs these kernels on machines without one (slowly: keep shapes small).
"""

import importlib
import importlib.metadata
import importlib.util

import numpy as np

from .. import config
from ..errors import DeviceError
from .base import Device


def _numba_cuda():
    """numba.cuda from the numba-cuda package, or a DeviceError saying how to get it."""
    if importlib.util.find_spec("numba_cuda") is None:
        raise DeviceError("device 'cuda' needs the numba-cuda package: pip install 'pyprune[cuda]'")
    try:
        from numba import cuda
    except Exception as exc:  # a missing libcudart surfaces here, whatever its type
        raise DeviceError(f"numba.cuda failed to import ({type(exc).__name__}: {exc}); "
                          "pip install 'pyprune[cuda]' installs the CUDA runtime it needs") from exc
    return cuda


def cuda_usable():
    """(True, '') when a GPU (or the simulator) can run kernels, else (False, why)."""
    try:
        cuda = _numba_cuda()
    except DeviceError as exc:
        return False, str(exc)
    try:
        available = cuda.is_available()
    except Exception as exc:
        return False, f"numba.cuda cannot reach a GPU ({type(exc).__name__}: {exc})"
    if not available:
        return False, ("numba.cuda finds no usable NVIDIA GPU or driver on this machine; run on the "
                       "CPU (device='cpu'), or set NUMBA_ENABLE_CUDASIM=1 for Numba's CUDA simulator "
                       "(slow, for tests)")
    from numba import config as numba_config
    return (True, "") if numba_config.ENABLE_CUDASIM else _compiler_loads()  # the simulator compiles nothing


def _compiler_loads():
    """numba-cuda loads its NumPy support only when it compiles the first kernel, so a NumPy it
    cannot work with would fail deep inside the first launch. Load it now instead. Seen on an
    H100 machine: numba-cuda 0.30.4 (the newest) with NumPy 2.5, which removed np.row_stack."""
    try:
        importlib.import_module("numba.cuda.cudaimpl")
    except Exception as exc:
        fix = "pip install 'numpy<2.5'" if _numpy_version() >= (2, 5) else "pip install -U numba-cuda"
        return False, (f"numba-cuda {importlib.metadata.version('numba-cuda')} cannot compile kernels "
                       f"with NumPy {np.__version__} ({type(exc).__name__}: {exc}); {fix}")
    return True, ""


def _numpy_version():
    return tuple(int(part) for part in np.__version__.split(".")[:2])


class CudaDevice(Device):
    name = "cuda"
    max_batch = config.CUDA_MAX_BATCH

    def __init__(self):
        ok, why = cuda_usable()
        if not ok:
            raise DeviceError(why)
        from numba import cuda  # importable: cuda_usable() just did

        from ..kernels.cuda import CUDA_KERNELS
        self.cuda = cuda
        self.kernels = CUDA_KERNELS
        self.stream = self.cuda.stream()
        self._ones = {}

    def decline(self, node, attrs, in_shapes, out_shape):
        kernel = self.kernels.get(node.op)
        if kernel is None:
            return f"no CUDA kernel for op {node.op}"
        for shape in (*in_shapes, out_shape):  # the kernels index with 32-bit block arithmetic
            if np.prod(shape, dtype=np.int64) * config.CUDA_MAX_BATCH >= 2**31:
                return f"tensor shape {shape} is too large for 32-bit indexing at batch {config.CUDA_MAX_BATCH}"
        return kernel.decline(attrs, in_shapes, out_shape)

    def make_kernel(self, node, attrs, in_shapes, out_shape):
        return self.kernels[node.op](self, node, attrs, in_shapes, out_shape)

    def to_device(self, array):
        return self.cuda.to_device(np.ascontiguousarray(array), stream=self.stream)

    def to_host(self, array):
        host = array.copy_to_host(stream=self.stream)
        self.stream.synchronize()
        return host

    def empty(self, shape, dtype):
        return self.cuda.device_array(shape, dtype, stream=self.stream)

    def synchronize(self):
        self.stream.synchronize()

    def channel_window(self, buffer, first, count):
        from ..kernels.cuda.base import ChannelWindow
        return ChannelWindow(buffer, first, count)

    def ones(self, n, c):
        """An all-true (n, c) mask in GPU memory, made once per shape."""
        mask = self._ones.get((n, c))
        if mask is None:
            mask = self._ones[(n, c)] = self.to_device(np.ones((n, c), np.bool_))
        return mask
