"""Converters between pyprune models and other formats.

`convert(src, dst)` writes the pyprune model file `dst` from `src`, picked by its suffix:
.pt / .pth (a pyprune.train checkpoint; extra `train`) or .onnx (extra `onnx`).
"""

import os

from ..errors import ModelError


def convert(src, dst):
    """Convert `src` to the pyprune model file `dst`; returns the Model written."""
    from ..io.hdf5 import save
    suffix = os.path.splitext(str(src))[1].lower()
    if suffix in (".pt", ".pth"):
        try:
            from ..train.export import load_checkpoint, to_pyprune
        except ImportError as e:
            raise ModelError(f"converting a PyTorch checkpoint needs torch ({e})", file=str(src)) from None
        model = to_pyprune(load_checkpoint(src), name=os.path.splitext(os.path.basename(str(dst)))[0])
    elif suffix == ".onnx":
        from .onnx_import import load_onnx
        model = load_onnx(src)
    else:
        raise ModelError(f"unknown source format '{suffix}': expected .pt, .pth or .onnx", file=str(src))
    save(model, dst)
    return model
