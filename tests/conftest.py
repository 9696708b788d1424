"""Test-session set-up. Numba's CUDA simulator is switched on before anything imports numba,
so the CUDA kernels run (slowly, on the CPU) wherever numba-cuda is installed. Set
NUMBA_ENABLE_CUDASIM=0 yourself to run tests/kernels/cuda on a real GPU instead."""

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
