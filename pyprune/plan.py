"""The execution plan of a session: one step per kernel, after two fusions that save whole
passes over memory:

- a ReLU that alone reads a conv's output runs inside the conv (on each output row while
  it is still in cache); inactive channels stay exactly 0;
- a Concat whose inputs are conv outputs read by nothing else gets one buffer, and each
  conv writes its channels straight into its slice of it (the fire modules' expands).
"""

from dataclasses import dataclass

from .kernels.cpu import CPU_KERNELS
from .passes import CONV_OPS


@dataclass
class Step:
    node: object
    kernel: object
    inputs: list           # tensor names read
    output: str            # tensor name written
    drop: list             # tensors no longer needed after this step
    into: tuple = None     # (concat tensor, first channel) when writing into a concat buffer
    assemble: bool = False  # a concat whose inputs already sit in its buffer


def build_plan(model, info):
    consumers = {t: list(names) for t, names in info.consumers.items()}
    by_name = {n.name: n for n in info.order}
    alias, fused = {}, set()
    for node in info.order:  # ReLU fusion
        out = node.outputs[0]
        readers = consumers.get(out, [])
        if node.op in CONV_OPS and len(readers) == 1 and out not in model.outputs \
                and by_name[readers[0]].op == "Relu":
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
            and t not in model.outputs for t in srcs)
        if ok:
            offset = 0
            for t in srcs:
                into[t] = (node.outputs[0], offset)
                offset += info.shapes[t][0]
            assembled.add(node.name)
    steps, last_use = [], {}
    live_nodes = [n for n in info.order if not (n.op == "Relu" and n.outputs[0] in alias)]
    for i, node in enumerate(live_nodes):
        for t in node.inputs:
            last_use[resolve(t)] = i
    outputs = {resolve(t) for t in model.outputs}
    for i, node in enumerate(live_nodes):
        inputs = [resolve(t) for t in node.inputs]
        kernel = CPU_KERNELS[node.op](node, info.attrs[node.name], [info.shapes[t] for t in inputs],
                                      info.shapes[node.outputs[0]])
        if node.name in fused:
            kernel.fused_relu = True
        drop = [t for t in set(inputs) if last_use[t] == i and t not in outputs]
        steps.append(Step(node, kernel, inputs, node.outputs[0], drop, into.get(node.outputs[0]),
                          node.name in assembled))
    return steps, resolve
