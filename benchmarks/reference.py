"""The same-run speed reference of the benchmarks: this machine's speed drifts (and other jobs share its cores), so
every timing is recorded beside a plain matmul timed in the same run."""

from __future__ import annotations

import time

import numpy as np


def matmul_gflops(size: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a ``size`` x ``size`` fp32 numpy matmul (median of ``repeats``): how fast this machine is now."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return round(2 * size ** 3 / float(np.median(times)) / 1e9, 2)
