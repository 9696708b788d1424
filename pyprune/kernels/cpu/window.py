"""Index arithmetic shared by the sliding-window kernels (conv, pool)."""

from numba import njit


@njit(cache=True, nogil=True)
def valid_range(pad, tap, stride, size, out_size):
    """[lo, hi) of output positions o whose input index o*stride - pad + tap lies in [0, size):
    the inner loops then run without bounds tests, which lets LLVM vectorise them. Both lie
    in [0, out_size], also where the padding covers every output position (a band of a
    conv's first rows, conv_pool.py)."""
    lo = min(out_size, max(0, (pad - tap + stride - 1) // stride))
    hi = min(out_size, (size - 1 + pad - tap) // stride + 1)
    return lo, max(lo, hi)
