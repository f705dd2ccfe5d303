"""Latency measurement: warm up, then run until both a minimum time and a minimum count are reached
(so fast models get enough samples and slow ones still finish), and summarise like Model Navigator."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def measure(fn: Callable[[], object], warmup: int = 2, min_runs: int = 5, min_seconds: float = 1.0,
            max_runs: int = 1000, sync: Callable[[], None] | None = None) -> list[float]:
    """Milliseconds per call. `sync` (e.g. a CUDA synchronise) runs inside the timed region."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


def summarize(samples_ms: list[float], items_per_call: int = 1) -> dict:
    arr = np.asarray(samples_ms, np.float64)
    mean = float(arr.mean())
    return {
        "runs": int(arr.size),
        "mean_ms": round(mean, 3),
        "std_ms": round(float(arr.std()), 3),
        **{f"p{q}_ms": round(float(np.percentile(arr, q)), 3) for q in (50, 90, 95, 99)},
        "throughput_ips": round(1000.0 * items_per_call / mean, 3) if mean > 0 else None,
    }
