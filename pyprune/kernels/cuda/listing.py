"""Each sample's channel listing that the CUDA conv reads (conv.py: active channels first),
and, for a gated conv, the gate's decision that comes before it, in one kernel.

One kernel serves both because numba-cuda compiles a device function for the GPU it finds
at run time: with device functions, kernels could no longer be compiled to PTX on a
machine without a GPU (tests/kernels/cuda/test_ptx.py)."""

import numpy as np
from numba import cuda

from ... import config
from .base import B2, D2, F1, F2, I1, I2

THREADS = config.CUDA_COMPACT_THREADS


@cuda.jit(cache=True)
def decide_and_list(decide, feats, n_hidden, hidden_weight, hidden_bias, hidden, weight, bias, cut, group_size,
                    mask, order, n_act):
    """One block of THREADS threads per sample s.

    When `decide`: the gate after its pooling. The hidden layer (n_hidden > 0) goes into
    `hidden`, global memory that the block barrier makes visible to the block; then the
    logits, in float64 as on the CPU, and the mask they give (group g's channels are on when
    its logit is above `cut`).

    Then the listing: order[s] gets the sample's active channels, then its inactive ones,
    each in channel order, and n_act[s] their count. Each thread takes a run of consecutive
    channels, counts its active ones, and reads from shared memory how many the runs before
    its own hold. (One thread walking all of a sample's channels took 0.12 ms for 256
    channels on an H100: a chain of dependent global-memory accesses.)"""
    s, t = cuda.blockIdx.x, cuda.threadIdx.x
    if decide:  # the same for the whole block, so every thread meets the barriers
        for j in range(t, n_hidden, THREADS):
            acc = np.float64(hidden_bias[j])
            for c in range(feats.shape[1]):
                acc += hidden_weight[j, c] * feats[s, c]
            hidden[s, j] = max(acc, 0.0)
        cuda.syncthreads()
        for g in range(t, weight.shape[0], THREADS):
            acc = np.float64(bias[g])
            if n_hidden > 0:
                for k in range(n_hidden):
                    acc += weight[g, k] * hidden[s, k]
            else:
                for k in range(feats.shape[1]):
                    acc += weight[g, k] * feats[s, k]
            on = acc > cut
            for c in range(g * group_size, (g + 1) * group_size):
                mask[s, c] = on
        cuda.syncthreads()
    channels = mask.shape[1]
    per_thread = (channels + THREADS - 1) // THREADS
    lo = min(t * per_thread, channels)
    hi = min(lo + per_thread, channels)
    counts = cuda.shared.array(THREADS, np.int32)
    mine = 0
    for c in range(lo, hi):
        if mask[s, c]:
            mine += 1
    counts[t] = mine
    cuda.syncthreads()
    before, total = 0, 0  # active channels in the runs before this one, and in all
    for u in range(THREADS):
        if u == t:
            before = total
        total += counts[u]
    on_at, off_at = before, total + lo - before  # where this run's active / inactive ones go
    for c in range(lo, hi):
        if mask[s, c]:
            order[s, on_at] = c
            on_at += 1
        else:
            order[s, off_at] = c
            off_at += 1
    if t == 0:
        n_act[s] = total


PTX_SIGNATURES = [
    (decide_and_list,
     f"void(boolean, {D2}, int64, {F2}, {F1}, {D2}, {F2}, {F1}, float64, int64, {B2}, {I2}, {I1})"),
]


def launch_compact(kernel, mask, order, n_act):
    """List the channels of a given `mask` (N, C_out) into order and n_act, on `kernel`'s stream."""
    f64, f32 = kernel.buffer("no_gate64", (1, 1), np.float64), kernel.buffer("no_gate32", (1, 1))
    bias = kernel.buffer("no_gate_bias", (1,))
    kernel.launch(decide_and_list, mask.shape[0], THREADS, False, f64, 0, f32, bias, f64, f32, bias, 0.0, 1,
                  mask, order, n_act)


def launch_gate(kernel, feats, n_hidden, hidden_weight, hidden_bias, hidden, weight, bias, cut, group_size,
                mask, order, n_act):
    """The gate's decision from its pooled features `feats` (N, C_in) into mask, and its
    listing into order and n_act (see decide_and_list)."""
    kernel.launch(decide_and_list, feats.shape[0], THREADS, True, feats, n_hidden, hidden_weight, hidden_bias,
                  hidden, weight, bias, cut, group_size, mask, order, n_act)
