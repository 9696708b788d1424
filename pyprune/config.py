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
