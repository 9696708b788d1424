"""Fuzz the model-file reader: flip random bytes of a saved model and check that every
load gives a model or a pyprune error, never a crash or a hang (a script, not a test:
each unsealed load spawns a child process, so it takes minutes).

    python tests/io/fuzz_model_file.py --files 300 --seed 0            # sealed files
    python tests/io/fuzz_model_file.py --files 130 --seed 0 --unsealed # without the checksum block
"""

import argparse
import collections
import os
import tempfile

import h5py
import numpy as np

import pyprune
from pyprune import models


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unsealed", action="store_true", help="strip pyprune's checksum block first")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "model.h5")
    pyprune.save(models.tiny_net(), path)
    if args.unsealed:
        plain = os.path.join(tmp, "plain.h5")
        with h5py.File(path) as src, h5py.File(plain, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in src:
                src.copy(src[name], dst, name)
        path = plain
    data = open(path, "rb").read()
    rng = np.random.default_rng(args.seed)
    counts = collections.Counter()
    target = os.path.join(tmp, "fuzzed.h5")
    for _ in range(args.files):
        broken = bytearray(data)
        for _ in range(rng.integers(1, 20)):
            broken[rng.integers(0, len(broken))] = rng.integers(0, 256)
        open(target, "wb").write(bytes(broken))
        try:
            pyprune.load(target).run(np.zeros((1, 3, 16, 16), np.float32))
            counts["loaded"] += 1
        except pyprune.PyPruneError as e:
            counts["hung or crashed libhdf5" if "did not finish" in str(e) or "crashed" in str(e)
                   else "pyprune error"] += 1
    print(dict(counts))


if __name__ == "__main__":
    main()
