"""The pyprune model file: one HDF5 file that plain h5py can read.

Schema, format_version 1::

    /                 attrs  format = "pyprune-model", format_version = 1 (integer),
                             name (string), inputs, outputs (arrays of tensor names)
    /inputs           attrs  <input name> = per-sample shape (int64 array: C, H, W or F)
    /nodes/<index>    one group per node, <index> = 000000, 000001, ... in topological order
                      attrs  name, op (strings), inputs, outputs (arrays of tensor names),
                             and the op's attributes (see pyprune/ops): integers as int64,
                             numbers as float64, flags as bool, lists as int64 arrays
                      datasets: the op's weights, float32, by name (e.g. weight, bias)

Integrity: `save` reserves a 512-byte HDF5 user block (HDF5 itself skips it, so plain
h5py reads the file as usual) and writes there "PYPRUNE-HDF5 sha256=<hex digest of the
rest of the file>". `load_model` checks that digest before HDF5 sees a byte (`seal(path)` rewrites it after
an edit with h5py): a truncated
or corrupted file gets a clean error, where libhdf5 could crash or hang on it (seen when
fuzzing). Files without the block (written by other tools) are read as they are.

Reading validates everything before any weight is read: format and version, ops,
attribute types and ranges, weight shapes and dtypes against the attributes and the
incoming channel counts, edges, cycles and sizes; then it reads the weights and rejects
NaN or Inf in them (an error, not a warning: they would silently poison every output).
"""

import hashlib
import os
import subprocess
import sys

import h5py
import numpy as np

from .. import config
from ..errors import ModelError
from ..graph import Model, Node, analyze, check_weight_values
from ..ops import OPS
from ..ops.base import NodeContext

FORMAT = "pyprune-model"
FORMAT_VERSION = 1
NODE_META = ("name", "op", "inputs", "outputs")
USER_BLOCK = 512
CHECKSUM_MAGIC = b"PYPRUNE-HDF5 sha256="


def save(model, path):
    """Write `model` (a Model or a Session) to `path`. The model is validated first."""
    model = getattr(model, "model", model)
    info = analyze(model)
    with h5py.File(path, "w", userblock_size=USER_BLOCK) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["name"] = model.name
        f.attrs["inputs"] = _strings(model.inputs)
        f.attrs["outputs"] = _strings(model.outputs)
        inputs = f.create_group("inputs")
        for name, shape in model.inputs.items():
            inputs.attrs[name] = np.asarray(shape, np.int64)
        nodes = f.create_group("nodes")
        width = max(6, len(str(len(info.order))))
        for i, node in enumerate(info.order):
            g = nodes.create_group(f"{i:0{width}d}")
            g.attrs["name"], g.attrs["op"] = node.name, node.op
            g.attrs["inputs"], g.attrs["outputs"] = _strings(node.inputs), _strings(node.outputs)
            for key, value in info.attrs[node.name].items():
                g.attrs[key] = _attr_value(value)
            for key, w in node.weights.items():
                g.create_dataset(key, data=np.asarray(w, np.float32))
    seal(path)


def _digest(f):
    f.seek(USER_BLOCK)
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest().encode()


def seal(path):
    """(Re)write the checksum block of a model file, e.g. after editing it with h5py."""
    with open(path, "r+b") as f:
        header = CHECKSUM_MAGIC + _digest(f) + b"\n"
        f.seek(0)
        f.write(header.ljust(USER_BLOCK, b"\0"))


def _verify_checksum(path):
    """Raise ModelError if `path` carries pyprune's checksum block and the digest differs."""
    with open(path, "rb") as f:
        head = f.read(USER_BLOCK)
        if not head.startswith(CHECKSUM_MAGIC):
            return False
        stored = head[len(CHECKSUM_MAGIC):].split(b"\n", 1)[0]
        if len(head) < USER_BLOCK or _digest(f) != stored:
            raise ModelError("the file is truncated or corrupted: its content does not match the "
                             "checksum that pyprune.save wrote (after editing a model file on "
                             "purpose, run pyprune.io.hdf5.seal(path))", file=str(path), field="checksum")
    return True


def _probe_in_child(path):
    """Read an unsealed file in a child process first: libhdf5 may crash or hang on a
    corrupted one, which must not take this process with it."""
    code = "import sys, pyprune.io.hdf5 as h; h.load_model(sys.argv[1])"
    env = {**os.environ, "PYPRUNE_PROBING": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True,
                              timeout=config.UNSEALED_PROBE_SECONDS)
    except subprocess.TimeoutExpired:
        raise ModelError(f"reading it did not finish within {config.UNSEALED_PROBE_SECONDS} s (libhdf5 hung "
                         f"on it): the file is corrupted", file=str(path)) from None
    if done.returncode < 0:
        raise ModelError(f"libhdf5 crashed reading it (signal {-done.returncode}): the file is corrupted",
                         file=str(path))
    # Otherwise it loaded, or failed with a clean error that the load here will repeat.


def load_model(path):
    """Read and fully validate the model at `path`; returns a Model. Raises ModelError."""
    try:
        if not _verify_checksum(path) and not os.environ.get("PYPRUNE_PROBING") and os.path.isfile(path):
            _probe_in_child(path)
        with h5py.File(path, "r") as f:
            return _read(f)
    except ModelError as e:
        raise e.in_file(str(path)) from None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"cannot read it as a pyprune HDF5 model ({type(e).__name__}: {e})",
                         file=str(path)) from None


def _read(f):
    fmt = _string(f.attrs.get("format"))
    if fmt != FORMAT:
        raise ModelError(f"not a pyprune model: format is {fmt!r}, expected {FORMAT!r}", field="format")
    version = f.attrs.get("format_version")
    if not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_)) \
            or int(version) != FORMAT_VERSION:
        raise ModelError(f"unknown format_version {version!r}; this pyprune reads version {FORMAT_VERSION}",
                         field="format_version")
    for group in ("inputs", "nodes"):
        if not isinstance(f.get(group), h5py.Group):
            raise ModelError(f"missing group '/{group}'", field=group)
    input_names = _string_list(f.attrs, "inputs", "/")
    inputs = {}
    for name in input_names:
        if name not in f["inputs"].attrs:
            raise ModelError(f"graph input '{name}' has no shape in /inputs", field="inputs")
        shape = np.asarray(f["inputs"].attrs[name])
        if shape.ndim != 1 or shape.dtype.kind not in "iu":
            raise ModelError(f"shape of input '{name}' must be an integer array", field="inputs")
        inputs[name] = tuple(int(d) for d in shape)
    outputs = _string_list(f.attrs, "outputs", "/")
    keys = sorted(f["nodes"].keys())
    if len(keys) > config.MAX_NODES:
        raise ModelError(f"{len(keys)} nodes is over the limit of {config.MAX_NODES}", field="nodes")
    nodes = [_read_node(f["nodes"], i, key) for i, key in enumerate(keys)]
    model = Model(inputs, outputs, nodes, _string(f.attrs.get("name")) or "model")
    info = analyze(model, check_values=False)  # shapes and dtypes only: nothing read yet
    for node in nodes:
        for key, ds in node.weights.items():
            try:
                node.weights[key] = np.ascontiguousarray(ds[()], dtype=np.float32)
            except (OSError, ValueError) as e:
                raise ModelError(f"cannot read the weights ({e})", node=node.name, op=node.op,
                                 field=key) from None
        check_weight_values(node, OPS[node.op], info.attrs[node.name], NodeContext(node.name, node.op))
    return model


def _read_node(group, index, key):
    if key != f"{index:0{len(key)}d}":
        raise ModelError(f"node groups must be named 0, 1, 2, ... in order; found '{key}' at "
                         f"position {index}", field=f"nodes/{key}")
    g = group[key]
    if not isinstance(g, h5py.Group):
        raise ModelError("expected a group", field=f"nodes/{key}")
    for meta in NODE_META:
        if meta not in g.attrs:
            raise ModelError(f"missing attribute '{meta}'", node=_string(g.attrs.get("name")) or key,
                             field=meta)
    name, op = _string(g.attrs["name"]), _string(g.attrs["op"])
    attrs = {k: v for k, v in g.attrs.items() if k not in NODE_META}
    weights = {}
    for wname, ds in g.items():
        if not isinstance(ds, h5py.Dataset):
            raise ModelError("expected a dataset of weights, found a group", node=name, op=op, field=wname)
        if ds.dtype.kind != "f" or ds.dtype.itemsize != 4:
            raise ModelError(f"weights must be float32, got {ds.dtype}", node=name, op=op, field=wname)
        if ds.size > config.MAX_WEIGHT_ELEMENTS:
            raise ModelError(f"dataset of shape {ds.shape} is over the limit of "
                             f"{config.MAX_WEIGHT_ELEMENTS} elements", node=name, op=op, field=wname)
        weights[wname] = ds
    return Node(name, op, _string_list(g.attrs, "inputs", name), _string_list(g.attrs, "outputs", name),
                attrs, weights)


def _strings(items):
    return np.array(list(items), dtype=h5py.string_dtype())


def _attr_value(value):
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, tuple):
        return np.asarray(value, np.int64)
    return value


def _string(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _string_list(attrs, key, where):
    value = attrs.get(key)
    items = np.asarray(value) if value is not None else None
    if items is None or items.ndim != 1 or not all(_string(v) is not None for v in items):
        raise ModelError(f"'{key}' must be an array of tensor names", node=None if where == "/" else where,
                         field=key)
    return [_string(v) for v in items]
