"""Keeps bench/ab_checkouts.py working: this checkout against itself, one short round (the
timings mean nothing)."""

from pathlib import Path

from . import ab_checkouts

ROOT = Path(__file__).resolve().parents[1]


def test_ab_checkouts_prints_a_row_per_measure(capsys):
    ab_checkouts.main([str(ROOT), str(ROOT), "--rounds", "1", "--samples", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    for name in ("relu chain, us/layer", "conv chain, us/layer", "gated_conv chain, us/layer",
                 "mnist gated, ms/image"):
        assert f"| {name} |" in out
