"""What a device must provide: a place for tensors, copies in and out, synchronisation, and
kernels for the ops it can run (DESIGN.md section 5).

A device may decline a node (an op it has no kernel for, or parameters its kernel cannot
handle); the CPU, which runs everything, then takes that node and the plan copies tensors
across. Registries are plain dicts beside their base class.
"""

from ..kernels.cpu import Act


class Device:
    name = ""
    max_batch = None  # the largest batch one call may pass, or None for no limit

    def decline(self, node, attrs, in_shapes, out_shape):
        """None when this device can run `node`, else the reason it cannot (a sentence)."""
        raise NotImplementedError

    def make_kernel(self, node, attrs, in_shapes, out_shape):
        """The prepared kernel (weights packed onto this device) for an accepted node."""
        raise NotImplementedError

    def to_device(self, array):
        """A host NumPy array -> an array of this device."""
        raise NotImplementedError

    def to_host(self, array):
        """An array of this device -> a host NumPy array (waits for pending work)."""
        raise NotImplementedError

    def empty(self, shape, dtype):
        raise NotImplementedError

    def synchronize(self):
        """Wait until every kernel launched on this device has finished."""

    def channel_window(self, buffer, first, count):
        """Channels [first, first + count) of an (N, C, ...) buffer of this device, for a conv
        to write its output into (a concat buffer); a view by default."""
        return buffer[:, first:first + count]

    def upload(self, act):
        live = None if act.live is None else self.to_device(act.live)
        return Act(self.to_device(act.data), live)

    def download(self, act):
        live = None if act.live is None else self.to_host(act.live)
        return Act(self.to_host(act.data), live)

    def __repr__(self):
        return f"<pyprune device {self.name}>"
