"""PyTorch modules with the engine's gate semantics."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..ops.conv import gate_cut


class GatedConv2d(nn.Module):
    """Conv2d + optional BatchNorm2d + optional gate, as pyprune runs it.

    Output: mask * bn(conv(x)) (DESIGN.md section 1.6), the mask per sample and kernel
    group: sigmoid(gate(pool(x))) > threshold. While training the mask is straight-through:
    the forward pass uses the hard 0/1 mask, the backward pass the sigmoid's gradient.
    In eval mode it compares the logits with logit(threshold), as the engine does.
    `gate=None` makes a plain conv (+ batch norm).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 batchnorm=True, gate=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=True)
        self.bn = nn.BatchNorm2d(out_channels) if batchnorm else None
        self.gated = gate is not None
        self.last_mask = self.last_probs = None
        if not self.gated:
            return
        gate = {"group_size": 1, "hidden": 0, "pool": "avg", "threshold": 0.5, **gate}
        self.group_size, self.pool, self.threshold = gate["group_size"], gate["pool"], float(gate["threshold"])
        if out_channels % self.group_size:
            raise ValueError(f"out_channels {out_channels} is not divisible by group_size {self.group_size}")
        hidden = gate["hidden"]
        # Pooled features are standardised (fixed per-channel mean and std, measured on the
        # data before fine-tuning): gates then see per-image differences instead of a
        # shared offset. Being affine, it folds into the first gate layer at export.
        self.register_buffer("gate_in_mean", torch.zeros(in_channels))
        self.register_buffer("gate_in_std", torch.ones(in_channels))
        self.gate_hidden = nn.Linear(in_channels, hidden) if hidden else None
        self.gate = nn.Linear(hidden or in_channels, out_channels // self.group_size)
        nn.init.constant_(self.gate.bias, 2.0)  # gates start open: fine-tuning starts from dense
        self.gates_frozen = False

    def pooled(self, x):
        return x.amax(dim=(2, 3)) if self.pool == "max" else x.mean(dim=(2, 3))

    def gate_logits(self, x):
        s = self.pooled(x)
        s = (s - self.gate_in_mean) / self.gate_in_std
        if self.gate_hidden is not None:
            s = F.relu(self.gate_hidden(s))
        return self.gate(s)

    def forward(self, x):
        y = self.conv(x)
        if self.bn is not None:
            y = self.bn(y)
        if not self.gated:
            return y
        z = self.gate_logits(x)
        probs = torch.sigmoid(z)
        hard = (z > gate_cut(self.threshold)).to(y.dtype)
        mask = hard + probs - probs.detach() if self.training and not self.gates_frozen else hard
        self.last_probs, self.last_mask = probs, mask
        if self.group_size > 1:
            mask = mask.repeat_interleave(self.group_size, dim=1)
        return y * mask[:, :, None, None]

    def dense_macs(self, out_hw):
        c = self.conv
        return c.out_channels * (c.in_channels // c.groups) * math.prod(c.kernel_size) * out_hw


class GatedCNN(nn.Module):
    """A plain chain of conv blocks described by a config, then global average pooling
    and a linear classifier. Each block: GatedConv2d (gated or not) -> ReLU -> optional
    MaxPool2d(pool). The config is saved with every checkpoint, so the converter can
    rebuild the network and check the weights against it.

    config = {"input": [C, H, W], "classes": K, "layers": [
        {"out": 16, "kernel": 3, "padding": 1, "pool": 2,
         "gate": None or {"group_size", "hidden", "pool", "threshold"}}, ...]}
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        c, h, w = config["input"]
        self.blocks = nn.ModuleList()
        self.out_hw = []
        for layer in config["layers"]:
            k, p, s = layer["kernel"], layer.get("padding", 0), layer.get("stride", 1)
            self.blocks.append(GatedConv2d(c, layer["out"], k, s, p, gate=layer.get("gate")))
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            self.out_hw.append(h * w)
            c = layer["out"]
            if layer.get("pool"):
                h, w = h // layer["pool"], w // layer["pool"]
        self.fc = nn.Linear(c, config["classes"])

    def forward(self, x):
        for block, layer in zip(self.blocks, self.config["layers"]):
            x = F.relu(block(x))
            if layer.get("pool"):
                x = F.max_pool2d(x, layer["pool"])
        return self.fc(x.mean(dim=(2, 3)))

    def gated_blocks(self):
        return [b for b in self.blocks if b.gated]

    def executed_fraction(self, soft=False):
        """(N,) conv MACs run / dense conv MACs for the last batch, from the masks, counting
        live input channels (a block's input is live where the previous block's mask is on).
        soft=True uses the gates' sigmoid outputs instead of the hard masks: the smooth
        measure the training penalty pushes down."""
        total, dense, fin = 0.0, 0.0, None
        for block, hw in zip(self.blocks, self.out_hw):
            macs = block.dense_macs(hw)
            fout = None
            if block.gated:
                fout = (block.last_probs if soft else block.last_mask).mean(dim=1)
            share = 1.0
            if fin is not None:
                share = share * fin
            if fout is not None:
                share = share * fout
            total = total + macs * share
            dense += macs
            fin = fout
        return total / dense
