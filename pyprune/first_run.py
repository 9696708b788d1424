"""A note on stderr when a command's first run compiles the kernels.

Why: on a machine where the kernels were never compiled (a fresh install, a new Python or
Numba, or sources changed since: kernels/stale_cache.py), the first run compiles them and
takes 40-90 s (the README's demo 41 s, SqueezeNet at two threads 84 s), with nothing on
the screen. Later runs load them from Numba's cache in about a second.

How: Numba's event API ("numba:compile", numba.core.event) fires when a kernel is
compiled, and not when it is loaded from the cache; the note goes out at the first one.
A timer would also speak for a run that is slow for other reasons (a big batch).
"""

import sys

from numba.core import event

COMPILE_NOTE = ("pyprune: compiling the kernels for this machine; this happens once "
                "(about a minute) and later runs load them from Numba's cache")


class _FirstCompileNote(event.Listener):
    """Prints the note at the first compile it hears of; `noted` tells whether it did.
    Numba compiles one kernel at a time (its global compiler lock), so this runs on one
    thread at a time."""

    def __init__(self, message, stream):
        self.message, self.stream, self.noted = message, stream, False

    def on_start(self, ev):
        if not self.noted:
            self.noted = True
            print(self.message, file=self.stream or sys.stderr, flush=True)

    def on_end(self, ev):
        pass


def note_if_compiling(message=COMPILE_NOTE, stream=None):
    """A context in which the first kernel Numba compiles (on any thread) prints
    `message` to `stream` (stderr by default), once. It yields the listener, whose
    `noted` tells whether the note went out."""
    return event.install_listener("numba:compile", _FirstCompileNote(message, stream))
