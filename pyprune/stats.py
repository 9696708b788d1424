"""What a stats run reports: per layer and per sample, the work the gates skipped."""

from dataclasses import dataclass

import numpy as np


@dataclass
class LayerStats:
    name: str
    op: str
    seconds: float            # wall time of the layer for the whole batch
    executed_macs: np.ndarray  # (N,) MACs run per sample, gate included
    dense_macs: int           # MACs of the same layer with every channel live and active
    in_channels: int
    live_in: np.ndarray       # (N,) live input channels per sample
    kernels: int              # output channels
    active: np.ndarray        # (N,) active output kernels per sample (all for ungated layers)
    gated: bool
    mask: np.ndarray = None   # (N, C_out) bool, the active kernels of a gated layer


@dataclass
class RunStats:
    layers: list

    @property
    def executed_macs(self):
        """(N,) total MACs executed per sample."""
        return np.sum([l.executed_macs for l in self.layers], axis=0)

    @property
    def dense_macs(self):
        return int(sum(l.dense_macs for l in self.layers))

    @property
    def executed_fraction(self):
        """(N,) executed MACs / dense MACs per sample."""
        return self.executed_macs / max(self.dense_macs, 1)

    @property
    def seconds(self):
        return sum(l.seconds for l in self.layers)

    def table(self):
        """A per-layer text table (means over the batch)."""
        rows = [f"{'layer':<28}{'op':<14}{'active':>13}{'live in':>13}{'MACs %':>9}{'ms':>9}"]
        for l in self.layers:
            if not l.dense_macs and not l.gated:
                continue
            pct = 100.0 * l.executed_macs.mean() / l.dense_macs if l.dense_macs else 0.0
            rows.append(f"{l.name[:27]:<28}{l.op:<14}{l.active.mean():>7.1f}/{l.kernels:<5}"
                        f"{l.live_in.mean():>7.1f}/{l.in_channels:<5}{pct:>8.1f}%{1e3 * l.seconds:>9.3f}")
        frac = self.executed_fraction
        rows.append(f"total: {self.executed_macs.mean() / 1e6:.2f} M of {self.dense_macs / 1e6:.2f} M "
                    f"dense MACs ({100 * frac.mean():.1f}%, per sample {100 * frac.min():.1f}-"
                    f"{100 * frac.max():.1f}%), {1e3 * self.seconds:.2f} ms in layers")
        return "\n".join(rows)
