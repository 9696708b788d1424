"""Devices a session can run on: 'cpu' (always), 'cuda' (an NVIDIA GPU through numba-cuda,
the `cuda` extra), or any Device instance, such as fake.FakeDevice (simulated, for tests).
`get_device` turns a name into a Device; 'auto' picks the GPU when one is usable and the
CPU otherwise."""

import warnings

from ..errors import DeviceError, InputError
from .base import Device
from .cpu import CpuDevice

CPU = CpuDevice()
DEVICE_NAMES = ("cpu", "cuda", "auto")


def get_device(spec):
    """'cpu', 'cuda', 'auto' or a Device instance -> a Device (DeviceError if unusable)."""
    if isinstance(spec, Device):
        return spec
    if spec == "cpu":
        return CPU
    if spec == "cuda":
        from .cuda import CudaDevice
        return CudaDevice()
    if spec == "auto":
        from .cuda import CudaDevice
        try:
            return CudaDevice()
        except DeviceError as exc:
            warnings.warn(f"device='auto' runs on the CPU: {exc}", RuntimeWarning, stacklevel=3)
            return CPU
    raise InputError(f"device must be one of {DEVICE_NAMES} or a pyprune Device, got {spec!r}")


__all__ = ["CPU", "Device", "get_device", "DEVICE_NAMES"]
