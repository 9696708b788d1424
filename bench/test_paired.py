"""Keeps bench/paired.py working: one round of one image per engine (the timings mean nothing)."""

import pytest

from . import paired


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
