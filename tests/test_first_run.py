"""first_run.note_if_compiling: the note a command prints while Numba compiles its kernels,
and only then. Each test compiles a function of its own (no cache), so whether a compile
happens does not depend on what ran before."""

import io

import pytest
from numba import njit

from pyprune.first_run import COMPILE_NOTE, note_if_compiling


def fresh_kernel():
    """A jitted function that has not been compiled yet (cache off)."""
    @njit(cache=False)
    def add_one(x):
        return x + 1
    return add_one


def test_a_compile_in_the_body_gets_the_note_once():
    stream = io.StringIO()
    f, g = fresh_kernel(), fresh_kernel()
    with note_if_compiling(stream=stream) as note:
        assert f(1) == 2 and g(1.5) == 2.5  # two compiles, one note
    assert note.noted and stream.getvalue() == COMPILE_NOTE + "\n"


def test_a_body_that_compiles_nothing_prints_nothing():
    stream = io.StringIO()
    f = fresh_kernel()
    f(1)  # compiled before the body
    with note_if_compiling(stream=stream) as note:
        assert f(2) == 3
    assert not note.noted and stream.getvalue() == ""


def test_the_listener_is_gone_after_the_body_even_after_an_error():
    stream = io.StringIO()
    with pytest.raises(ValueError, match="boom"):
        with note_if_compiling(stream=stream):
            raise ValueError("boom")
    fresh_kernel()(1)  # a compile after the body
    assert stream.getvalue() == ""
