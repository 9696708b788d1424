"""Training gated networks with PyTorch (extra `train`: pip install torch==2.13.0 mlxtend).

The modules here have exactly the engine's gate semantics (DESIGN.md section 1):
global pool -> optional hidden layer -> logits per kernel group -> sigmoid > threshold,
with the mask applied after the batch norm. `recipe` trains them; `export` turns them
into pyprune models and checkpoints.
"""

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("pyprune.train needs PyTorch: pip install torch==2.13.0 (the CPU build), "
                      "or pip install -e '.[train]'") from e

from .modules import GatedCNN, GatedConv2d

__all__ = ["GatedCNN", "GatedConv2d"]
