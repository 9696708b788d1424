"""Compile every CUDA kernel to PTX with no GPU present (numba.cuda.compile_ptx needs only
the NVVM and NVRTC libraries of the `cuda` extra): CI's proof that the kernels build.

    python -m pyprune.kernels.cuda.ptx --cc 80 90
"""

import argparse
import sys
import time

from . import activation, conv, linear, listing, pool, tensor

MODULES = (activation, conv, linear, listing, pool, tensor)  # gated_conv.py has no kernels of its own


def every_kernel():
    """(name, python function, signature) of every @cuda.jit kernel."""
    for module in MODULES:
        for kernel, signature in module.PTX_SIGNATURES:
            yield f"{module.__name__.rsplit('.', 1)[1]}.{kernel.py_func.__name__}", kernel.py_func, signature


def compile_all(ccs):
    from numba import cuda
    failures = []
    for name, fn, signature in every_kernel():
        for cc in ccs:
            start = time.perf_counter()
            try:
                ptx, _ = cuda.compile_ptx(fn, signature, cc=cc)
                ok = f".target sm_{cc[0]}{cc[1]}" in ptx
                print(f"{'ok  ' if ok else 'FAIL'} sm_{cc[0]}{cc[1]} {name:32s} {len(ptx):7d} chars "
                      f"{time.perf_counter() - start:5.2f} s")
                if not ok:
                    failures.append((name, cc, "no target line in the PTX"))
            except Exception as exc:
                print(f"FAIL sm_{cc[0]}{cc[1]} {name}: {type(exc).__name__}: {exc}")
                failures.append((name, cc, str(exc)))
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", nargs="+", default=["80", "90"], help="compute capabilities, e.g. 80 90")
    args = parser.parse_args(argv)
    failures = compile_all([(int(c[:-1]), int(c[-1])) for c in args.cc])
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
