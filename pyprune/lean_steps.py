"""A plan's steps as slot-indexed instructions, for every call wholly on the CPU without
per-layer stats (Session._execute takes this path then; the general loop keeps stats and
copies between devices).

Why: between two layers, a big layer's data has pushed the interpreter's own working set
out of L2, so every dictionary, attribute and method the loop touches per step is a miss.
In SqueezeNet gated at 25% (40 steps, 3.7 ms on the AMD host) the general loop's
per-device dictionaries, Copy checks and concat bookkeeping cost 2-4% of the run
(bench/README.md, seventeenth session); here a step is one tuple, its tensors list slots.

A fire module's four steps become one (kernels/cpu/fire.py, `fuse=True`); with a helper
thread (a batch of one at two threads, pair_thread.py) that one compiled call shares each
conv's GEMM parts with it.
"""

from .kernels.cpu.fire import FireKernel, fusable, own_workspace

RUN, INTO, ASSEMBLE = range(3)


def lean_program(plan, input_names, output_tensors, fuse):
    """For a plan whose steps all run on the CPU (no Copy steps): (instructions, slots,
    input slots, output slots). An instruction is (kind, the kernel, input slots, output
    slot, slots to free after it, extra): extra is (concat buffer's slot, first
    and end channel, the concat's kernel) for INTO, the buffer's slot for ASSEMBLE. fuse:
    run each fire module as one RUN of a FireKernel (fuse_fire_modules), else keep its
    steps (Session.fuse_fire_modules)."""
    slots = {}

    def slot(t):
        return slots.setdefault(t, len(slots))

    inputs = tuple(slot(t) for t in input_names)
    program = []
    for step in plan.steps:
        ins, out, free = tuple(slot(t) for t in step.inputs), slot(step.output), tuple(slot(t) for t in step.drop)
        if step.into is not None:
            concat, first = step.into
            extra = (slot(concat), first, first + step.kernel.out_shape[0], plan.concat_kernels[concat])
            program.append((INTO, step.kernel, ins, out, free, extra))
        elif step.assemble:
            program.append((ASSEMBLE, step.kernel, ins, out, free, out))
        else:
            program.append((RUN, step.kernel, ins, out, free, None))
    if fuse:
        program = fuse_fire_modules(program)
    return tuple(program), len(slots), inputs, tuple(slot(t) for t in output_tensors)


def fuse_fire_modules(program):
    """program with each fire module's four instructions as one RUN of a FireKernel: a
    conv (RUN) whose output only the next two read (their slots free it), both convs
    writing into one concat buffer, the first at channel 0 and the second up to its end,
    then that concat (ASSEMBLE) of exactly their two outputs."""
    fused, kernels, i = [], [], 0
    while i < len(program):
        window = program[i:i + 4]
        if len(window) == 4 and _is_fire_module(*window):
            squeeze, a, b, concat = window
            kernel = FireKernel(squeeze[1], a[1], b[1], a[5][3])
            kernels.append(kernel)
            fused.append((RUN, kernel, squeeze[2], concat[3], tuple(dict.fromkeys(squeeze[4] + concat[4])), None))
            i += 4
        else:
            fused.append(program[i])
            i += 1
    own_workspace(kernels)
    return fused


def _is_fire_module(squeeze, a, b, concat):
    """Whether four instructions are a fire module as fuse_fire_modules takes it."""
    kind, kernel, _, s_out, _, _ = squeeze
    if kind != RUN or a[0] != INTO or b[0] != INTO or concat[0] != ASSEMBLE:
        return False
    (buf, a_first, a_end, owner), (b_buf, b_first, b_end, _) = a[5], b[5]
    return (a[2] == b[2] == (s_out,) and s_out in a[4] + b[4] and a[3] in concat[4] and b[3] in concat[4]
            and concat[1] is owner
            and buf == b_buf == concat[5] and concat[2] == (a[3], b[3])
            and a_first == 0 and b_first == a_end and b_end == owner.out_shape[0]
            and fusable(kernel, a[1], b[1]))


def run_lean(program, feeds, ctx):
    """Run feeds (Acts, in the order of the program's input slots) through program; returns
    the output tensors' arrays in order."""
    instructions, count, inputs, outputs = program
    values = [None] * count
    buffers = [None] * count  # concat slot -> the buffer its producers write into, this call
    for s, act in zip(inputs, feeds):
        values[s] = act
    for kind, kernel, ins, out, free, extra in instructions:
        xs = [values[s] for s in ins]
        if kind == RUN:
            values[out] = kernel.run(xs, ctx)
        elif kind == ASSEMBLE:
            values[out] = kernel.assemble(xs, buffers[extra])
        else:  # INTO
            concat, first, end, owner = extra
            buf = buffers[concat]
            if buf is None:
                buf = buffers[concat] = owner.output_buffer(xs[0].data.shape[0])
            values[out] = kernel.run(xs, ctx, out=buf[:, first:end])
        for s in free:
            values[s] = None
    return [values[s].data for s in outputs]
