"""The benchmarks' hardware reference: FLOP/s of ``torch.mm`` of two n x n matrices."""

from __future__ import annotations

import time

import torch


def gemm_flops(n: int = 2048, dtype: torch.dtype = torch.float32, threads: int | None = None,
               repeats: int = 5) -> float:
    """Best-of-``repeats`` FLOP/s of an n x n x n product in ``dtype`` on ``threads`` threads
    (None: the current setting, which is restored afterwards)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / best
