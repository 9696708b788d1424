"""Timing shared by the GPU scripts: work on a device is timed up to its synchronisation."""

import statistics
import time


def median_time(fn, sync, rounds):
    """Median seconds of `rounds` calls of fn() each followed by sync(), after one untimed
    call (compilation, first allocations)."""
    fn()
    sync()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
