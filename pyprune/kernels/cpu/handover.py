"""Handing the second half of a compiled job to pyprune's helper thread without leaving
compiled code: the caller writes the job (its arrays' addresses and shapes) into an int64
control array and marks it posted; the helper, spinning in `serve` for the whole of a run,
claims it with a compare-and-swap, runs it and marks it done. When the caller has run its
own half it takes the job back if the helper has not claimed it yet, and runs it itself;
else it waits for the helper to finish. A helper that is asleep, late or preempted
therefore never holds the caller up by more than the part it has claimed.

Why: through two Python locks (and the GIL) a hand-over took 7.6-26 µs on the AMD host;
here a round trip takes 0.12 µs, so that convs of a few hundred thousand MACs can be cut
in two (bench/README.md, nineteenth session). pair_thread.PairThread owns the helper
thread and the control array.

The jobs: CONV_PART, part 1 of a conv's batch of one (conv_gemm.finish_first); STEM_HALF,
the second half of the banded stem's pool rows (conv_pool.conv_pool_rows); CONV_WHOLE, a
whole conv with its gate (gated_conv.conv_with_gate: a fire module's first expand, while
the caller runs the second, fire.py); MAX_POOL_HALF and GLOBAL_POOL_HALF, the second half
of a pool's channels (pool.max_pool_3x3s2, pool.global_pool); PROBE, which counts itself
in the control array, for the tests of the protocol.

The control array holds two job records of the same layout: the first (at 0) for the
jobs a caller posts and settles in turn, the second (whole_record) for a CONV_WHOLE
posted before them and settled after, so that both can be posted at once. The helper
takes the second's job first.
"""

import numpy as np
from numba import carray, literal_unroll, njit, types
from numba.extending import intrinsic

from .atomics import load_acquire, store_release, swap_if
from .conv_gemm import finish_first
from .conv_pool import conv_pool_rows
from .gated_conv import conv_with_gate
from .pool import global_pool, max_pool_3x3s2

# A job record: its state, then flags, then 5 slots per array (address and up to 4
# dimensions), then the scalars. PARK, STOP and SERVING (1 while the helper is in serve())
# are the first record's only.
STATE, PARK, STOP, KIND, FAILED, SERVING = range(6)
IDLE, POSTED, CLAIMED, DONE = range(4)
CONV_PART, STEM_HALF, PROBE, CONV_WHOLE, MAX_POOL_HALF, GLOBAL_POOL_HALF = range(1, 7)
ARRAYS, SCALARS, RECORD = 8, 108, 128  # up to 20 arrays and 20 scalars a record
SIZE = 2 * RECORD


def _pointer_to(dtype):
    @intrinsic
    def pointer(typingctx, address):
        """The int64 address as a pointer to `dtype`, for carray."""
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return types.CPointer(dtype)(types.int64), codegen

    return pointer


_f32, _i64, _u8 = _pointer_to(types.float32), _pointer_to(types.int64), _pointer_to(types.uint8)


@njit(cache=True, nogil=True)
def _put(ctrl, i, a):
    """Array slot i: a's address and shape (a C-contiguous, at most 4 dimensions)."""
    at = ARRAYS + 5 * i
    ctrl[at] = a.ctypes.data
    for d in range(4):
        ctrl[at + 1 + d] = a.shape[d] if d < a.ndim else 1


@njit(cache=True, nogil=True)
def _put_all(ctrl, arrays):
    """The arrays of a tuple into array slots 0, 1, ... in order (_run_job reads them so)."""
    i = 0
    for a in literal_unroll(arrays):
        _put(ctrl, i, a)
        i += 1


@njit(cache=True, nogil=True)
def _f32_1(ctrl, i):
    at = ARRAYS + 5 * i
    return carray(_f32(ctrl[at]), (ctrl[at + 1],))


@njit(cache=True, nogil=True)
def _i64_1(ctrl, i):
    at = ARRAYS + 5 * i
    return carray(_i64(ctrl[at]), (ctrl[at + 1],))


@njit(cache=True, nogil=True)
def _f32_2(ctrl, i):
    at = ARRAYS + 5 * i
    return carray(_f32(ctrl[at]), (ctrl[at + 1], ctrl[at + 2]))


@njit(cache=True, nogil=True)
def _f32_3(ctrl, i):
    at = ARRAYS + 5 * i
    return carray(_f32(ctrl[at]), (ctrl[at + 1], ctrl[at + 2], ctrl[at + 3]))


@njit(cache=True, nogil=True)
def _f32_4(ctrl, i):
    at = ARRAYS + 5 * i
    return carray(_f32(ctrl[at]), (ctrl[at + 1], ctrl[at + 2], ctrl[at + 3], ctrl[at + 4]))


@njit(cache=True, nogil=True)
def _bool_2(ctrl, i):
    at = ARRAYS + 5 * i
    return carray(_u8(ctrl[at]), (ctrl[at + 1], ctrl[at + 2])).view(np.bool_)


@njit(cache=True, nogil=True)
def whole_record(ctrl):
    """The control array's second job record (the module's docstring)."""
    return ctrl[RECORD:]


@njit(cache=True, nogil=True)
def _run_job(ctrl):
    """Run the job posted in the record `ctrl` (on whichever thread has it)."""
    kind, s = ctrl[KIND], SCALARS
    if kind == CONV_PART:
        buffer = _f32_4(ctrl, 9)
        first, co = ctrl[s + 3], ctrl[s + 4]
        finish_first(_f32_4(ctrl, 0), ctrl[s], ctrl[s + 1], ctrl[s + 2], _f32_2(ctrl, 1), _f32_2(ctrl, 11),
                     _f32_1(ctrl, 2), _f32_1(ctrl, 3), _i64_1(ctrl, 4), _i64_1(ctrl, 5), _f32_2(ctrl, 6),
                     _f32_1(ctrl, 7), _f32_1(ctrl, 8), buffer, buffer[:, first:first + co], _bool_2(ctrl, 10), 1)
    elif kind == STEM_HALF:
        conv_pool_rows(_f32_3(ctrl, 0), _f32_1(ctrl, 1), _i64_1(ctrl, 2), _f32_1(ctrl, 3), ctrl[s] != 0,
                       _i64_1(ctrl, 4), _i64_1(ctrl, 5), _f32_1(ctrl, 6), _f32_3(ctrl, 7), ctrl[s + 1], ctrl[s + 2])
    elif kind == CONV_WHOLE:
        buffer = _f32_4(ctrl, 14)
        first, co = ctrl[s + 1], ctrl[s + 2]
        cut = np.array([ctrl[s]]).view(np.float64)[0]
        conv_with_gate(_f32_4(ctrl, 0), _bool_2(ctrl, 1), _i64_1(ctrl, 2), _f32_1(ctrl, 3), cut, _bool_2(ctrl, 4),
                       _f32_2(ctrl, 5), _f32_2(ctrl, 6), _f32_1(ctrl, 7), _f32_1(ctrl, 8), _i64_1(ctrl, 9),
                       _i64_1(ctrl, 10), _f32_2(ctrl, 11), _f32_1(ctrl, 12), _f32_1(ctrl, 13), buffer,
                       buffer[:, first:first + co], _bool_2(ctrl, 15))
    elif kind == MAX_POOL_HALF:
        max_pool_3x3s2(_f32_4(ctrl, 0), _bool_2(ctrl, 1), ctrl[s], ctrl[s + 1], _f32_4(ctrl, 2))
    elif kind == GLOBAL_POOL_HALF:
        global_pool(_f32_3(ctrl, 0), _bool_2(ctrl, 1), ctrl[s] != 0, _f32_2(ctrl, 2))
    elif kind == PROBE:
        if ctrl[s + 1] != 0:
            raise ValueError("the probe job failed, as asked")
        ctrl[s] += 1


@njit(cache=True, nogil=True)
def _serve_record(job):
    """Claim the job posted in record `job`, if any, run it, record whether it raised
    (job[FAILED]) and mark it done."""
    if load_acquire(job, STATE) == POSTED and swap_if(job, STATE, POSTED, CLAIMED):
        failed = 0
        try:
            _run_job(job)
        except Exception:  # the caller reruns the job to raise it (PairThread)
            failed = 1
        job[FAILED] = failed
        store_release(job, STATE, DONE)


@njit(cache=True, nogil=True)
def serve(ctrl):
    """The helper's loop while ctrl[PARK] is 0: each posted job claimed, the second
    record's first (the module's docstring), and run. Returns once parked."""
    store_release(ctrl, SERVING, 1)
    whole = whole_record(ctrl)
    while load_acquire(ctrl, PARK) == 0:
        _serve_record(whole)
        _serve_record(ctrl)
    store_release(ctrl, SERVING, 0)


@njit(cache=True, nogil=True)
def settle(ctrl):
    """After the caller's own half: 0 where the helper ran the posted job (it has waited for
    it to finish), 1 where the helper failed in it, 2 where the caller took it back (and
    must run it). The control array is then idle again."""
    if swap_if(ctrl, STATE, POSTED, IDLE) or load_acquire(ctrl, STATE) == IDLE:  # (IDLE: never posted)
        return 2
    while load_acquire(ctrl, STATE) != DONE:
        pass
    failed = ctrl[FAILED]
    store_release(ctrl, STATE, IDLE)
    return 1 if failed != 0 else 0


@njit(cache=True, nogil=True)
def _post(ctrl, kind):
    ctrl[KIND] = kind
    ctrl[FAILED] = 0
    store_release(ctrl, STATE, POSTED)


@njit(cache=True, nogil=True)
def conv_parts(ctrl, x, mode, na, k, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out,
               written):
    """finish_first's part 0 here and part 1 posted to the helper (a batch of one; the
    arguments are finish_first's); returns settle's answer. x, buffer and the 1-d arrays
    are C-contiguous; out is a channel slice of buffer."""
    _put_all(ctrl, (x, w2, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, written.view(np.uint8),
                    w2_t))
    hw = buffer.shape[2] * buffer.shape[3]
    s = SCALARS
    ctrl[s], ctrl[s + 1], ctrl[s + 2] = mode, na, k
    ctrl[s + 3] = (out.ctypes.data - buffer.ctypes.data) // (4 * hw)
    ctrl[s + 4] = out.shape[1]
    _post(ctrl, CONV_PART)
    finish_first(x, mode, na, k, w2, w2_t, w_tiles, bias, plan, index_buf, cols_buf, w_buf, y_buf, buffer, out,
                 written, 0)
    return settle(ctrl)


@njit(cache=True, nogil=True)
def post_conv_whole(whole, x, live, gate_plan, gate_params, cut, active, w2, w2_t, w_tiles, bias, plan, index_buf,
                    cols_buf, w_buf, y_buf, buffer, out, written):
    """Post conv_with_gate on these arguments (a batch of one; x, buffer, the masks and
    the 1-d arrays C-contiguous, out a channel slice of buffer) as a CONV_WHOLE job in the
    record `whole` (whole_record); the caller settles it, and where it gets 2 back runs
    the conv itself."""
    _put_all(whole, (x, live.view(np.uint8), gate_plan, gate_params, active.view(np.uint8), w2, w2_t, w_tiles, bias,
                     plan, index_buf, cols_buf, w_buf, y_buf, buffer, written.view(np.uint8)))
    hw = buffer.shape[2] * buffer.shape[3]
    s = SCALARS
    whole[s] = np.array([cut], np.float64).view(np.int64)[0]
    whole[s + 1] = (out.ctypes.data - buffer.ctypes.data) // (4 * hw)
    whole[s + 2] = out.shape[1]
    _post(whole, CONV_WHOLE)


@njit(cache=True, nogil=True)
def stem_halves(ctrl, xin, w_lanes, taps, bias, relu, plan, pool_plan, band, second_band, out, mid, end):
    """conv_pool_rows' pool rows [0, mid) here with `band`, and [mid, end) posted to the
    helper with `second_band`; returns settle's answer."""
    _put_all(ctrl, (xin, w_lanes, taps, bias, plan, pool_plan, second_band, out))
    s = SCALARS
    ctrl[s], ctrl[s + 1], ctrl[s + 2] = relu, mid, end
    _post(ctrl, STEM_HALF)
    conv_pool_rows(xin, w_lanes, taps, bias, relu, plan, pool_plan, band, out, 0, mid)
    return settle(ctrl)


@njit(cache=True, nogil=True)
def max_pool_halves(ctrl, x0, live0, out0, x1, live1, out1, pt, pl):
    """max_pool_3x3s2 on the first half of a batch of one's channels (x0, live0, out0) here
    and the second (x1, live1, out1, each C-contiguous) posted to the helper; returns
    settle's answer."""
    _put_all(ctrl, (x1, live1.view(np.uint8), out1))
    ctrl[SCALARS], ctrl[SCALARS + 1] = pt, pl
    _post(ctrl, MAX_POOL_HALF)
    max_pool_3x3s2(x0, live0, pt, pl, out0)
    return settle(ctrl)


@njit(cache=True, nogil=True)
def global_pool_halves(ctrl, x0, live0, out0, x1, live1, out1, use_max):
    """global_pool likewise (x (N, C, H*W), out (N, C))."""
    _put_all(ctrl, (x1, live1.view(np.uint8), out1))
    ctrl[SCALARS] = use_max
    _post(ctrl, GLOBAL_POOL_HALF)
    global_pool(x0, live0, use_max, out0)
    return settle(ctrl)


@njit(cache=True, nogil=True)
def probe(ctrl, fail, patience):
    """A PROBE job: posted, then settled after up to `patience` spins waiting for the helper
    to claim it; the job adds 1 to ctrl[SCALARS] on the thread that runs it, and raises
    there where `fail`."""
    ctrl[SCALARS + 1] = fail
    _post(ctrl, PROBE)
    for _ in range(patience):
        if load_acquire(ctrl, STATE) != POSTED:
            break
    return settle(ctrl)


@njit(cache=True, nogil=True)
def run_probe(ctrl):
    """The PROBE job on the calling thread (after settle returned 2)."""
    _run_job(ctrl)
