"""The device the GPU twin tests run on (tests/cuda_device.py)."""

from hypothesis import settings

from ...cuda_device import cuda_device
from ...helpers import OnDevice

ON_CUDA = OnDevice(cuda_device())

# The simulator runs each GPU thread as a Python thread (~150 us each): fewer examples than
# the CPU twins, which already cover the shapes broadly; the same strategies and checks.
SIMULATED = settings(max_examples=12, deadline=None)
