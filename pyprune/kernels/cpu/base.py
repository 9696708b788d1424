"""What a CPU kernel is: prepared once per node at session start, then run per batch."""

import numpy as np


class Act:
    """An activation: `data` (N, ...) float32, and `live` (N, C) bool, the channels of each
    sample that may be non-zero, or None when every channel may be. A channel that is not
    live holds exact zeros."""

    __slots__ = ("data", "live")

    def __init__(self, data, live=None):
        self.data, self.live = data, live


def c_contiguous(x):
    """x, or an Act of a C-contiguous copy of its data (a strided view of the user's input):
    the convs' one compiled call needs it, and their Python path, which it would otherwise
    take, multiplies with NumPy's BLAS, not always the library the compiled call uses, so
    the copy's bits would differ from those of the same values passed contiguous."""
    return x if x.data.flags.c_contiguous else Act(np.ascontiguousarray(x.data), x.live)


class CpuKernel:
    """Base of CPU kernels. A subclass packs weights in __init__ and implements run().

    `reuse_output` (set by the plan where the caller can never see this kernel's output)
    lets output_array keep one output array across calls instead of a new one each call."""

    reuse_output = False
    _kept_output = None

    def __init__(self, node, a, in_shapes, out_shape):
        self.name, self.attrs = node.name, a
        self.in_shapes, self.out_shape = in_shapes, out_shape
        self._masks = {}  # (n, c, value) -> a constant bool mask

    def output_array(self, n):
        """An (N, *out_shape) float32 array for this call's output."""
        if not self.reuse_output:
            return np.empty((n, *self.out_shape), np.float32)
        if self._kept_output is None or len(self._kept_output) != n:
            self._kept_output = np.empty((n, *self.out_shape), np.float32)
        return self._kept_output

    def run(self, xs, ctx):
        """xs: list of Act; ctx: the RunContext of this call. Returns an Act."""
        raise NotImplementedError

    def bind(self, xs, phase, store, pair=None):
        """This kernel's run on xs as compiled calls bound to fixed arrays, for
        bound_program.py: (a tuple of (function, argument tuple), the output Act), with the
        output and any mask it decides kept in `store` (kept, phase_masks), or None where
        run() would not be such calls (the session then runs the lean program). `pair`:
        the PairThread a batch of one shares its parts with, as ctx.pair in run()."""
        return None

    def macs(self, xs, y):
        """(executed MACs per sample, dense MACs per sample); ops without MACs return zeros."""
        return np.zeros(xs[0].data.shape[0], np.int64), 0

    def live_of(self, x):
        """x's live mask as an array: an all-true one where x.live is None (every channel)."""
        return self.ones(*x.data.shape[:2]) if x.live is None else x.live

    def ones(self, n, c):
        """An all-true (n, c) mask, made once per shape: kernels take masks, not None."""
        return self._constant_mask(n, c, True)

    def zeros(self, n, c):
        """An all-false (n, c) mask, made once per shape."""
        return self._constant_mask(n, c, False)

    def _constant_mask(self, n, c, value):
        mask = self._masks.get((n, c, value))
        if mask is None:
            mask = self._masks[(n, c, value)] = np.full((n, c), value, np.bool_)
        return mask


def kept(store, key, shape, dtype=np.float32):
    """The array `store` keeps under key (made on first need): a bound step's output."""
    arr = store.get(key)
    if arr is None:
        arr = store[key] = np.empty(shape, dtype)
    return arr


def phase_masks(store, key, shape, phase):
    """(this phase's mask, the other phase's) of a mask a step decides each run: two all-true
    (n, C) bool arrays, made on first need (bound_program.py says why two)."""
    pair = store.get(key)
    if pair is None:
        pair = store[key] = (np.ones(shape, np.bool_), np.ones(shape, np.bool_))
    return pair[phase], pair[1 - phase]
