"""Keeps bench/profile_layers.py working: one round per net (the timings mean nothing)."""

import re

import pytest

import pyprune

from . import profile_layers


@pytest.fixture(autouse=True)
def default_threads():
    """profile_layers.main sets the thread count; the next test gets the default back."""
    yield
    pyprune.set_num_threads()


def test_profile_prints_rates_and_each_nets_summary(capsys):
    profile_layers.main(["--rounds", "1"])
    out = capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")]
    assert rows[0][-3:] == [" dense GMAC/s ", " gated50 GMAC/s ", " gated25 GMAC/s "]
    conv1 = next(r for r in rows if r[0].strip() == "conv1")
    assert len(conv1) == len(rows[0]) and all(float(c) > 0 for c in conv1[1:])
    concat = next(r for r in rows if r[0].strip() == "fire2/concat")
    assert [c.strip() for c in concat[4:]] == [""] * 5  # no MACs, so no share and no rate
    summaries = re.findall(r"^(dense|gated50|gated25): ([\d.]+) M MACs; Session.run ([\d.]+) ms, ([\d.]+) GMAC/s; "
                        r"at one core's matmul rate ([\d.]+) ms \((\d+)% of Session.run's time\)$", out, re.M)
    assert [f[0] for f in summaries] == ["dense", "gated50", "gated25"]
    macs = {name: float(m) for name, m, *_ in summaries}
    assert 340 < macs["dense"] < 360  # SqueezeNet 1.1 at 224 x 224: 349 M MACs
    assert macs["gated25"] < macs["gated50"] < macs["dense"]


def test_profile_rejects_empty_rounds(capsys):
    with pytest.raises(SystemExit):
        profile_layers.main(["--rounds", "0"])
    assert "--rounds must be at least 1" in capsys.readouterr().err


def test_rate_of_nothing_is_zero():
    assert profile_layers.rate(1e6, 0.0) == 0.0
    assert profile_layers.rate(2e6, 1.0) == pytest.approx(2.0)  # 2 M MACs in 1 ms: 2 GMAC/s
