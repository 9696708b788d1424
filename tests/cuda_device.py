"""The CUDA device for tests: Numba's simulator (tests/conftest.py switches it on) or a
real GPU. Without numba-cuda the CUDA tests skip, saying why; CI sets
PYPRUNE_REQUIRE_CUDA_TESTS=1 so that they fail instead of skipping unseen."""

import os

import pytest


def cuda_device():
    """The 'cuda' Device, or skip (fail under PYPRUNE_REQUIRE_CUDA_TESTS) saying why not."""
    from pyprune.devices.cuda import CudaDevice, cuda_usable
    ok, why = cuda_usable()
    if ok:
        return CudaDevice()
    if os.environ.get("PYPRUNE_REQUIRE_CUDA_TESTS") == "1":
        pytest.fail(f"CUDA tests are required here: {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)
