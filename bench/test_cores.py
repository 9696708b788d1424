"""bench/cores.py: the probe of how much work two threads get done at once.

The probe's value depends on the host's load from one moment to the next (it came out
at 3.36 on a busy CI host, where a one-thread timing, likely preempted, came out long),
so these tests check how it is computed, on fixed timings, and only that a real probe
runs and gives a positive ratio: no bound on a timing."""

import math

import pytest

from . import cores


def test_one_thread_is_its_own_measure():
    assert cores.parallel_throughput(1) == 1.0


def test_the_ratio_is_the_work_of_all_threads_at_once_over_one_threads(monkeypatch):
    seconds = {1: 0.010, 2: 0.012}
    monkeypatch.setattr(cores, "_run_in_threads", lambda threads, n: seconds[threads])
    assert cores.parallel_throughput(2, tries=3) == pytest.approx(2 * 0.010 / 0.012)


def test_the_ratio_is_the_median_over_the_tries(monkeypatch):
    together = iter([0.010, 0.020, 0.040])  # ratios 2.0, 1.0 and 0.5, one per try
    monkeypatch.setattr(cores, "_run_in_threads", lambda threads, n: 0.010 if threads == 1 else next(together))
    assert cores.parallel_throughput(2, tries=3) == pytest.approx(1.0)


def test_a_real_probe_runs_and_prints_its_ratio(capsys):
    ratio = cores.parallel_throughput(2, tries=1, n=200_000)
    assert math.isfinite(ratio) and ratio > 0
    cores.main(["--threads", "2"])
    assert "2 threads at once: " in capsys.readouterr().out


def test_the_probe_needs_two_threads():
    with pytest.raises(SystemExit):
        cores.main(["--threads", "1"])
