"""A lean program (lean_steps.py) bound once to its arrays, for repeated calls of one small
batch size with the file's thresholds: each step becomes a compiled function
and the tuple of arrays it is called with, so that a run is `f(*args)` per step and no
kernel's Python runs at all.

Why: between two layers, a big layer's data has pushed the interpreter's working set out
of cache, and each step's Python (building outputs and masks, reading kernel attributes,
checking contiguity) then took 13-43 us; in SqueezeNet gated at 25% about 15% of a run on
the AMD host was outside the compiled calls (bench/README.md, twenty-second session).

How the arrays stay fixed: the program owns an input buffer per graph input (the caller's
array is copied in, and checked for NaN and Inf in the same pass), every step's output
buffer, and two sets of every mask a gate decides, used in alternate runs (`phase`): a
run writes its masks into one set while the other still holds the masks of the run
before, which are the rows its buffers may hold non-zeros in (ConvKernel.written_rows;
both sets start all true, so the first run zeroes every inactive row). A kernel's
`bind(xs, phase, store, pair)` returns its calls for one phase and its output Act, or
None where it would take a path that is not one compiled call (then the session runs the
lean program as before); with `pair` (a batch of one at two threads) its calls share
their parts with the helper thread, as run() does with ctx.pair. The outputs the caller
gets are copies: the buffers are the next run's.

The buffers and masks are the program's own, apart from the kernels' shared work buffers
(used within a call only), so a call that cannot run bound (another threshold, stats, a
calibration hook, a batch split over threads) runs the lean program on the kernels' own
buffers, and the two never see each other's state. Kernel switches (ConvKernel.tiles and the like)
are read when the program is bound: a session binds anew after Session.unbind().
"""

import numpy as np
from numba import njit

from .errors import InputError
from .kernels.cpu.base import Act
from .lean_steps import RUN

NON_FINITE = np.uint32(0x7F800000)  # a float32 with these exponent bits all set is Inf or NaN


@njit(cache=True, nogil=True, boundscheck=False)
def copy_finite(src, dst):
    """dst[:] = src (flat, C-contiguous float32 arrays of one size), bit for bit; returns
    whether every value was finite. The check reads the exponent bits as integers, so the
    loop vectorises (an OR over lanes); a float compare or a sum of v * 0 did not, or
    needed fast-math."""
    s, d = src.view(np.uint32), dst.view(np.uint32)
    bad = np.uint32(0)
    for i in range(s.shape[0]):
        u = s[i]
        d[i] = u
        # exponent bits all ones (Inf, NaN) carry into the top bit; any other do not
        bad |= (u & NON_FINITE) + np.uint32(0x00800000)
    return (bad & np.uint32(0x80000000)) == 0


class BoundProgram:
    """A lean program's steps bound for batches of `n` samples (bind_program makes one)."""

    def __init__(self, program, n, pair, input_buffers, phases):
        self.program, self.n, self.pair = program, n, pair
        self.input_buffers = input_buffers  # one (n, *shape) array per graph input, in order
        self.phases = phases  # per phase: (the calls, the output Acts)
        self.phase = 0
        self.broken = False  # a step raised mid-run: its buffers and masks are in no known state

    def ready(self):
        """Whether the program can run now: no step raised in it, and its pair thread (if
        any) belongs to this process (a forked child needs a pair of its own)."""
        return not self.broken and (self.pair is None or self.pair.usable())

    def run(self, arrays, names):
        """Run the caller's input arrays (validated for dtype and shape; `names` for errors)
        through the steps; returns copies of the output arrays, in order."""
        for arr, buf, name in zip(arrays, self.input_buffers, names):
            if arr.flags.c_contiguous:
                finite = copy_finite(arr.reshape(-1), buf.reshape(-1))
            else:
                np.copyto(buf, arr)
                finite = bool(np.isfinite(buf).all())
            if not finite:
                raise InputError(f"input '{name}' contains NaN or Inf")
        calls, outputs = self.phases[self.phase]
        pair = self.pair
        if pair is not None:
            pair.begin()  # the helper serves until end(), spinning meanwhile
        try:
            for f, args in calls:
                f(*args)
        except BaseException:
            self.broken = True  # the session binds anew for its next call
            raise
        finally:
            if pair is not None:
                pair.end()
        self.phase ^= 1
        return [y.data.copy() for y in outputs]


def bind_program(program, n, input_shapes, pair=None):
    """A BoundProgram of `program` (lean_program's tuple) for batches of n, sharing a batch
    of one's parts with `pair` (a PairThread) where given, or None where a step cannot be
    bound (an instruction other than RUN, or a kernel whose bind says no)."""
    instructions, count, inputs, outputs = program
    input_buffers = [np.empty((n, *shape), np.float32) for shape in input_shapes]
    stores = {}  # id(kernel) -> the kernel's own buffers and masks in this program
    phases = []
    for phase in (0, 1):
        values = [None] * count
        for s, buf in zip(inputs, input_buffers):
            values[s] = Act(buf, None)
        calls = []
        for kind, kernel, ins, out, _, _ in instructions:
            bind = getattr(kernel, "bind", None)
            if kind != RUN or bind is None:
                return None
            bound = bind([values[s] for s in ins], phase, stores.setdefault(id(kernel), {}), pair)
            if bound is None:
                return None
            step_calls, values[out] = bound
            calls.extend(step_calls)
        phases.append((tuple(calls), [values[s] for s in outputs]))
    return BoundProgram(program, n, pair, input_buffers, phases)

