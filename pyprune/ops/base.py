"""What every op declares: its attributes, weights, shape rule, live-channel rule and
NumPy reference. The reference is the oracle that every kernel is tested against; it
computes in float64 and favours clarity over speed."""

import math

import numpy as np

from .. import config
from ..errors import ModelError

REQUIRED = object()


class NodeContext:
    """Names a node in error messages."""

    def __init__(self, name, op):
        self.name, self.op = name, op

    def error(self, field, message):
        return ModelError(message, node=self.name, op=self.op, field=field)


class Attr:
    """One attribute: its kind ('int', 'float', 'bool', 'str', 'ints'), default and range."""

    def __init__(self, name, kind, default=REQUIRED, *, length=None, low=None, high=None,
                 choices=None):
        self.name, self.kind, self.default = name, kind, default
        self.length, self.low, self.high, self.choices = length, low, high, choices

    def parse(self, value, ctx):
        """Return the value normalised to plain Python (int, float, bool, str, tuple of ints)."""
        bad = ctx.error(self.name, f"expected {self._describe()}, got {value!r}")
        if self.kind == "int":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise bad
            value = int(value)
        elif self.kind == "float":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise bad
            value = float(value)
            if not math.isfinite(value):
                raise ctx.error(self.name, f"must be finite, got {value}")
        elif self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise bad
            value = bool(value)
        elif self.kind == "str":
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if not isinstance(value, str):
                raise bad
            if self.choices is not None and value not in self.choices:
                raise ctx.error(self.name, f"must be one of {sorted(self.choices)}, got {value!r}")
            return value
        elif self.kind == "ints":
            arr = np.asarray(value)
            if arr.ndim != 1 or arr.dtype.kind not in "iu" or (self.length and arr.size != self.length):
                raise bad
            value = tuple(int(v) for v in arr)
        self._check_range(value, ctx)
        return value

    def _check_range(self, value, ctx):
        for v in value if isinstance(value, tuple) else (value,):
            if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
                raise ctx.error(self.name, f"{v} is outside [{self.low}, {self.high}]")

    def _describe(self):
        if self.kind == "ints":
            return f"{self.length or 'a list of'} integers"
        return {"int": "an integer", "float": "a number", "bool": "a boolean",
                "str": "a string"}[self.kind]


# Live-channel rules (DESIGN.md section 2).
LIVE_SAME = "same"      # f(0) = 0 per channel: output live = input live
LIVE_ALL = "all"        # every output channel may be non-zero
LIVE_UNION = "union"    # add: union of the inputs' live sets
LIVE_CONCAT = "concat"  # concat: the inputs' live sets side by side
LIVE_GATE = "gate"      # gated conv: the active kernels


class Op:
    """Base of all ops. Subclasses set `name`, `attrs`, `inputs` and the rules below."""

    name = ""
    attrs = ()
    inputs = (1, 1)      # (fewest, most) input tensors; most None = unbounded
    live_rule = LIVE_ALL

    def parse_attrs(self, raw, ctx):
        known = {a.name: a for a in self.attrs}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ctx.error(unknown[0], f"unknown attribute of {self.name} "
                                        f"(known: {sorted(known) or 'none'})")
        out = {}
        for a in self.attrs:
            if a.name in raw:
                out[a.name] = a.parse(raw[a.name], ctx)
            elif a.default is REQUIRED:
                raise ctx.error(a.name, f"missing required attribute of {self.name}")
            else:
                out[a.name] = a.default
        self.check_attrs(out, ctx)
        return out

    def check_attrs(self, a, ctx):
        """Checks that involve several attributes."""

    def weight_shapes(self, a, in_shapes, ctx):
        """The exact set of weights this node must carry, name -> shape."""
        return {}

    def out_shape(self, a, in_shapes, ctx):
        """Per-sample output shape (batch excluded) from per-sample input shapes."""
        raise NotImplementedError

    def live_rule_for(self, a):
        return self.live_rule

    def dense_macs(self, a, in_shapes, out_shape):
        """Multiply-accumulates per sample with every channel live and active."""
        return 0

    def reference(self, a, w, xs):
        """NumPy float64 reference: inputs are (N, ...) arrays, returns the output array."""
        raise NotImplementedError


def require_rank(shape, rank, ctx, field="input"):
    if len(shape) != rank:
        what = {3: "(C, H, W) images", 1: "(F,) feature vectors"}.get(rank, f"rank {rank}")
        raise ctx.error(field, f"expects {what} per sample, got shape {shape}")


def window_out_size(size, k, s, pad_begin, pad_end, dil, ceil_mode, ctx, field):
    """Output length of a sliding window (conv or pool), PyTorch/ONNX rule incl. ceil_mode."""
    span = dil * (k - 1) + 1
    room = size + pad_begin + pad_end - span
    if room < 0:
        raise ctx.error(field, f"window of span {span} does not fit an input of size {size} "
                               f"with padding ({pad_begin}, {pad_end})")
    out = (-(-room // s) if ceil_mode else room // s) + 1
    # A window must start inside the input or the leading padding (PyTorch, ONNX).
    if ceil_mode and (out - 1) * s >= size + pad_begin:
        out -= 1
    return out


def check_elements(shape, ctx, field="output"):
    n = math.prod(shape)
    if n > config.MAX_TENSOR_ELEMENTS:
        raise ctx.error(field, f"declared tensor of shape {shape} has {n} elements per sample, "
                               f"over the limit of {config.MAX_TENSOR_ELEMENTS}")
