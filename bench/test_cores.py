"""bench/cores.py: the probe of how much work two threads get done at once."""

import pytest

from . import cores


def test_one_thread_is_its_own_measure():
    assert cores.parallel_throughput(1) == 1.0


def test_two_threads_do_some_work_at_once_and_at_most_twice_one_threads(capsys):
    ratio = cores.parallel_throughput(2, tries=3, n=200_000)
    assert 0.3 < ratio < 2.6  # 2.0 ideally; the bounds leave room for timer noise and a busy host
    cores.main(["--threads", "2"])
    assert "2 threads at once: " in capsys.readouterr().out


def test_the_probe_needs_two_threads():
    with pytest.raises(SystemExit):
        cores.main(["--threads", "1"])
