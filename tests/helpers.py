"""Shared test helpers: building one kernel, live/active patterns, error measures."""

import numpy as np

from pyprune.graph import Node
from pyprune.devices import CPU
from pyprune.kernels.cpu import Act
from pyprune.ops import OPS
from pyprune.ops.base import NodeContext
from pyprune.runtime import RunContext

PATTERNS = ("all", "none", "one", "random")


def rel_error(actual, expected, magnitude=None):
    """max |actual - expected| / max |expected| (normwise); exact match needed when expected is 0.

    For sums (conv, linear) pass `magnitude`, the same op on |inputs| and |weights|: a
    float32 sum of terms that cancel is only accurate relative to its terms, so the
    denominator is the larger of the two. The float64 reference is first rounded to
    float32, the best answer a float32 kernel can give (this matters for denormals).
    """
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64).astype(np.float32).astype(np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(np.abs(expected).max(initial=0.0), 0.0 if magnitude is None else np.abs(magnitude).max(initial=0.0))
    diff = np.abs(actual - expected).max(initial=0.0)
    return diff / scale if scale > 0 else (0.0 if diff == 0 else np.inf)


def assert_matches(actual, expected, tol=1e-5, magnitude=None):
    err = rel_error(actual, expected, magnitude)
    assert err <= tol, f"relative error {err:.3g} > {tol}"


def mask(rng, n, c, pattern):
    """(n, c) bool mask of the named pattern, drawn per sample."""
    m = np.zeros((n, c), np.bool_)
    if pattern == "all":
        m[:] = True
    elif pattern == "one":
        m[np.arange(n), rng.integers(0, c, n)] = True
    elif pattern == "random":
        m = rng.random((n, c)) < 0.5
    return m


def make_kernel(op, attrs, weights, in_shapes, name="node"):
    """A prepared CPU kernel for one node, and its parsed attributes."""
    return OnDevice(CPU).kernel(op, attrs, weights, in_shapes, name)


def live_act(x, live):
    """An Act whose dead channels are zeroed, as the engine guarantees."""
    if live is None:
        return Act(np.ascontiguousarray(x, np.float32), None)
    shape = (live.shape[0], live.shape[1]) + (1,) * (x.ndim - 2)
    return Act(np.ascontiguousarray(x * live.reshape(shape), np.float32), live)


def same_mask(a, b):
    """Two live masks say the same: both None (every channel), or equal arrays."""
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


class OnDevice:
    """Builds kernels on one device and runs them with host arrays in and out, so that one
    test body checks the CPU kernel and its GPU twin alike."""

    def __init__(self, device):
        self.device = device

    def kernel(self, op, attrs, weights, in_shapes, name="node"):
        """A prepared kernel for one node, and its parsed attributes."""
        ctx = NodeContext(name, op)
        a = OPS[op].parse_attrs(attrs, ctx)
        out_shape = OPS[op].out_shape(a, in_shapes, ctx)
        node = Node(name, op, [f"in{i}" for i in range(len(in_shapes))], [name], attrs, weights)
        return self.device.make_kernel(node, a, in_shapes, out_shape), a

    def run(self, kernel, xs, threshold=None):
        y = kernel.run([self.device.upload(x) for x in xs], RunContext(None, threshold))
        return self.device.download(y)

    def convolve(self, kernel, x, active):
        dev = self.device
        return dev.to_host(kernel.convolve(dev.upload(x), None if active is None else dev.to_device(active)))


ON_CPU = OnDevice(CPU)


class OnCpuPythonGemm(OnDevice):
    """The CPU with its convs on the Python path (np.matmul between Numba steps), which
    runs where NumPy's BLAS cannot be called from Numba (kernels/cpu/blas.py)."""

    def kernel(self, op, attrs, weights, in_shapes, name="node"):
        kernel, a = super().kernel(op, attrs, weights, in_shapes, name)
        kernel.blas_in_numba = False
        return kernel, a


ON_CPU_PYTHON_GEMM = OnCpuPythonGemm(CPU)
