"""Tunables and sanity limits in one place.

The limits reject absurd model files before anything is allocated: a declared tensor or
weight larger than this is almost certainly a corrupt or hostile file, not a real CNN.
"""

# Per-sample elements of any activation tensor (2**28 float32 = 1 GiB).
MAX_TENSOR_ELEMENTS = 2**28
# Elements of any single weight dataset (2**28 float32 = 1 GiB).
MAX_WEIGHT_ELEMENTS = 2**28
# Nodes in one graph.
MAX_NODES = 100_000
# Largest kernel side, stride, dilation or padding accepted in a conv or pool.
MAX_WINDOW = 1024
# Largest channel count / feature count of any op attribute.
MAX_CHANNELS = 1 << 20

# A 1x1 conv with `na` active kernels and `nl` of `C` input channels live copies the live
# channels out (nl * H*W floats) only when na * (C - nl) > this * nl, i.e. when the GEMM
# work saved outweighs the copy; otherwise it multiplies the dead, all-zero channels too.
# Measured on SqueezeNet's 1x1 shapes (C 16-512, H*W 169-3025, 6-100% of kernels, 25-90%
# of channels live; both ways timed in one process): gathering won at every ratio >= 6
# and multiplying at every ratio <= 3, with the crossover between 4 and 5.
POINTWISE_GATHER_RATIO = 4

# A dense conv whose output only a max pool reads runs in bands of about this many output
# pixels, each pooled while it is in cache (kernels/cpu/conv_pool.py), where its output
# would take at least CONV_POOL_BAND_MIN_BYTES (per sample). SqueezeNet's stem on the AMD
# host (512 KB of L2), the band sizes alternated in one process: 1.11x at 111 pixels and
# 1.10x at 200 of its time at 400, 0.96x at 800 and at 1600 (.exp/stem_bands.py).
CONV_POOL_BAND_PIXELS = 800
CONV_POOL_BAND_MIN_BYTES = 1 << 20

# With n >= 2 threads, a batch is cut into chunks of samples run at once (runtime.py) only
# where each chunk holds at least this many dense MACs: a small model's chunk is mostly
# Python between compiled calls, which the lanes cannot run at once (the GIL). Two
# threads, steady state, whole batch with BLAS at two threads / split: the MNIST model
# (14.7 M MACs a sample) 0.92 in chunks of 1, 1.05 in chunks of 4, 1.66 in chunks of 8 and
# 1.80 in chunks of 16; SqueezeNet 1.1 (349 M) 1.37-1.55 in chunks of 1. A batch of one
# uses the helper thread (and the session cuts its convs, SPLIT_GEMM_MACS) only where one
# sample holds this many: the MNIST model's convs are too small to share.
SPLIT_MIN_MACS = 100_000_000

# With two or more threads, a sample's conv GEMM of at least this many executed MACs runs
# as two parts (cut by columns, or by rows on planes under 512 pixels;
# kernels/cpu/conv_gemm.parts_of): at once on two threads for a batch of one, one after
# the other in a bigger batch's chunks, so that a sample's bits are the same in both. The
# helper thread takes a part in about 0.1 us (pair_thread.py); on the AMD host at 2
# threads, batch 1, a prototype cutting every conv from 0.3 M MACs took 0.89-0.95x the
# time of one cutting from 4 M (bench/README.md, nineteenth session).
SPLIT_GEMM_MACS = 300_000

# A conv's GEMM over some of its kernels (a gated layer's active ones) gets up to this many
# zero rows of weights, by BLAS, to reach a multiple of 4 rows (kernels/cpu/conv_gemm.py's
# gemm_rows). On the AMD host (Zen 3), alone on SqueezeNet's gated 1 x 1 shapes at 2-35
# rows, rounding up took OpenBLAS 0.53-0.93x the time at 3 rows past a multiple of 4 and
# 0.77-1.04x at 2, but 0.74-1.21x at 1; MKL 0.74-1.02x at 3 and 0.98-1.62x at 2
# (`python .exp/m_sweep2.py`, `PYPRUNE_BLAS=mkl python .exp/m_sweep2.py`).
GEMM_ROW_PAD = {"openblas": 2, "mkl": 1}

# 3 x 3 convs of stride 1 and padding 1 (SqueezeNet's expand3x3) run on
# kernels/cpu/tile_gemm.py's register tiles instead of im2col + sgemm, read when a kernel
# is made. On the AMD host, one thread, one session toggling it: SqueezeNet dense 0.944x,
# gated 50% 0.966x, gated 25% 0.957x; MNIST 0.82x (`python bench/ab_flag.py tiles`).
TILE_CONVS = True

# 1 x 1 convs (stride 1, no padding) run a sample on the same tiles, its live input planes
# read where they lie (no gather, no sgemm packing), where it has at most
# POINTWISE_TILE_MAX_K live channels, or a dead channel (which sgemm's operand would have to
# be gathered for) and at most POINTWISE_TILE_MAX_ROWS active kernels (their weights are
# packed per call). Elsewhere sgemm's packed panels pay. On the AMD host, one thread
# (`python bench/ab_flag.py pointwise_tiles --rounds 20 --block 8`), up to 32 live channels
# alone: 0.98x dense, 0.94x gated 50%, 0.95x gated 25%, MNIST 0.97x; the gated squeezes
# over more live channels on tiles too, 0.972-0.977x gated 50% and 0.979x gated 25% more.
# With no limit, conv10 (128-512 live channels, 1000 kernels) on tiles made gated 25%
# 1.03-1.05x; a limit of 64 live channels measured 1.005-1.011x dense and about what 32
# does gated (bench/README.md, twenty-fifth session).
POINTWISE_TILE_MAX_K = 32
POINTWISE_TILE_MAX_ROWS = 64

# Where Numba compiles for AVX-512 (its 16-float tiles run at about sgemm's rate), a 1 x 1
# conv runs every sample on the tiles, whatever its live channels and active kernels; the
# limits above hold elsewhere. On the AMD EPYC Zen 4 host, one thread, against the limits
# with POINTWISE_PANEL_MIN_ROWS (`python bench/ab_flag.py pointwise_tiles_always --rounds 20
# --block 8`): SqueezeNet dense 1.00x, gated 50% 0.99x, gated 25% 0.98x, MNIST 1.00x; the
# gated fire2/squeeze (every input channel live, 9 of 16 kernels active) 0.117 -> 0.087 ms.
# Built for AVX2 only on that host (NUMBA_CPU_NAME=haswell, NUMBA_CPU_FEATURES=+avx,+avx2,
# +fma,..., OPENBLAS_CORETYPE=Haswell): gated 50% 0.97x but 25% 1.05x, so not there. Before
# the panels, every 1 x 1 conv on tiles made gated 1.075x (conv10 in place; bench/README.md,
# thirty-second and thirty-third sessions).
POINTWISE_TILES_ALWAYS_ON_AVX512 = True

# A 1 x 1 conv runs a sample with at least this many active kernels on the tiles over a copy
# of its live channels in panels of 16 pixels (tile_gemm.pack_panels; 0: never), rather than
# on sgemm or reading them in place: every tile of kernels reads each panel, so a copy that
# the prefetchers follow pays where there are many (SqueezeNet's conv10: 1000 kernels, about
# 253 or 128 of its 512 channels live gated). On the Zen 4 host, one thread (`python
# bench/ab_flag.py pointwise_panels --rounds 20 --block 8`): gated 50% 0.95x, gated 25%
# 0.97x, dense and MNIST 1.00x; built for AVX2 only, 0.99x dense and 1.01x gated. Alone,
# conv10's shape with 128-384 live channels, the copy included: 0.84-0.89x the time in
# place; SqueezeNet's 1 x 1 shapes of 16-64 kernels: 1.0-1.6x, their copy read by a few
# tiles only (bench/README.md, thirty-third session).
POINTWISE_PANEL_MIN_ROWS = 240

# The tiles prefetch the weights of the tile of kernels they will most likely run next, a
# share with each panel of the current one: in a run, conv10's 2 MB of weights and the
# dense 3 x 3 expands' (up to 590 KB) come from L3 or memory, which the prefetchers did
# not stream ahead of the tiles. On the Zen 4 host, one thread (`python bench/ab_flag.py
# tile_prefetch --rounds 20 --block 8`): SqueezeNet dense 0.97x, gated 50% 0.97x, gated
# 25% 0.99x, MNIST 1.01x; alone, conv10 with half its channels live after a 32 MB sweep
# 0.82x the time (1090 -> 897 us), warm 0.99x (bench/README.md, thirty-third session).
TILE_PREFETCH = True

# The largest batch a session runs as a bound program (bound_program.py), which keeps every
# step's output for the next call: its Python per run matters least, and its buffers grow,
# with the batch.
BIND_MAX_BATCH = 8

# Time limit for reading a model file without pyprune's checksum block in a child process
# (io/hdf5.py): longer means libhdf5 hung on a corrupted file.
UNSEALED_PROBE_SECONDS = 60

# CUDA kernels index tensors with 32-bit arithmetic; a node whose tensors would pass 2**31
# elements at this batch size is left to the CPU. Larger batches are refused at run time.
CUDA_MAX_BATCH = 1024
# Threads per block of the CUDA kernels (fewer when there is less work: the simulator runs
# every thread, idle or not).
CUDA_THREADS = 128
# Planes of at least this many elements are pooled by a block of threads (a tree
# reduction), smaller ones by one thread each (global pools and the gates' pooling).
CUDA_BLOCK_REDUCE_MIN = 256
# Output channels one CUDA conv thread accumulates at once: each input value it loads is
# reused this many times (registers), and a gated layer's work is rounded up to this.
CUDA_CONV_CHANNELS = 8
# Threads of the block that decides a gate and lists one sample's channels (kernels/cuda/listing.py).
CUDA_COMPACT_THREADS = 32
