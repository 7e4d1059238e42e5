# SPDX-License-Identifier: MIT
"""Timing helpers shared by the Python benchmark programs' `micro` (W4)."""
import time


def best_of(trials, reps, fn):
    """Seconds per call of fn(reps) (which makes reps calls), best of `trials`
    short runs: on a shared machine the least disturbed run is the closest to
    the code's own cost."""
    best = None
    for _ in range(trials):
        t0 = time.perf_counter()
        fn(reps)
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    return best / reps


def micro_print(name, value):
    print("MICRO name=%s value=%.3f" % (name, value), flush=True)
