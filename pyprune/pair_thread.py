"""A helper thread that runs the second half of a batch of one's big compiled jobs while the
calling thread runs the first, where pyprune has two or more threads: the two parts of a
conv cut in two (kernels/cpu/conv_gemm.parts_of), alone or within a fire module's one
compiled call (kernels/cpu/fire.py, where the helper also takes the first expand whole),
the two halves of the banded stem, and of a max pool's or a global pool's channels.

The session wakes the helper when such a run starts (`begin`) and parks it when the run
ends (`end`); in between it spins in compiled code (kernels/cpu/handover.py), so that a
job is handed over in about 0.1 µs rather than the 7.6-26 µs that two Python locks and the
GIL took (bench/README.md, nineteenth session). Whichever thread gets to a job first runs
it: the caller takes back a job the helper has not claimed by the time its own half is
done, so a helper still waking up, or preempted by a neighbour on a shared host, costs the
caller at most the half it has claimed. Between runs the helper sleeps on a semaphore.

A job that fails on the helper is run again on the calling thread, which raises its error
(the jobs are deterministic); one that fails on the caller waits for the helper's half
before it raises, as the helper may still be writing into the caller's buffers. Used by
one thread at a time (a session runs one call at a time). A forked child has no helper
thread: `usable()` is False there, and the session makes a new PairThread."""

import atexit
import os
import threading
import weakref

import numpy as np

from .kernels.cpu import handover
from .kernels.cpu.conv_gemm import finish_first
from .kernels.cpu.conv_pool import conv_pool_rows
from .kernels.cpu.fire import fire_call_paired
from .kernels.cpu.pool import global_pool, max_pool_3x3s2

HELPER_FAILED = "pyprune's helper thread failed in a job that then ran on the calling thread"


def _serve(go, ctrl, loaded):
    """The helper's loop: sleep until woken, then serve jobs until parked; a stop ends the
    thread. It holds no reference to its PairThread, so that dropping the PairThread (its
    session) stops it. `loaded` is set once serve() has been loaded (or compiled) and run,
    or the thread ends without it."""
    try:
        while True:
            go.acquire()
            if ctrl[handover.STOP]:
                return
            handover.serve(ctrl)
            loaded.set()
    finally:
        loaded.set()


# (pid, loaded) of each helper told to load its loop: the process waits for them at exit.
_loading = []
LOAD_WAIT_S = 300.0


@atexit.register
def wait_for_loading_helpers():
    """Let a helper that is still compiling its loop (an empty Numba cache) finish: at the
    interpreter's shut-down, and between tests (tests/conftest.py). Else a short process
    compiled it in vain on every start, never reaching the cache, and ran its first
    2-thread runs beside that compile (23 s here); and LLVM once aborted in an assertion as
    the process exited under it (twenty-third session)."""
    for pid, loaded in _loading:
        if pid == os.getpid():  # a forked child has no helper of its parent's
            loaded.wait(LOAD_WAIT_S)


def _stop(go, ctrl, pid):
    if os.getpid() == pid:
        ctrl[handover.STOP] = 1
        ctrl[handover.PARK] = 1
        go.release()


class PairThread:
    """begin() and end() bracket a run in which the helper serves; conv_parts(),
    stem_halves(), max_pool_halves(), global_pool_halves() and fire_module() run a job's
    two halves on both threads (or both here, where the helper has not claimed the second
    in time)."""

    def __init__(self):
        self.ctrl = np.zeros(handover.SIZE, np.int64)
        self.ctrl[handover.PARK] = 1
        self._go = threading.Semaphore(0)
        self._pid = os.getpid()
        self._first = True  # no run has ended yet (begin)
        self._loaded = threading.Event()
        threading.Thread(target=_serve, args=(self._go, self.ctrl, self._loaded), daemon=True,
                         name="pyprune-pair").start()
        weakref.finalize(self, _stop, self._go, self.ctrl, self._pid)

    def usable(self):
        return self._pid == os.getpid()

    def begin(self):
        """Wake the helper to serve until end(): it spins on a core meanwhile. Not in the
        first run: there the caller runs every job, and end() has the helper load its loop
        (from Numba's cache, or compiled: 23 s on the AMD host) after the first result."""
        if self._first:
            return
        self.ctrl[handover.PARK] = 0
        self._go.release()

    def end(self):
        """Park the helper (it goes back to sleep once it sees this)."""
        self.ctrl[handover.PARK] = 1
        if self._first:
            self._first = False
            _loading.append((self._pid, self._loaded))
            self._go.release()  # parked: serve() returns as soon as it is ready

    def conv_parts(self, x, mode, na, k, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer,
                   out, written):
        """finish_first's parts 0 and 1 of a prepared batch of one (its arguments, less the
        part), at once where the helper takes part 1."""
        args = (x, mode, na, k, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out, written)
        self._settled(self._both(handover.conv_parts, args), finish_first, (*args, 1))

    def stem_halves(self, xin, w_lanes, taps, bias, relu, plan, pool_plan, band, second_band, out, mid, end):
        """conv_pool_rows on pool rows [0, mid) with `band` and [mid, end) with
        `second_band`, at once where the helper takes the second half."""
        outcome = self._both(handover.stem_halves, (xin, w_lanes, taps, bias, relu, plan, pool_plan, band,
                                                    second_band, out, mid, end))
        self._settled(outcome, conv_pool_rows, (xin, w_lanes, taps, bias, relu, plan, pool_plan, second_band, out,
                                                mid, end))

    def max_pool_halves(self, first, second, pt, pl):
        """pool.max_pool_3x3s2 on two halves of a batch of one's channels, each (x, live,
        out), at once where the helper takes the second."""
        outcome = self._both(handover.max_pool_halves, (*first, *second, pt, pl))
        self._settled(outcome, max_pool_3x3s2, (second[0], second[1], pt, pl, second[2]))

    def global_pool_halves(self, first, second, use_max):
        """pool.global_pool likewise."""
        outcome = self._both(handover.global_pool_halves, (*first, *second, use_max))
        self._settled(outcome, global_pool, (second[0], second[1], use_max, second[2]))

    def fire_module(self, args):
        """fire.fire_call_paired(ctrl, *args): a fire module's convs, each one's parts on
        both threads at once (a part the helper has not claimed in time, or failed in,
        runs again here inside the compiled call)."""
        if self._both(fire_call_paired, args):
            raise RuntimeError(HELPER_FAILED)

    def probe(self, fail=False, patience=0):
        """A PROBE job (handover.py), for the tests: returns which thread ran it, "helper"
        or "caller", the caller having waited up to `patience` spins for the helper to
        claim it; where `fail`, it raises on whichever thread runs it."""
        outcome = self._both(handover.probe, (fail, patience))
        self._settled(outcome, handover.run_probe, (self.ctrl,))
        return "caller" if outcome == 2 else "helper"

    def _both(self, fn, args):
        """fn(ctrl, *args): posts the second half, runs the first, settles; if the first
        raises, the second is settled (taken back, or waited for) before the error goes on."""
        try:
            return fn(self.ctrl, *args)
        except BaseException:
            handover.settle(self.ctrl)
            handover.settle(self.ctrl[handover.RECORD:])  # a fire module's first expand (fire_call_paired)
            raise

    @staticmethod
    def _settled(outcome, second, args):
        """Run the second half here where it was taken back (2), or again where the helper
        failed in it (1), so that its error is raised here."""
        if outcome == 0:
            return
        second(*args)
        if outcome == 1:
            raise RuntimeError(HELPER_FAILED)
