"""A fire module (squeeze conv, then two expand convs that write side by side into their
concat's buffer) as one compiled call: lean_steps.py puts a FireKernel in place of the
module's four steps where the plan has them (SqueezeNet's eight fire modules).

Why: between two layers, the interpreter's objects, each kernel's attributes and Numba's
dispatch of a conv's 18 arguments come back from L3 after a big layer has passed through
the cache. In SqueezeNet gated at 25% on the AMD host, 17-19% of a run was outside the
compiled calls (bench/README.md, seventeenth and eighteenth sessions); one call for four
steps leaves one Python call and one dispatch where there were four. The convs run the
same compiled code as their own steps would (gemm_conv, and the gates' pooling and
logits), so the results are those steps' bits; at one thread the two expands' gates,
which read the same squeeze output, pool it once where they pool alike (expand_gates:
0.983x a gated 25% run and 0.969x a gated 50% one, twenty-sixth session).

With a helper thread (a batch of one at two threads, pair_thread.py), fire_call_paired
runs each conv as the step would with the PairThread (prepare_first, then its GEMM's two
parts on both threads through handover.conv_parts), with the same bits; against the four
steps it took 0.973x dense, 0.916x gated 50% and 0.907x gated 25% at 2 threads
(`.exp/fire_paired_ab.py`, one process alternating the two; bench/README.md, twentieth
session). Since the twenty-fourth session the first expand runs whole on the helper (its
parts one after the other) while this thread runs the second (fire_call_paired).

A call with a calibration hook (the hook needs each gate's logits), or where a conv
cannot run as one compiled call (conv.py: NumPy's BLAS not callable from Numba, a
grouped conv), runs the four steps as they are, one after the other.
"""

import numpy as np
from numba import njit

from .base import Act, c_contiguous, kept, phase_masks
from .conv import ConvKernel
from .conv_gemm import finish_first, prepare_first
from .gated_conv import GatedConvKernel, conv_with_gate, decide_active, decide_pooled, pool_for_gate
from .handover import conv_parts, post_conv_whole, settle, whole_record

NO_GATE_PLAN = np.zeros(0, np.int64)  # the gate arguments of a conv without a gate
NO_GATE_PARAMS = np.zeros(0, np.float32)


@njit(cache=True, nogil=True, boundscheck=False)
def expand_gates(s_out, s_active, a_gate, a_params, a_cut, a_active, b_gate, b_params, b_cut, b_active):
    """Where both expands have gates that pool alike, both their masks from one pooling of
    the squeeze's output (their common input); returns the gate plans the expands' calls
    take then: empty (decided here) or theirs, as views of them either way, which keep the
    arguments' type (NO_GATE_PLAN, a global, is a read-only constant in compiled code: a
    second type for conv_with_gate to be compiled for).
    Why: each gate pooled the same live planes again, about 80 us of a gated 25% run at 1
    thread in all. The pooled values and the masks are the same bits as each gate's own."""
    a_n, b_n = a_gate.shape[0], b_gate.shape[0]
    if a_n == 0 or b_n == 0 or a_gate[0] != b_gate[0]:
        return a_gate[:a_n], b_gate[:b_n]
    pooled = pool_for_gate(s_out, s_active, a_gate[0] != 0)
    decide_pooled(pooled, a_gate, a_params, a_cut, a_active)
    decide_pooled(pooled, b_gate, b_params, b_cut, b_active)
    return a_gate[:0], b_gate[:0]


@njit(cache=True, nogil=True, boundscheck=False)
def fire_call(x, live,
              s_gate, s_params, s_cut, s_active, s_w2, s_w2_t, s_tiles, s_bias, s_plan, s_index, s_cols, s_w, s_y,
              s_out, s_written,
              a_gate, a_params, a_cut, a_active, a_w2, a_w2_t, a_tiles, a_bias, a_plan, a_index, a_cols, a_w, a_y,
              a_written,
              b_gate, b_params, b_cut, b_active, b_w2, b_w2_t, b_tiles, b_bias, b_plan, b_index, b_cols, b_w, b_y,
              b_written,
              concat, concat_live):
    """The squeeze (s_*) on x into s_out, then the expands (a_*, b_*) on s_out into the
    channels of `concat` (N, C_a + C_b, Ho, Wo), the first's then the second's, and their
    active masks side by side into concat_live (N, C_a + C_b). Each conv's arguments are
    those of conv_with_gate; a mask of a conv without a gate is all true. Both expands'
    masks are decided before either runs (expand_gates)."""
    conv_with_gate(x, live, s_gate, s_params, s_cut, s_active, s_w2, s_w2_t, s_tiles, s_bias, s_plan, s_index,
                   s_cols, s_w, s_y, s_out, s_out, s_written)
    a_gate, b_gate = expand_gates(s_out, s_active, a_gate, a_params, a_cut, a_active, b_gate, b_params, b_cut,
                                  b_active)
    ca = a_active.shape[1]
    conv_with_gate(s_out, s_active, a_gate, a_params, a_cut, a_active, a_w2, a_w2_t, a_tiles, a_bias, a_plan,
                   a_index, a_cols, a_w, a_y, concat, concat[:, :ca], a_written)
    conv_with_gate(s_out, s_active, b_gate, b_params, b_cut, b_active, b_w2, b_w2_t, b_tiles, b_bias, b_plan,
                   b_index, b_cols, b_w, b_y, concat, concat[:, ca:], b_written)
    concat_live[:, :ca] = a_active
    concat_live[:, ca:] = b_active


@njit(cache=True, nogil=True, boundscheck=False)
def _conv_paired(ctrl, x, live, gate_plan, gate_params, cut, active, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf,
                 w_buf, y_buf, buffer, out, written):
    """conv_with_gate for a batch of one whose GEMM parts_of may cut in two: part 1 posted to the
    helper serving `ctrl` (handover.conv_parts) while part 0 runs here, as ConvKernel runs
    it with a PairThread; part 1 runs here too where the helper has not claimed it in time,
    or failed in it. Returns whether the helper failed (the caller raises)."""
    if gate_plan.shape[0] != 0:
        decide_active(x, live, gate_plan, gate_params, cut, active)
    mode, na, k, parts = prepare_first(x, live, active, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf,
                                       y_buf, buffer, out, written)
    if parts == 1:
        return False
    outcome = conv_parts(ctrl, x, mode, na, k, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf,
                         buffer, out, written)
    if outcome != 0:
        finish_first(x, mode, na, k, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out,
                     written, 1)
    return outcome == 1


@njit(cache=True, nogil=True, boundscheck=False)
def fire_call_paired(ctrl, x, live,
                     s_gate, s_params, s_cut, s_active, s_w2, s_w2_t, s_tiles, s_bias, s_plan, s_index, s_cols, s_w,
                     s_y, s_out, s_written,
                     a_gate, a_params, a_cut, a_active, a_w2, a_w2_t, a_tiles, a_bias, a_plan, a_index, a_cols, a_w,
                     a_y, a_written,
                     b_gate, b_params, b_cut, b_active, b_w2, b_w2_t, b_tiles, b_bias, b_plan, b_index, b_cols, b_w,
                     b_y, b_written,
                     concat, concat_live):
    """fire_call for a batch of one on both threads: the squeeze's GEMM parts shared with
    the helper thread serving `ctrl` (_conv_paired); then the first expand whole (its gate
    and gemm_conv, which runs its parts one after the other) posted to the helper as one
    job (handover.post_conv_whole) while this thread runs the second's gate and its share
    of its parts, the helper joining those parts once done with the first. The two gates
    pool the squeeze's output at once on the two threads, so expand_gates' one pooling
    would only hold the helper back. Each conv runs the parts, and gives the bits, of the
    module's four steps with a PairThread. Returns whether the helper failed in any part.
    Why: the first expand (1 x 1, a ninth of the 3 x 3's MACs) cut in two gained nothing,
    and its gate, gathers and parts sat on this thread's path: the fire modules at gated
    25% took 0.77x their time at 2 threads with it skipped outright (`.exp/e1_bound.py`,
    twenty-fourth session)."""
    failed = _conv_paired(ctrl, x, live, s_gate, s_params, s_cut, s_active, s_w2, s_w2_t, s_tiles, s_bias, s_plan,
                          s_index, s_cols, s_w, s_y, s_out, s_out, s_written)
    ca = a_active.shape[1]
    whole = whole_record(ctrl)
    post_conv_whole(whole, s_out, s_active, a_gate, a_params, a_cut, a_active, a_w2, a_w2_t, a_tiles, a_bias, a_plan,
                    a_index, a_cols, a_w, a_y, concat, concat[:, :ca], a_written)
    failed |= _conv_paired(ctrl, s_out, s_active, b_gate, b_params, b_cut, b_active, b_w2, b_w2_t, b_tiles, b_bias,
                           b_plan, b_index, b_cols, b_w, b_y, concat, concat[:, ca:], b_written)
    outcome = settle(whole)
    if outcome == 2:  # the helper had not taken it: run it here
        conv_with_gate(s_out, s_active, a_gate, a_params, a_cut, a_active, a_w2, a_w2_t, a_tiles, a_bias, a_plan,
                       a_index, a_cols, a_w, a_y, concat, concat[:, :ca], a_written)
    failed |= outcome == 1
    concat_live[:, :ca] = a_active
    concat_live[:, ca:] = b_active
    return failed


def fusable(squeeze, expand_a, expand_b):
    """Whether three conv kernels can make a FireKernel: each a groups == 1 conv of conv.py
    or gated_conv.py (not a conv with its pool, ConvPoolKernel)."""
    return all(type(k) in (ConvKernel, GatedConvKernel) and k.groups == 1 for k in (squeeze, expand_a, expand_b))


def own_workspace(fire_kernels):
    """Give the first expands of these modules work buffers of their own, one set for all:
    fire_call_paired runs a first expand on the helper thread while this thread runs the
    second, whose buffers are the session's shared ones (plan._shared_workspace)."""
    firsts = [k.convs[1] for k in fire_kernels]
    if firsts:
        sizes = [max(n) for n in zip(*(k.workspace_sizes() for k in firsts))]
        shared = [np.empty(n, np.float32) for n in sizes]
        for k in firsts:
            k.use_workspace(*shared)


class FireKernel:
    """squeeze -> (expand_a, expand_b) -> concat, where the plan has the expands write into
    the concat's buffer (`concat` owns it) and nothing else reads the squeeze's output or
    the expands'. run() takes the squeeze's input and returns the concat's output.

    run() is lean on purpose: it runs once per module per image, after a big layer has
    pushed the interpreter's working set out of cache, and its Python took about 20 us
    warm as first written (begin_call, threshold_for and the masks per conv), 9-12 us now
    (bench/README.md, eighteenth session)."""

    paired_call = True  # with a helper thread: fire_call_paired (else the four steps, each cut in parts)

    def __init__(self, squeeze, expand_a, expand_b, concat):
        self.convs = (squeeze, expand_a, expand_b)
        self.concat = concat
        self.name = f"{squeeze.name}+{expand_a.name}+{expand_b.name}+{concat.name}"
        self.split = expand_a.out_shape[0]  # the first channel of expand_b in the concat
        self.gated = tuple(isinstance(k, GatedConvKernel) for k in self.convs)
        self.gates = tuple((k.gate_plan, k.gate_params) if g else (NO_GATE_PLAN, NO_GATE_PARAMS)
                           for k, g in zip(self.convs, self.gated))
        self.file_cuts = tuple(k.file_cut if g else 0.0 for k, g in zip(self.convs, self.gated))

    def run(self, xs, ctx):
        x = xs[0]
        data = x.data
        squeeze, expand_a, expand_b = self.convs
        pair = ctx.pair
        if ctx.gate_hook is not None or not (data.flags.c_contiguous and self._one_call()) \
                or (pair is not None and not self.paired_call):
            return self._in_steps(c_contiguous(x), ctx)
        n = data.shape[0]
        buffer = self.concat.output_buffer(n)
        s_out = squeeze.output_array(n)
        s_active, a_active, b_active = self._active(squeeze, 0, n), self._active(expand_a, 1, n), \
            self._active(expand_b, 2, n)
        cuts = self.file_cuts if not ctx.thresholds and ctx.default is None else self._cuts(ctx)
        live = np.empty((n, buffer.shape[1]), np.bool_)
        written = (squeeze.written_rows(s_out, n), expand_a.written_rows(buffer, n), expand_b.written_rows(buffer, n))
        args = self._call_args(x, cuts, (s_active, a_active, b_active), written, s_out, buffer, live)
        if pair is None:
            fire_call(*args)
        else:
            pair.fire_module(args)
        squeeze.end_call(n, s_active, s_out)
        expand_a.end_call(n, a_active, buffer)
        expand_b.end_call(n, b_active, buffer)
        return Act(buffer, live if self.gated[1] or self.gated[2] else None)

    def bind(self, xs, phase, store, pair=None):
        """fire_call on kept buffers (CpuKernel.bind), or with `pair` fire_call_paired
        through it: the squeeze's output and the concat's buffer the program's own, each
        gated conv's mask double-buffered (phase_masks), a conv without a gate all true."""
        x = xs[0]
        if not (self._one_call() and x.data.flags.c_contiguous) or (pair is not None and not self.paired_call):
            return None
        n = x.data.shape[0]
        squeeze, expand_a, expand_b = self.convs
        s_out = kept(store, "squeeze", (n, *squeeze.out_shape))
        buffer = kept(store, "concat", (n, *self.concat.out_shape))
        masks = [phase_masks(store, i, (n, k.out_shape[0]), phase) if g else (k.ones(n, k.out_shape[0]),) * 2
                 for i, (k, g) in enumerate(zip(self.convs, self.gated))]
        live = phase_masks(store, "live", (n, buffer.shape[1]), phase)[0]
        args = self._call_args(x, self.file_cuts, [m[0] for m in masks], [m[1] for m in masks], s_out, buffer, live)
        call = (fire_call, args) if pair is None else (pair.fire_module, (args,))
        return (call,), Act(buffer, live if self.gated[1] or self.gated[2] else None)

    def _call_args(self, x, cuts, active, written, s_out, buffer, live):
        """fire_call's arguments for input x: each conv's cut, active mask (decided into)
        and written rows, in the order squeeze, expand_a, expand_b; the squeeze's output,
        the concat's buffer and its live mask."""
        squeeze, expand_a, expand_b = self.convs
        (s_gate, s_params), (a_gate, a_params), (b_gate, b_params) = self.gates
        (s_cut, a_cut, b_cut), (s_active, a_active, b_active), (s_written, a_written, b_written) = \
            cuts, active, written
        y = Act(s_out, s_active if self.gated[0] else None)  # the expands' input, for gemm_args
        return (x.data, squeeze.live_of(x),
                s_gate, s_params, s_cut, s_active, *squeeze.gemm_args(x), s_out, s_written,
                a_gate, a_params, a_cut, a_active, *expand_a.gemm_args(y), a_written,
                b_gate, b_params, b_cut, b_active, *expand_b.gemm_args(y), b_written,
                buffer, live)

    def _one_call(self):
        """Whether each conv runs as one compiled call now (ConvKernel.blas_in_numba, a
        gated conv's one_call_gate; ab_flag and the tests turn these off). Spelt out: a
        generator over the three took 0.8 against 0.34 us warm."""
        squeeze, expand_a, expand_b = self.convs
        gs, ga, gb = self.gated
        return (squeeze.blas_in_numba and expand_a.blas_in_numba and expand_b.blas_in_numba
                and (not gs or squeeze.one_call_gate) and (not ga or expand_a.one_call_gate)
                and (not gb or expand_b.one_call_gate))

    def _active(self, kernel, i, n):
        """The mask conv i's call writes its decisions into; all true for a conv without a gate."""
        if self.gated[i]:
            return np.empty((n, kernel.out_shape[0]), np.bool_)
        return kernel.ones(n, kernel.out_shape[0])

    def _cuts(self, ctx):
        """Each conv's cut for this call's thresholds (0 for a conv without a gate)."""
        return [ctx.cut_for(k.name, cut) if g else 0.0 for k, g, cut in zip(self.convs, self.gated, self.file_cuts)]

    def _in_steps(self, x, ctx):
        """The module's four steps, as lean_steps.py runs them (INTO, INTO, ASSEMBLE)."""
        squeeze, expand_a, expand_b = self.convs
        buffer = self.concat.output_buffer(x.data.shape[0])
        y = squeeze.run([x], ctx)
        a = expand_a.run([y], ctx, out=buffer[:, :self.split])
        b = expand_b.run([y], ctx, out=buffer[:, self.split:])
        return self.concat.assemble([a, b], buffer)
