"""Converters between pyprune models and other formats (extra: onnx)."""
