"""Keeps bench/ort_profile.py working: a few runs (the timings mean nothing)."""

import re

import pytest

pytest.importorskip("onnxruntime", reason="bench/ort_profile.py profiles ONNX Runtime, which is not installed")

from . import ort_profile  # noqa: E402


def test_ort_profile_prints_every_conv_node_and_the_sum(capsys):
    ort_profile.main(["--rounds", "2"])
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^\| (\S+) \| ([\d.]+) \|$", out, re.M))
    convs = [node for node in rows if "squeeze" in node or "expand" in node]
    assert len(convs) == 8 * 3  # every fire module's three convs ran and were timed
    nodes_ms = sum(float(v) for k, v in rows.items() if k != "sum")
    assert float(rows["sum"]) == pytest.approx(nodes_ms, abs=0.03)  # each row rounded to 3 decimals


def test_ort_profile_refuses_a_thread_count_below_one():
    with pytest.raises(SystemExit):
        ort_profile.main(["--threads", "0"])
