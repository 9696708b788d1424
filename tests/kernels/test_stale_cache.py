"""Cached kernels compiled from older sources are dropped on import (stale_cache.py)."""

import os

from pyprune.kernels.stale_cache import drop_stale_caches


def make_tree(root):
    (root / "cpu" / "__pycache__").mkdir(parents=True)
    (root / "cpu" / "conv.py").write_text("def f(): pass\n")
    (root / "cpu" / "steps.py").write_text("def g(): pass\n")
    for name in ("conv.f-1.py311.nbi", "conv.f-1.py311.1.nbc", "conv.cpython-311.pyc"):
        (root / "cpu" / "__pycache__" / name).write_bytes(b"x")


def cached(root):
    return sorted(p.name for p in root.rglob("__pycache__/*.nb?"))


def test_a_change_to_any_source_drops_every_cached_kernel(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    make_tree(tmp_path)
    assert drop_stale_caches(tmp_path), "no stamp yet: the cache predates the check"
    assert cached(tmp_path) == []
    assert (tmp_path / "cpu" / "__pycache__" / "conv.cpython-311.pyc").exists(), "only Numba's files go"
    (tmp_path / "cpu" / "__pycache__" / "conv.f-1.py311.nbi").write_bytes(b"x")
    assert not drop_stale_caches(tmp_path), "sources unchanged: the cache stays"
    assert cached(tmp_path) == ["conv.f-1.py311.nbi"]
    # A callee in another file changes; conv.py, whose kernel inlines it, does not.
    (tmp_path / "cpu" / "steps.py").write_text("def g(): return 1\n")
    assert drop_stale_caches(tmp_path)
    assert cached(tmp_path) == []


def test_a_touched_file_of_the_same_size_counts_as_changed(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    make_tree(tmp_path)
    drop_stale_caches(tmp_path)
    (tmp_path / "cpu" / "__pycache__" / "conv.f-1.py311.nbi").write_bytes(b"x")
    steps = tmp_path / "cpu" / "steps.py"
    st = steps.stat()
    os.utime(steps, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert drop_stale_caches(tmp_path) and cached(tmp_path) == []


def test_a_user_cache_dir_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    make_tree(tmp_path)
    assert not drop_stale_caches(tmp_path)
    assert len(cached(tmp_path)) == 2


def test_a_tree_that_is_not_writable_is_left_as_it_is(tmp_path, monkeypatch):
    """A read-only install (Numba then caches per user elsewhere): no error, nothing dropped.
    Tests run as root here, so the refusal to write is simulated."""
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    make_tree(tmp_path)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr("pathlib.Path.unlink", refuse)
    monkeypatch.setattr("pathlib.Path.write_text", refuse)
    assert not drop_stale_caches(tmp_path)
    assert len(cached(tmp_path)) == 2
