"""Keeps bench/ab_checkouts.py working: this checkout against itself, one short round (the
timings mean nothing)."""

from pathlib import Path

from . import ab_checkouts

ROOT = Path(__file__).resolve().parents[1]


def test_ab_checkouts_prints_a_row_per_measure(capsys):
    ab_checkouts.main([str(ROOT), str(ROOT), "--rounds", "1", "--samples", "2", "--repeats", "1", "--squeezenet"])
    out = capsys.readouterr().out
    for name in ("relu chain, us/layer", "conv chain, us/layer", "gated_conv chain, us/layer",
                 "mnist gated, ms/image", "squeezenet dense, ms/image", "squeezenet gated50, ms/image",
                 "squeezenet gated25, ms/image"):
        assert f"| {name} |" in out


def test_each_source_tree_gets_its_own_numba_cache(tmp_path):
    """A stale __pycache__ must not stand in for changed kernels (see ab_checkouts' docstring)."""
    tree = tmp_path / "pyprune" / "kernels"
    tree.mkdir(parents=True)
    (tree / "k.py").write_text("x = 1\n")
    before = ab_checkouts.cache_dir(tmp_path)
    assert ab_checkouts.cache_dir(tmp_path) == before
    (tree / "k.py").write_text("x = 2\n")
    assert ab_checkouts.cache_dir(tmp_path) != before
