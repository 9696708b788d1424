"""Keeps bench/paired.py working: one round of one image per engine (the timings mean nothing)."""

import pytest

import pyprune

from . import paired


@pytest.fixture(autouse=True)
def default_threads():
    """paired.main sets the thread count; the next test gets the default back."""
    yield
    pyprune.set_num_threads()


def test_paired_prints_a_row_per_engine(capsys):
    pytest.importorskip("onnxruntime", reason="peer ONNX Runtime not installed: pip install onnxruntime onnx")
    paired.main(["--rounds", "1", "--block", "1"])
    out = capsys.readouterr().out
    for engine in ("onnxruntime dense", "pyprune dense", "pyprune gated 50%", "pyprune gated 25%"):
        assert f"| {engine} |" in out
    assert "| onnxruntime dense | " in out and "| 1.00 | 1.00-1.00 |" in out


def test_paired_rejects_empty_rounds():
    with pytest.raises(SystemExit):
        paired.main(["--rounds", "0"])


def test_paired_names_the_extra_when_onnxruntime_is_missing(monkeypatch):
    def missing(*args, **kwargs):
        raise ImportError("No module named 'onnxruntime'")
    monkeypatch.setattr(paired, "onnxruntime_session", missing)
    with pytest.raises(SystemExit, match=r"needs ONNX Runtime: pip install -e '\.\[onnx\]'"):
        paired.onnxruntime_run(None, 1)


def test_paired_prints_the_cores_probe_at_two_threads(capsys):
    pytest.importorskip("onnxruntime", reason="peer ONNX Runtime not installed: pip install onnxruntime onnx")
    paired.main(["--threads", "2", "--rounds", "1", "--block", "1"])
    out = capsys.readouterr().out
    assert "2 threads of plain compiled work at once did " in out and " after (bench/cores.py)" in out
