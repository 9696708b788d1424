"""Keeps bench/gpu_check.py and bench/gpu_layers.py working between GPU runs: their --smoke
modes (tiny shapes, one round) in Numba's CUDA simulator. The timings they print there mean
nothing."""

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


def test_gpu_layers_script_runs_in_the_simulator():
    if os.environ.get("PYPRUNE_REQUIRE_CUDA_TESTS") != "1":
        pytest.importorskip("numba_cuda", reason="numba-cuda is not installed: pip install -e '.[cuda]'")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT.with_name("gpu_layers.py")), "--smoke", "--batches", "1", "2",
                           "--rounds", "1", "--top", "3"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for batch in (1, 2):
        assert f"## dense, batch {batch}: run()" in done.stdout
    assert done.stdout.count("| Conv2d |") + done.stdout.count("Pool2d |") >= 6  # the top 3 of each batch


def test_gpu_layers_refuses_counts_below_one():
    # Argument errors come before the GPU is opened, so this runs anywhere.
    for bad in (["--rounds", "0"], ["--top", "0"], ["--batches", "1", "0"]):
        done = subprocess.run([sys.executable, str(SCRIPT.with_name("gpu_layers.py")), *bad],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "must be >= 1" in done.stderr, bad
