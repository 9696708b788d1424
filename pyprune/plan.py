"""The execution plan of a session, built in the order ONNX Runtime uses (DESIGN.md
section 4): capability (which nodes the chosen device takes; the CPU takes the rest),
fusions within a device, then explicit copies wherever a tensor crosses devices.

The fusions save whole passes over memory:
- a ReLU that alone reads a conv's output runs inside the conv (on each output row while
  it is still in cache); inactive channels stay exactly 0;
- a Concat whose inputs are conv outputs read by nothing else gets one buffer, and each
  conv writes its channels straight into its slice of it (the fire modules' expands);
- a max pool that alone reads a conv's output adds the conv's bias and applies its ReLU
  to the pooled tensor (max commutes with both; VGG/AlexNet/SqueezeNet stems, MNIST);
- where that conv is dense and its output larger than L2 (SqueezeNet's conv1), the conv
  step runs conv and pool together in bands of rows that stay in cache
  (kernels/cpu/conv_pool.py), and the pool's step goes.

And CPU gated convs, and concat buffers they write into, whose memory never reaches the
caller keep their output buffer across calls; a gated conv then zeroes only the inactive
rows that were active last call instead of every inactive row. All CPU convs of a session
share one set of work buffers (im2col columns, gathered weights, GEMM output), which then
stays in cache from one layer to the next.
"""

from dataclasses import dataclass

import numpy as np

from .devices import CPU
from .kernels.cpu.conv_pool import ConvPoolKernel, banded_fits
from .passes import CONV_OPS


@dataclass
class Step:
    """Run one node's kernel on its device."""
    node: object
    kernel: object
    device: object
    inputs: list           # tensor names read
    output: str            # tensor name written
    drop: list             # tensors no longer needed after this step
    into: tuple = None     # (concat tensor, first channel) when writing into a concat buffer
    assemble: bool = False  # a concat whose inputs already sit in its buffer


@dataclass
class Copy:
    """Copy a tensor (data and live mask) from one device to another."""
    tensor: str
    src: object
    dst: object


@dataclass
class Plan:
    steps: list
    resolve: object        # tensor name -> the name it has after fusions
    placement: dict        # node name -> device name (a fused ReLU: its conv's)
    declined: dict         # node name -> why the chosen device left it to the CPU
    concat_kernels: dict   # concat tensor -> the kernel that owns its buffer
    lean: tuple = None     # lean_steps.lean_program of these steps (fire modules fused), made on first need


def place(info, device):
    """(node name -> Device, node name -> reason) for every node: `device` where it accepts."""
    placement, declined = {}, {}
    for node in info.order:
        reason = None
        if device is not CPU:
            reason = device.decline(node, info.attrs[node.name], [info.shapes[t] for t in node.inputs],
                                    info.shapes[node.outputs[0]])
        placement[node.name] = CPU if reason else device
        if reason:
            declined[node.name] = reason
    return placement, declined


def build_plan(model, info, device=CPU):
    placement, declined = place(info, device)
    consumers = {t: list(names) for t, names in info.consumers.items()}
    by_name = {n.name: n for n in info.order}
    alias, fused = {}, set()
    for node in info.order:  # ReLU fusion
        out = node.outputs[0]
        readers = consumers.get(out, [])
        if node.op in CONV_OPS and len(readers) == 1 and out not in model.outputs \
                and by_name[readers[0]].op == "Relu" and placement[readers[0]] is placement[node.name]:
            relu = by_name[readers[0]]
            fused.add(node.name)
            alias[relu.outputs[0]] = out
            consumers[out] = consumers.get(relu.outputs[0], [])
    resolve = lambda t: alias.get(t, t)  # noqa: E731
    into, assembled = {}, set()
    producer = {n.outputs[0]: n for n in info.order}
    for node in info.order:  # concat buffers
        if node.op != "Concat":
            continue
        srcs = [resolve(t) for t in node.inputs]
        ok = len(set(srcs)) == len(srcs) and all(
            t in producer and producer[t].op in CONV_OPS and consumers.get(t) == [node.name]
            and t not in model.outputs and placement[producer[t].name] is placement[node.name] for t in srcs)
        if ok:
            offset = 0
            for t in srcs:
                into[t] = (node.outputs[0], offset)
                offset += info.shapes[t][0]
            assembled.add(node.name)
    pool_pairs = list(_sole_max_pools(model, info, placement, resolve, producer, consumers, into))
    banded = _banded_pools(info, pool_pairs)
    pooled_away = {pool.name for pool in banded.values()}
    live_nodes = [n for n in info.order if not (n.op == "Relu" and n.outputs[0] in alias)
                  and n.name not in pooled_away]
    kernels = {}
    for node in live_nodes:
        inputs = [resolve(t) for t in node.inputs]
        kernels[node.name] = placement[node.name].make_kernel(
            node, info.attrs[node.name], [info.shapes[t] for t in inputs], info.shapes[node.outputs[0]])
        if node.name in fused:
            kernels[node.name].fused_relu = True
        if node.name in banded:
            pool = banded[node.name]
            kernels[node.name] = ConvPoolKernel(node, kernels[node.name], CPU.make_kernel(
                pool, info.attrs[pool.name], [info.shapes[node.outputs[0]]], info.shapes[pool.outputs[0]]))
    _pool_epilogues(pool_pairs, kernels)
    _reused_buffers(model, live_nodes, kernels, placement, resolve, producer, into, assembled)
    _shared_workspace(kernels, placement)
    step_outputs = {conv: pool.outputs[0] for conv, pool in banded.items()}
    steps = _steps_with_copies(model, live_nodes, kernels, placement, resolve, into, assembled, step_outputs)
    for relu in (n for n in info.order if n.op == "Relu" and n.outputs[0] in alias):
        placement[relu.name] = placement[producer[alias[relu.outputs[0]]].name]
    concat_kernels = {by_name[name].outputs[0]: kernels[name] for name in assembled}
    return Plan(steps, resolve, {k: d.name for k, d in placement.items()}, declined, concat_kernels)


def _sole_max_pools(model, info, placement, resolve, producer, consumers, into):
    """(conv, pool) for each CPU MaxPool2d that alone reads a CPU conv's output (after a
    fused ReLU), where that output is neither a graph output nor a concat buffer's slice:
    the pool may finish the conv (its epilogue, or the conv itself in bands)."""
    outputs = {resolve(t) for t in model.outputs}
    for pool in info.order:
        src = resolve(pool.inputs[0])
        conv = producer.get(src)
        if pool.op == "MaxPool2d" and conv is not None and conv.op in CONV_OPS \
                and placement[pool.name] is CPU and placement[conv.name] is CPU \
                and consumers.get(src) == [pool.name] and src not in outputs and src not in into:
            yield conv, pool


def _banded_pools(info, pool_pairs):
    """conv name -> its pool, for the dense convs that ConvPoolKernel can run in bands
    with the pool (banded_fits)."""
    return {conv.name: pool for conv, pool in pool_pairs
            if conv.op == "Conv2d" and info.attrs[conv.name]["groups"] == 1
            and banded_fits(info.shapes[conv.outputs[0]], info.attrs[pool.name], info.shapes[pool.outputs[0]])}


def _pool_epilogues(pool_pairs, kernels):
    """Give a CPU max pool the bias and ReLU of the CPU conv whose output only it reads
    (pools that run inside their conv's bands have no kernel of their own)."""
    for conv, pool in pool_pairs:
        if pool.name in kernels:
            kernels[pool.name].epilogue = kernels[conv.name].hand_epilogue_to_pool()


# CPU kernels whose output is their input's memory (Dropout's Identity, Flatten's reshape).
ALIAS_OPS = ("Dropout", "Flatten")


def _reused_buffers(model, live_nodes, kernels, placement, resolve, producer, into, assembled):
    """Let CPU gated convs, and concat buffers that gated convs write into, keep their
    output buffer across calls when the caller can never see it (nor any part of it): not a
    graph output, nor reachable from one through ALIAS_OPS. (Dense convs write every row
    anyway.)"""
    seen, stack = set(), [resolve(t) for t in model.outputs]
    while stack:
        t = stack.pop()
        if t not in seen:
            seen.add(t)
            node = producer.get(t)
            if node is not None and node.op in ALIAS_OPS:
                stack.append(resolve(node.inputs[0]))
    for node in live_nodes:
        out = node.outputs[0]
        if placement[node.name] is not CPU or out in seen:
            continue
        if node.op == "GatedConv2d" and out not in into:
            kernels[node.name].reuse_output = kernels[node.name].track_zero_rows = True
        elif node.name in assembled:
            srcs = [t for t, (concat, _) in into.items() if concat == out]
            writers = [producer[t] for t in srcs]
            # A writer's output that the caller sees (a graph output, through a fused ReLU) is
            # a view of this buffer: a new buffer per call then, or the next would overwrite it.
            if any(w.op == "GatedConv2d" for w in writers) and not any(t in seen for t in srcs):
                kernels[node.name].reuse_output = True
                for w in writers:
                    kernels[w.name].track_zero_rows = w.op == "GatedConv2d"


def _shared_workspace(kernels, placement):
    """One set of work buffers for all CPU convs of the session (ConvKernel.use_workspace),
    as large as the largest conv needs."""
    convs = [k for name, k in kernels.items()
             if placement[name] is CPU and hasattr(k, "use_workspace") and k.groups == 1]
    if convs:
        sizes = [max(sizes) for sizes in zip(*(k.workspace_sizes() for k in convs))]
        shared = [np.empty(size, np.float32) for size in sizes]
        for k in convs:
            k.use_workspace(*shared)


def _steps_with_copies(model, live_nodes, kernels, placement, resolve, into, assembled, step_outputs):
    """Steps in order; a Copy before the first read of a tensor on a device it is not on.
    step_outputs: node name -> the tensor its step writes, where not its own output (a
    conv that runs its pool too writes the pool's)."""
    last_use = {}
    for i, node in enumerate(live_nodes):
        for t in node.inputs:
            last_use[resolve(t)] = i
    outputs = {resolve(t) for t in model.outputs}
    home = {t: CPU for t in model.inputs}      # the device that made each tensor
    present = {t: {CPU.name} for t in model.inputs}
    steps = []
    for i, node in enumerate(live_nodes):
        device = placement[node.name]
        inputs = [resolve(t) for t in node.inputs]
        for t in dict.fromkeys(inputs):
            if device.name not in present[t]:
                steps.append(Copy(t, home[t], device))
                present[t].add(device.name)
        drop = [t for t in set(inputs) if last_use[t] == i and t not in outputs]
        out = step_outputs.get(node.name, node.outputs[0])
        steps.append(Step(node, kernels[node.name], device, inputs, out, drop, into.get(out),
                          node.name in assembled))
        home[out], present[out] = device, {device.name}
    return steps
