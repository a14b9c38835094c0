"""One BLAS thread while a chunk is costed (OpenBLAS, as numpy ships it; other BLAS builds: nothing to do).

A chunk's matrix products are small ([~1,300, 7] x [7, 206], [~1,300, 74] x [74, 30]), but above OpenBLAS's
threading threshold (M x N x K > 262,144) it splits them over every core; a sweep already runs one worker per
core, so the split buys nothing and its threads spin for a while after each product (measured here: twice the
CPU-seconds of the product, 10-100x its time when the cores are busy). `one_thread()` sets OpenBLAS to one
thread for the block and restores the previous count after it (HWSIM_BLAS_THREADS=keep leaves BLAS alone).
`workloads.linear_step.matmul_rows` also cuts products into 256-row blocks, for callers outside this block.
"""
from __future__ import annotations

import contextlib
import os

_FUNCS: list = []          # [(set, get)] or [None], found once


def _openblas():
    if not _FUNCS:
        _FUNCS.append(_find())
    return _FUNCS[0]


def _find():
    """OpenBLAS's set/get_num_threads among the libraries this process has mapped (how threadpoolctl finds it)."""
    try:
        import ctypes

        import numpy  # noqa: F401  (its BLAS must be loaded)
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.rsplit("/", 1)[-1].lower()}
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    set_, get = (getattr(lib, f"{prefix}_{op}_num_threads{suffix}", None) for op in ("set", "get"))
                    if set_ is not None and get is not None:
                        set_.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
                        return set_, get
    except (OSError, ValueError):
        pass
    return None


@contextlib.contextmanager
def one_thread():
    funcs = None if os.environ.get("HWSIM_BLAS_THREADS", "") else _openblas()
    before = funcs[1]() if funcs else 1
    if before != 1:
        funcs[0](1)
    try:
        yield
    finally:
        if before != 1:
            funcs[0](before)
