"""bench/ab_split.py runs end to end (small images, one round) and prints a row per net."""

import pytest

import pyprune
from pyprune import config, models
from bench import ab_split


def test_ab_split_prints_every_net(capsys, monkeypatch):
    monkeypatch.setattr(config, "SPLIT_MIN_MACS", config.SPLIT_MIN_MACS)  # main() sets it
    try:
        ab_split.main(["--batch", "4", "--rounds", "1", "--calls", "1", "--image-size", "48",
                       "--split-min-macs", "1", "--settle", "0.01"])
    finally:
        pyprune.set_num_threads()
    out = capsys.readouterr().out
    for name in ("dense", "gated 50%", "gated 25%"):
        assert f"| {name} |" in out
    assert "no split" not in out


def test_whole_session_does_not_split():
    split, whole = ab_split.sessions(models.squeezenet1_1(image_size=48))
    assert split.split_batches and not whole.split_batches


def test_ab_split_runs_the_mnist_model(capsys, monkeypatch):
    monkeypatch.setattr(config, "SPLIT_MIN_MACS", config.SPLIT_MIN_MACS)
    try:
        ab_split.main(["--mnist", "--batch", "16", "--rounds", "1", "--calls", "1", "--settle", "0"])
    finally:
        pyprune.set_num_threads()
    out = capsys.readouterr().out
    assert "| mnist gated |" in out and "no split" not in out


def test_ab_split_rejects_bad_arguments(capsys):
    for bad in (["--batch", "0"], ["--calls", "0"], ["--settle", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            ab_split.main(bad)
        assert exit_info.value.code == 2
        assert "--settle at least 0" in capsys.readouterr().err
