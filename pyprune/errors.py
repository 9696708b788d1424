"""The errors pyprune raises. Every problem with a model file, a graph or an input
is reported as one of these, naming where it is (file, node, field) and what is wrong."""


class PyPruneError(Exception):
    """Base class of every error pyprune raises on purpose."""


class ModelError(PyPruneError, ValueError):
    """A model (in memory or in a file) is malformed: bad op, attribute, weight or edge.

    `file`, `node` and `field` say where the problem is; any of them may be None.
    """

    def __init__(self, message, *, file=None, node=None, op=None, field=None):
        self.file, self.node, self.op, self.field = file, node, op, field
        where = []
        if file is not None:
            where.append(f"file '{file}'")
        if node is not None:
            where.append(f"node '{node}'" + (f" ({op})" if op else ""))
        if field is not None:
            where.append(f"field '{field}'")
        self.detail = message
        super().__init__((", ".join(where) + ": " if where else "") + message)

    def in_file(self, file):
        """The same error, now also naming the file it came from."""
        return ModelError(self.detail, file=file, node=self.node, op=self.op, field=self.field)


class InputError(PyPruneError, ValueError):
    """An input given to `Session.run` (or an argument of a call) is unusable."""


class DeviceError(PyPruneError, RuntimeError):
    """A device was asked for that this machine cannot provide (no GPU, no numba-cuda)."""
