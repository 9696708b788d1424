"""Every CUDA kernel compiles to PTX for sm_80 (A100) and sm_90 (H100) with no GPU present.
Runs in a child process: this one has the simulator on, which cannot compile."""

import os
import subprocess
import sys

from ...cuda_device import cuda_device

cuda_device()  # skips (or fails where required) without numba-cuda


def test_every_kernel_compiles_to_ptx_for_sm80_and_sm90():
    from pyprune.kernels.cuda.ptx import every_kernel  # noqa: F401  (importable in the simulator too)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    done = subprocess.run([sys.executable, "-m", "pyprune.kernels.cuda.ptx", "--cc", "80", "90"],
                          capture_output=True, text=True, env=env, timeout=600)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    compiled = [line for line in done.stdout.splitlines() if line.startswith("ok")]
    kernels = list(every_kernel())
    assert len(compiled) == 2 * len(kernels) and len(kernels) >= 15
    assert done.stdout.rstrip().endswith("0 failures")
