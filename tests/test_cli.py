"""The `pyprune` command: info, run and demo, and its error reporting."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import pyprune
from pyprune import models
from pyprune.cli import main
from pyprune.first_run import COMPILE_NOTE


@pytest.fixture
def gated_file(tmp_path):
    model = models.tiny_net(gated=True)
    path = tmp_path / "tiny.h5"
    pyprune.save(model, path)
    return path


def test_info_lists_layers_params_macs_and_gates(gated_file, capsys):
    assert main(["info", str(gated_file)]) == 0
    out = capsys.readouterr().out
    assert "gconv2" in out and "GatedConv2d" in out and "8 groups of 2, avg pool, hidden 4" in out
    params = sum(w.size for n in models.tiny_net().nodes for w in n.weights.values())
    assert f"{params:,} parameters" in out and "4 gated" in out


def test_the_command_drops_numba_cudas_small_grid_warning_and_no_other(gated_file, capsys):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["info", str(gated_file)]) == 0
        # numba-cuda's text, as it warned at each small launch on an H100
        warnings.warn("Grid size 28 will likely result in GPU under-utilization due to low occupancy.",
                      RuntimeWarning)
        warnings.warn("some other warning", RuntimeWarning)
    assert [str(w.message) for w in seen] == ["some other warning"]


def test_run_prints_classes_macs_and_latency(gated_file, tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(2, 3, 16, 16))  # float64 on purpose: the CLI converts
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(gated_file), str(tmp_path / "x.npy"), "--repeat", "2", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "sample 1: top" in out and "dense MACs" in out and "latency:" in out and "gconv4" in out
    np.save(tmp_path / "one.npy", x[0].astype(np.float32))  # one sample, no batch axis
    assert main(["run", str(gated_file), str(tmp_path / "one.npy"), "--threshold", "1.0", "--repeat", "1"]) == 0
    assert "sample 0" in capsys.readouterr().out


def test_errors_are_reported_not_raised(gated_file, tmp_path, capsys):
    (tmp_path / "bad.h5").write_bytes(b"nope")
    assert main(["info", str(tmp_path / "bad.h5")]) == 2
    assert "pyprune: error: file" in capsys.readouterr().err
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 8, 8), np.float32))
    assert main(["run", str(gated_file), str(tmp_path / "wrong.npy")]) == 2
    assert "shape (N, 3, 16, 16)" in capsys.readouterr().err
    assert main(["run", str(gated_file), str(tmp_path / "missing.npy")]) == 2


def test_demo_runs_on_the_shipped_model(capsys):
    assert main(["demo", "--images", "40", "--threshold", "0.6"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    for expected in ("accuracy: gated", "executed MACs:", "per class: 0:", "conv2", "latency per image", "GEMMs on "):
        assert expected in out, out
    # Kernels compiled by earlier tests load from the cache; where they are not cached they
    # compile, and then the note on stderr said so while it happened.
    compiled = "(compiling kernels)" in out
    assert compiled or "(loading kernels)" in out, out
    assert COMPILE_NOTE in captured.err if compiled else captured.err.count(COMPILE_NOTE) <= 1, captured.err


def test_demo_without_weights_says_what_is_missing(tmp_path, capsys):
    assert main(["demo", "--weights", str(tmp_path)]) == 2
    assert "mnist_gated.h5" in capsys.readouterr().err


def test_import_compiles_no_kernel():
    code = (
        "import sys, pyprune, numba.core.registry\n"
        "from numba.core.dispatcher import Dispatcher\n"
        "compiled = [f'{m}.{k}' for m, mod in list(sys.modules.items()) if m.startswith('pyprune')\n"
        "            for k, v in vars(mod).items() if isinstance(v, Dispatcher) and v.signatures]\n"
        "kernels = [k for m, mod in list(sys.modules.items()) if m.startswith('pyprune')\n"
        "           for k, v in vars(mod).items() if isinstance(v, Dispatcher)]\n"
        "assert len(kernels) > 10, kernels\n"
        "assert not compiled, compiled\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_on_cuda_without_a_gpu_is_a_clear_error(gated_file, tmp_path, capsys, monkeypatch):
    from pyprune.devices import cuda
    monkeypatch.setattr(cuda, "cuda_usable", lambda: (False, "no GPU here (test)"))
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 16, 16), np.float32))
    assert main(["run", str(gated_file), str(tmp_path / "x.npy"), "--device", "cuda"]) == 2
    assert "pyprune: error: no GPU here" in capsys.readouterr().err


def test_run_on_cuda_in_the_simulator_prints_the_device(gated_file, tmp_path, capsys):
    from .cuda_device import cuda_device
    cuda_device()
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32))
    assert main(["run", str(gated_file), str(tmp_path / "x.npy"), "--device", "cuda", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "sample 0: top" in out and "on cuda" in out
