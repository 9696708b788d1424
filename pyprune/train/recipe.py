"""The training recipe for gated CNNs (DESIGN.md section 6b).

1. Train the dense network (every block ungated).
2. Fine-tune a gated copy from it: gates start open (bias +2), straight-through hard
   masks, and a hinge penalty on the executed MAC fraction (live inputs included) above
   a target, ramped in over the first epochs. Gates trained from scratch switch off
   together and a layer goes dark; starting from the dense weights avoids that.
3. Freeze the gates for the last epochs and let the weights adapt to the masks.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .data import to_float
from .modules import GatedCNN


@dataclass
class Schedule:
    dense_epochs: int = 10
    gated_epochs: int = 18
    frozen_epochs: int = 8      # last epochs of the gated phase with gates fixed
    ramp_epochs: int = 3        # penalty gain ramps from 0 to `gain` over these
    batch_size: int = 64
    lr: float = 2e-3
    gate_lr: float = 5e-4
    gain: float = 1.5
    layer_target: float = 0.4   # each gated layer's mean gate output is pushed below this,
                                # the hinge weighted by the layer's share of conv MACs
    target: float = None        # instead: push the whole net's executed conv-MAC fraction here
    shift: int = 2              # random translation (pixels) for augmentation
    distill: float = 1.0        # weight of distillation from the dense net while fine-tuning
    temperature: float = 2.0


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    return np.random.default_rng(seed)


def _batches(rng, x, y, batch_size, shift):
    order = rng.permutation(len(x))
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        xb = torch.from_numpy(to_float(x[idx]))
        if shift:
            padded = F.pad(xb, (shift,) * 4)
            dy, dx = rng.integers(0, 2 * shift + 1, 2)
            xb = padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]
        yield xb, torch.from_numpy(y[idx])


def _run_epochs(net, params, lr, x, y, epochs, rng, schedule, penalty=None, teacher=None):
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    for epoch in range(epochs):
        net.train()
        for xb, yb in _batches(rng, x, y, schedule.batch_size, schedule.shift):
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            if teacher is not None:  # distillation: match the dense network's soft outputs
                with torch.no_grad():
                    soft = F.softmax(teacher(xb) / schedule.temperature, dim=1)
                loss = loss + schedule.distill * schedule.temperature ** 2 * F.kl_div(
                    F.log_softmax(logits / schedule.temperature, dim=1), soft, reduction="batchmean")
            if penalty is not None:
                loss = loss + penalty(epoch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()


def train_dense(config, x, y, seed, schedule=Schedule()):
    """Train the network of `config` with every gate removed."""
    rng = seed_everything(seed)
    dense_config = copy.deepcopy(config)
    for layer in dense_config["layers"]:
        layer["gate"] = None
    net = GatedCNN(dense_config)
    _run_epochs(net, net.parameters(), schedule.lr, x, y, schedule.dense_epochs, rng, schedule)
    return net.eval()


def finetune_gated(config, dense, x, y, seed, schedule=Schedule()):
    """Gated copy of `dense` (same conv, batch-norm and classifier weights), fine-tuned."""
    rng = seed_everything(seed + 1000)
    net = GatedCNN(config)
    missing, unexpected = net.load_state_dict(dense.state_dict(), strict=False)
    assert not unexpected and all(".gate" in k for k in missing), (missing, unexpected)
    standardize_gate_inputs(net, x)
    gate_params = [p for n, p in net.named_parameters() if ".gate" in n]
    other_params = [p for n, p in net.named_parameters() if ".gate" not in n]
    active_epochs = schedule.gated_epochs - schedule.frozen_epochs

    shares = _mac_shares(net)

    def penalty(epoch):
        gain = schedule.gain * min(1.0, (epoch + 1) / schedule.ramp_epochs)
        if schedule.target is None:  # per layer, weighted by its share of MACs
            return gain * sum(share * F.relu(block.last_probs.mean() - schedule.layer_target)
                              for block, share in shares)
        return gain * F.relu(net.executed_fraction(soft=True).mean() - schedule.target)

    params = [{"params": other_params, "lr": schedule.lr / 4}, {"params": gate_params, "lr": schedule.gate_lr}]
    _run_epochs(net, params, schedule.lr, x, y, active_epochs, rng, schedule, penalty, teacher=dense)
    for block in net.gated_blocks():
        block.gates_frozen = True
    _run_epochs(net, other_params, schedule.lr / 4, x, y, schedule.frozen_epochs, rng, schedule, teacher=dense)
    return net.eval()


def _mac_shares(net):
    total = sum(b.dense_macs(hw) for b, hw in zip(net.blocks, net.out_hw))
    return [(b, b.dense_macs(hw) / total) for b, hw in zip(net.blocks, net.out_hw) if b.gated]


@torch.no_grad()
def standardize_gate_inputs(net, x, n=1000):
    """Measure each gate's pooled input over `n` training images (all gates open) and set
    its standardisation buffers."""
    net.eval()
    seen = {}
    hooks = [b.register_forward_pre_hook(lambda m, inp: seen.__setitem__(m, m.pooled(inp[0])))
             for b in net.gated_blocks()]
    net(torch.from_numpy(to_float(x[:: max(1, len(x) // n)])))
    for h in hooks:
        h.remove()
    for block, s in seen.items():
        block.gate_in_mean.copy_(s.mean(0))
        block.gate_in_std.copy_(s.std(0).clamp_min(1e-3))


@torch.no_grad()
def evaluate(net, x, y):
    """(accuracy, (N,) executed conv-MAC fraction as the masks imply) in eval mode."""
    net.eval()
    logits = net(torch.from_numpy(to_float(x)))
    frac = net.executed_fraction().numpy() if net.gated_blocks() else np.ones(len(x))
    return float((logits.argmax(1).numpy() == y).mean()), frac
