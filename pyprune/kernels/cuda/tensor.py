"""CUDA Concat, Add and Flatten, and the small kernels that carry live-channel masks on the
GPU (joining, uniting, expanding them) so that no mask ever makes a trip to the host."""

from numba import cuda

from .base import B2, F1, F3, Act, CudaKernel, channels_view, flat


@cuda.jit(cache=True)
def copy_channels(src, dst, first):
    """dst[s, first + c, k] = src[s, c, k] on (N, C, P) views."""
    i = cuda.grid(1)
    n, c, p = src.shape
    if i < n * c * p:
        s, r = i // (c * p), i % (c * p)
        dst[s, first + r // p, r % p] = src[s, r // p, r % p]


@cuda.jit(cache=True)
def put_mask(src, dst, first):
    """dst[s, first + c] = src[s, c]."""
    i = cuda.grid(1)
    n, c = src.shape
    if i < n * c:
        dst[i // c, first + i % c] = src[i // c, i % c]


@cuda.jit(cache=True)
def fill_mask(dst, first, count):
    """dst[s, first : first + count] = True (an input with every channel live)."""
    i = cuda.grid(1)
    if i < dst.shape[0] * count:
        dst[i // count, first + i % count] = True


@cuda.jit(cache=True)
def add(a, b, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] + b[i]


@cuda.jit(cache=True)
def or_mask(a, b, out):
    i = cuda.grid(1)
    n, c = out.shape
    if i < n * c:
        out[i // c, i % c] = a[i // c, i % c] or b[i // c, i % c]


@cuda.jit(cache=True)
def expand_mask(src, per, dst):
    """dst[s, f] = src[s, f // per]: a channel mask as a mask of flattened features."""
    i = cuda.grid(1)
    n, f = dst.shape
    if i < n * f:
        dst[i // f, i % f] = src[i // f, (i % f) // per]


PTX_SIGNATURES = [
    (copy_channels, f"void({F3}, {F3}, int64)"),
    (put_mask, f"void({B2}, {B2}, int64)"),
    (fill_mask, f"void({B2}, int64, int64)"),
    (add, f"void({F1}, {F1}, {F1})"),
    (or_mask, f"void({B2}, {B2}, {B2})"),
    (expand_mask, f"void({B2}, int64, {B2})"),
]


class ConcatKernel(CudaKernel):
    def run(self, xs, ctx):
        data = self.output_buffer(xs[0].data.shape[0])
        first = 0
        for x in xs:
            self.launch_flat(copy_channels, x.data.size, channels_view(x.data), channels_view(data), first)
            first += x.data.shape[1]
        return self.assemble(xs, data)

    def output_buffer(self, n):
        """The buffer the producers write into, reused across calls (outputs reach the
        caller as host copies)."""
        return self.buffer("out", (n, *self.out_shape))

    def assemble(self, xs, data):
        """The concat of xs whose data already sit side by side in `data`: join the masks."""
        if all(x.live is None for x in xs):
            return Act(data, None)
        n = data.shape[0]
        live = self.buffer("live", (n, self.out_shape[0]), bool)
        first = 0
        for x in xs:
            c = x.data.shape[1]
            if x.live is None:
                self.launch_flat(fill_mask, n * c, live, first, c)
            else:
                self.launch_flat(put_mask, n * c, x.live, live, first)
            first += c
        return Act(data, live)


class AddKernel(CudaKernel):
    def run(self, xs, ctx):
        a, b = xs
        out = self.buffer("out", a.data.shape)
        self.launch_flat(add, out.size, flat(a.data), flat(b.data), flat(out))
        if a.live is None or b.live is None:
            return Act(out, None)
        live = self.buffer("live", a.live.shape, bool)
        self.launch_flat(or_mask, live.size, a.live, b.live, live)
        return Act(out, live)


class FlattenKernel(CudaKernel):
    def run(self, xs, ctx):
        x = xs[0]
        n = x.data.shape[0]
        data = x.data.reshape(n, x.data.size // n)
        if x.live is None:
            return Act(data, None)
        live = self.buffer("live", data.shape, bool)
        self.launch_flat(expand_mask, live.size, x.live, data.shape[1] // x.live.shape[1], live)
        return Act(data, live)
