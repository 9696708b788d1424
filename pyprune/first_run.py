"""A note on stderr when a command's first run is slow because Numba is compiling.

Why: on a machine where the kernels were never compiled (a fresh install, a new Python or
Numba, or sources changed since: kernels/stale_cache.py), the first run compiles them and
takes 40-90 s (the README's demo 41 s, SqueezeNet at two threads 84 s), with nothing on
the screen. Later runs load them from Numba's cache in about a second.

How: a timer, not a look into Numba's cache: whether the cache holds every kernel a model
needs, for this CPU and these argument types, is only known by loading them. A run that
is still going after `after` seconds is compiling; one that is done by then prints
nothing. Numba compiles in Python code that releases the GIL every few milliseconds
(sys.getswitchinterval), so the timer's thread gets to print while the compile goes on.
"""

import sys
import threading
import time
from contextlib import contextmanager

COMPILE_NOTE = ("pyprune: compiling the kernels for this machine; this happens once "
                "(about a minute) and later runs load them from Numba's cache")


@contextmanager
def note_if_slow(after=3.0, message=COMPILE_NOTE, stream=None):
    """Run the body; if it is still running `after` seconds on, print `message` to
    `stream` (stderr by default) once. Yields a dict whose "noted" tells afterwards
    whether the note went out, and "seconds" how long the body took."""
    state = {"noted": False, "seconds": 0.0}
    done = threading.Event()

    def note():
        if not done.is_set():
            print(message, file=stream or sys.stderr, flush=True)
            state["noted"] = True

    timer = threading.Timer(after, note)
    timer.daemon = True
    start = time.perf_counter()
    timer.start()
    try:
        yield state
    finally:
        done.set()
        timer.cancel()
        timer.join()
        state["seconds"] = time.perf_counter() - start
