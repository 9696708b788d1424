"""Whether this machine's cores run at once right now: a compiled loop without memory
traffic in `threads` threads at once, against one thread alone.

Why: on the shared 2-core host, two threads of such a loop ran at 0.75-2.00x one thread's
throughput from one minute to the next (bench/README.md, twenty-first session): a
neighbour takes the second core for seconds at a time. A 2-thread timing says as much about that
moment as about the code, so the benchmarks print this probe beside it.

    python bench/cores.py [--threads 2]
"""

import argparse
import threading
import time

import numpy as np
from numba import njit

_WORK = 2_000_000  # loop iterations per thread: a few ms


@njit(nogil=True, cache=True)
def _spin(n):
    """n dependent float multiplies and adds (no memory traffic), the result returned so that
    none is dropped."""
    s = 0.0
    for i in range(n):
        s = s * 0.999999 + 1.0
    return s


def _run_in_threads(threads, n):
    """Seconds for `threads` threads to run _spin(n) each, started together."""
    workers = [threading.Thread(target=_spin, args=(n,)) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start


def parallel_throughput(threads=2, tries=3, n=_WORK):
    """Median over `tries` of: the work `threads` threads did at once, per second, over one
    thread's alone (about `threads` where every core is free, about 1 where only one is)."""
    if threads < 2:
        return 1.0
    _spin(1)  # compile or load from the cache
    ratios = []
    for _ in range(tries):
        one = _run_in_threads(1, n)
        many = _run_in_threads(threads, n)
        ratios.append(threads * one / many)
    return float(np.median(ratios))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.threads < 2:
        parser.error("--threads must be at least 2")
    print(f"{args.threads} threads at once: {parallel_throughput(args.threads):.2f}x one thread's throughput")


if __name__ == "__main__":
    main()
