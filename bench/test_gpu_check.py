"""Keeps bench/gpu_check.py working between GPU runs: its --smoke mode (tiny shapes, one
round) in Numba's CUDA simulator. The timings it prints there mean nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("gpu_check.py")


def test_gpu_check_script_runs_in_the_simulator():
    if os.environ.get("PYPRUNE_REQUIRE_CUDA_TESTS") != "1":
        pytest.importorskip("numba_cuda", reason="numba-cuda is not installed: pip install -e '.[cuda]'")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kernel checks failed: none" in done.stdout
    for op in ("GatedConv2d", "Linear", "LRN", "GlobalMaxPool"):
        assert f"| {op} |" in done.stdout
