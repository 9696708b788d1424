"""CPU Concat, Add and Flatten: NumPy does the data movement; the kernels' work is to
carry the live-channel masks (DESIGN.md section 2)."""

import numpy as np

from .base import Act, CpuKernel


class ConcatKernel(CpuKernel):
    def run(self, xs, ctx):
        return self.assemble(xs, np.concatenate([x.data for x in xs], axis=1))

    def output_buffer(self, n):
        """The array the producers write into (CpuKernel.output_array: kept across calls
        only where the caller can never see it)."""
        return self.output_array(n)

    def assemble(self, xs, data):
        """The concat of xs whose data already sit side by side in `data`: join the masks."""
        if all(x.live is None for x in xs):
            return Act(data, None)
        live = np.concatenate([self.live_of(x) for x in xs], axis=1)
        return Act(data, live)


class AddKernel(CpuKernel):
    def run(self, xs, ctx):
        a, b = xs
        live = None if a.live is None or b.live is None else a.live | b.live
        return Act(a.data + b.data, live)


class FlattenKernel(CpuKernel):
    def run(self, xs, ctx):
        x = xs[0]
        n = x.data.shape[0]
        data = x.data.reshape(n, -1)
        if x.live is None:
            return Act(data, None)
        per_channel = data.shape[1] // x.live.shape[1]
        if per_channel == 1:  # after a global pool: the mask already is per feature
            return Act(data, x.live)
        return Act(data, np.repeat(x.live, per_channel, axis=1))

    def bind(self, xs, phase, store, pair=None):
        """A view of x (CpuKernel.bind), where its mask carries over as it is: a mask
        repeated per feature would be made per run."""
        x = xs[0]
        n = x.data.shape[0]
        if x.live is not None and x.data[0].size != x.live.shape[1]:
            return None
        return (), Act(x.data.reshape(n, -1), x.live)
