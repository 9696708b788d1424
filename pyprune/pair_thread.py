"""A helper thread that runs one compiled call while the calling thread runs another, for a
batch of one where pyprune has two or more threads: the two parts of a conv GEMM cut in
two (kernels/cpu/conv_gemm.parts_of), and a fire module's expand1x1 while its expand3x3
runs (lean_steps.py). The compiled calls release the GIL, so they run at once.

Two locks hand the work over and back (a job goes to whichever thread claims it first,
PairThread.wait): a round trip took about 17 us on the AMD host,
against 18 us of work that the caller alone does in 3 us (a tiny GEMM), so only GEMMs of
millions of MACs are cut (config.SPLIT_GEMM_MACS)."""

import os
import threading
import weakref


def _serve(go, done, slot):
    """The helper's loop: wake on go, claim the job in the list slot[0] (unless the caller
    has taken it back meanwhile), run it and then any job added to the list slot[2]
    (PairThread.also), leave the first exception (or None) in slot[1] and release done,
    once per job claimed. A job of None ends the thread. It holds no reference to its
    PairThread, so that dropping the PairThread (its session) stops it."""
    while True:
        go.acquire()
        try:
            job = slot[0].pop()  # list.pop is atomic: the caller may claim the same job
        except IndexError:
            continue  # the caller took the job back before this thread woke
        if job is None:
            return
        error = None
        while job is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException as failure:  # handed back to the caller, raised there
                error = failure
                break
            job = slot[2].pop() if slot[2] else None  # the caller may append meanwhile
        slot[1] = error
        done.release()


def _wake(go):
    """Release go unless a release is still pending (the helper has not woken for the last
    one, whose job the caller took back): the helper then claims whatever the list holds
    when it wakes. Only the caller releases go and only the helper acquires it, so the
    lock cannot be released between the test and the release."""
    if go.locked():
        go.release()


class PairThread:
    """run_both(fn, here, there): fn(*there) on the helper thread and fn(*here) on the
    calling thread at once; returns when both have, raising what either raised. start()
    and wait() do the same in two steps, so that the caller can go on meanwhile (a fire
    module's two expands, lean_steps.py); a run_both or start waits for a started job first,
    and also() adds work to a started job that has not ended yet.

    A started job belongs to whichever thread claims it first: wait() runs it on the
    calling thread if the helper has not begun it yet. On a shared host a neighbour can
    hold the second core for milliseconds, and the caller then does the work itself
    instead of waiting for a helper that has not started (the parts of a sample give the
    same bits on either thread).
    Used by one thread at a time (a session runs one call at a time). A forked child has
    no helper thread: `usable()` is False there, and the session makes a new PairThread."""

    def __init__(self):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._slot = [[], None, []]  # the job to claim, the helper's error, what also() added
        self._running = False  # a started job not yet waited for
        self._pid = os.getpid()
        threading.Thread(target=_serve, args=(self._go, self._done, self._slot), daemon=True,
                         name="pyprune-pair").start()
        weakref.finalize(self, _stop, self._go, self._slot, self._pid)

    def usable(self):
        return self._pid == os.getpid()

    def run_both(self, fn, here, there):
        self.start(fn, there)
        try:
            fn(*here)
        finally:  # the helper may still be writing into the caller's buffers: wait for it
            self.wait()

    def busy(self):
        """Whether a job started earlier has not been waited for (it may have ended)."""
        return self._running

    def also(self, fn, args):
        """Have the helper run fn(*args) after the job it is running, if that job has not
        ended by then and the helper claimed it; else it is never run. The caller must be
        able to do without it: a tiled conv's second part, which claims only the pixels
        the first has not (tile_gemm.tiled_conv3x3). wait() waits for it too."""
        self._slot[2].append((fn, args))

    def start(self, fn, args):
        """Run fn(*args) on the helper thread and return at once; wait() collects it. A job
        started earlier is waited for first (and its error raised)."""
        self.wait()
        self._slot[1] = None
        self._slot[0].append((fn, args))
        self._running = True
        _wake(self._go)

    def wait(self):
        """Wait for the job start() gave the helper, if any, and raise what it raised; a
        job the helper has not claimed yet runs here instead (what also() added is then
        dropped)."""
        if not self._running:
            return
        self._running = False
        try:
            job = self._slot[0].pop()
        except IndexError:  # the helper has it: wait for the job and what also() added
            self._done.acquire()
            self._slot[2].clear()  # an also() that came after the helper's job had ended
            if self._slot[1] is not None:
                error, self._slot[1] = self._slot[1], None
                raise error
            return
        self._slot[2].clear()
        fn, args = job
        fn(*args)


def _stop(go, slot, pid):
    if os.getpid() == pid:
        slot[0].append(None)
        _wake(go)
