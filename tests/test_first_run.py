"""first_run.note_if_slow: the note a command prints while Numba compiles its kernels.
The bodies wait on events, not on the clock, so that a loaded machine cannot change the
outcome."""

import io
import threading

import pytest

from pyprune.first_run import COMPILE_NOTE, note_if_slow


class NotingStream(io.StringIO):
    """A stream that tells when something was written to it."""

    def __init__(self):
        super().__init__()
        self.written = threading.Event()

    def write(self, s):
        n = super().write(s)
        self.written.set()
        return n


def test_a_body_still_running_gets_the_note_once():
    stream = NotingStream()
    with note_if_slow(after=0.01, stream=stream) as state:
        assert stream.written.wait(30), "the note never came"
    assert state["noted"] and stream.getvalue() == COMPILE_NOTE + "\n"
    assert state["seconds"] > 0


def test_a_body_done_before_the_timer_prints_nothing():
    stream = NotingStream()
    with note_if_slow(after=30, stream=stream) as state:
        pass
    assert not state["noted"] and stream.getvalue() == ""
    assert not stream.written.wait(0.05)


def test_an_error_in_the_body_stops_the_timer_and_passes_through():
    stream = NotingStream()
    with pytest.raises(ValueError, match="boom"):
        with note_if_slow(after=0.2, stream=stream):
            raise ValueError("boom")
    assert not stream.written.wait(0.5) and stream.getvalue() == ""

