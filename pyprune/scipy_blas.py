"""Give Numba SciPy's BLAS table without importing the whole of scipy.linalg.

Where SciPy is installed, Numba runs `import scipy.linalg.cython_blas` as it loads its
first kernel (numba.np.arraymath checks for BLAS when its registries load). That import
runs scipy/linalg/__init__.py first, which imports most of scipy.linalg: 0.37-0.45 s on
the AMD host, against 5-8 ms for the cython_blas extension loaded alone, and Numba only
reads that module's `__pyx_capi__`. Loaded alone, the warm start with SciPy installed went
from 1.80 to 1.36-1.38 s (bench/README.md, twenty-seventh session).

`preload` loads the extension module from its file under its own name, so that Numba's
import finds it in sys.modules. A later `import scipy.linalg` then runs as usual; a meta
path hook sets its `cython_blas` attribute, which the import system sets only on
submodules it loads itself. Where SciPy is missing or hidden, or scipy.linalg is already
imported, or anything here fails, nothing changes and Numba imports what it imports.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

NAME = "scipy.linalg.cython_blas"


def preload():
    """Load scipy.linalg.cython_blas alone, where that is safe; returns whether it did."""
    if NAME in sys.modules or "scipy.linalg" in sys.modules:
        return False
    try:
        scipy_spec = importlib.util.find_spec("scipy")
        if scipy_spec is None or not scipy_spec.submodule_search_locations:
            return False
        linalg = os.path.join(list(scipy_spec.submodule_search_locations)[0], "linalg")
        files = [os.path.join(linalg, "cython_blas" + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES]
        path = next((f for f in files if os.path.isfile(f)), None)
        if path is None:
            return False
        spec = importlib.util.spec_from_file_location(NAME, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not isinstance(getattr(module, "__pyx_capi__", None), dict):  # not the table Numba reads
            return False
    except Exception:  # SciPy hidden (sys.modules["scipy"] = None), broken, or laid out otherwise
        return False
    sys.modules[NAME] = module
    sys.meta_path.insert(0, _LinkOnImport())
    return True


class _LinkOnImport(importlib.abc.MetaPathFinder):
    """Sets scipy.linalg.cython_blas on scipy.linalg once that package is imported, then
    leaves sys.meta_path."""

    def find_spec(self, name, path, target=None):
        if name != "scipy.linalg":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run_package = spec.loader.exec_module

        def exec_module(module):
            run_package(module)
            if NAME in sys.modules and not hasattr(module, "cython_blas"):
                module.cython_blas = sys.modules[NAME]

        spec.loader.exec_module = exec_module
        return spec
