"""pyprune: run self-pruning (gated) convolutional networks on the CPU or an NVIDIA GPU.

    import pyprune
    sess = pyprune.load("model.h5")      # device="cuda" for the GPU (the `cuda` extra)
    y = sess.run(x)                      # x: float32 (N, C, H, W)
    y, stats = sess.run_with_stats(x, threshold=0.6)

Importing pyprune compiles nothing: kernels compile (or load from Numba's cache) on first use.
"""

from . import scipy_blas
from .converters import convert
from .errors import DeviceError, InputError, ModelError, PyPruneError
from .graph import Model, Node, analyze
from .io.hdf5 import load_model, save
from .runtime import Session
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

scipy_blas.preload()  # before Numba's first kernel load would import all of scipy.linalg (scipy_blas.py)


def load(path, device="cpu"):
    """Load and validate the model file at `path`; returns a Session ready on `device`
    ('cpu', 'cuda', 'auto' or a Device; see Session)."""
    return Session(load_model(path), device=device)


__all__ = ["load", "save", "load_model", "convert", "Session", "Model", "Node", "analyze", "set_num_threads",
           "get_num_threads",
           "PyPruneError", "ModelError", "InputError", "DeviceError", "__version__"]
