"""Kernels per device (cpu/, cuda/) and their MAC counts. Importing this package first
drops cached kernels compiled from older sources (stale_cache.py)."""

from .stale_cache import drop_stale_caches

drop_stale_caches()
