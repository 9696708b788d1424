"""Drops compiled kernels that are older than the sources they were built from.

Numba's cache (`cache=True`) notices a change to a kernel's own source file, not to a
kernel it calls from another file (a documented Numba limitation): after an edit or a
`git pull` in an editable install, gemm_conv in conv_gemm.py would go on running the old
im2col of conv_steps.py from __pycache__, without a word. So on import pyprune compares a
stamp of every kernel source (path, size, modification time) with the one it left in
__pycache__, and where they differ deletes the cached kernels before any is loaded: the
next run compiles afresh (a cold start).

This covers Numba's usual place for the cache, __pycache__ beside the sources. With
NUMBA_CACHE_DIR set, or an install that is not writable (Numba then caches per user),
nothing is checked: a package manager rewrites every file of an install, which
invalidates every cached kernel by itself.
"""

import os
from pathlib import Path

KERNELS = Path(__file__).resolve().parent
STAMP_NAME = "pyprune-kernel-sources.stamp"


def sources_stamp(root=KERNELS):
    """Path, size and modification time of every Python source under root, one per line."""
    lines = []
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        lines.append(f"{path.relative_to(root).as_posix()} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(lines)


def drop_stale_caches(root=KERNELS):
    """Delete root's cached kernels (__pycache__/*.nbi, *.nbc) when its sources changed
    since the last check; return whether it did."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return False
    stamp_file = root / "__pycache__" / STAMP_NAME
    stamp = sources_stamp(root)
    try:
        if stamp_file.read_text() == stamp:
            return False
    except OSError:
        pass  # no stamp yet: whatever is cached predates the check
    try:
        for cached in [*root.rglob("__pycache__/*.nbi"), *root.rglob("__pycache__/*.nbc")]:
            cached.unlink(missing_ok=True)
        stamp_file.parent.mkdir(exist_ok=True)
        stamp_file.write_text(stamp)
    except OSError:
        return False  # not writable: Numba caches elsewhere (see the module's docstring)
    return True
