import os

import numpy as np
import pytest

import pyprune
from pyprune import models


def test_set_num_threads_sets_blas_and_numba():
    import numba
    try:
        assert pyprune.set_num_threads(1) == 1
        assert pyprune.get_num_threads() == 1 and numba.get_num_threads() == 1
        x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32)
        one = pyprune.Session(models.tiny_net()).run(x)
        assert pyprune.set_num_threads() == (os.cpu_count() or 1)
        assert pyprune.get_num_threads() == (os.cpu_count() or 1)
        np.testing.assert_allclose(pyprune.Session(models.tiny_net()).run(x), one, rtol=1e-6)
    finally:
        pyprune.set_num_threads()
    with pytest.raises(ValueError):
        pyprune.set_num_threads(0)
