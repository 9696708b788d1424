"""pyprune.scipy_blas: Numba gets SciPy's BLAS table without scipy.linalg being imported
whole, and scipy.linalg still imports and works as usual afterwards. Each case runs in a
new process, since the preload acts once per process."""

import importlib.util
import subprocess
import sys

import pytest

from pyprune import scipy_blas

needs_scipy = pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="SciPy is not installed")

# Numba loads its registries, and with them checks for SciPy's BLAS, when it first compiles.
NUMBA_DOT = """
import numpy as np
from numba import njit
a = np.arange(16, dtype=np.float32).reshape(4, 4)
assert np.array_equal(njit(lambda x, y: np.dot(x, y))(a, a), a @ a)
"""


def run_python(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_scipy
def test_numba_gets_scipys_blas_without_scipy_linalg_and_scipy_linalg_still_works():
    run_python(f"""
import sys
import pyprune
from pyprune import scipy_blas
assert scipy_blas.NAME in sys.modules
{NUMBA_DOT}
assert "scipy.linalg" not in sys.modules  # Numba's check found the module it needs
import numpy as np
import scipy.linalg
assert scipy.linalg.cython_blas is sys.modules[scipy_blas.NAME]
from scipy.linalg import cython_blas
assert cython_blas is scipy.linalg.cython_blas
assert np.allclose(scipy.linalg.solve(2 * np.eye(3), np.ones(3)), 0.5)
assert scipy.linalg.blas.sgemm(1.0, np.eye(2), np.eye(2)).shape == (2, 2)
assert not any(type(f).__name__ == "_LinkOnImport" for f in sys.meta_path)
""")


@needs_scipy
def test_nothing_changes_where_scipy_linalg_came_first():
    run_python(f"""
import sys
import scipy.linalg
import pyprune
from pyprune import scipy_blas
assert not scipy_blas.preload()
assert not any(type(f).__name__ == "_LinkOnImport" for f in sys.meta_path)
{NUMBA_DOT}
""")


def test_a_core_install_without_scipy_imports_and_compiles():
    run_python("""
import sys
sys.modules["scipy"] = None  # as a core install, which has no SciPy
import pyprune
from pyprune import scipy_blas
assert scipy_blas.NAME not in sys.modules and not scipy_blas.preload()
import numpy as np
from numba import njit
assert njit(lambda x: x.sum())(np.ones(4, np.float32)) == 4  # Numba's registries load without SciPy
""")


def test_preload_acts_once():
    """In this process pyprune is imported: a second preload changes nothing."""
    hooks = list(sys.meta_path)
    assert not scipy_blas.preload()
    assert sys.meta_path == hooks
