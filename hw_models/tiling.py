"""GEMM tiling search for arrays of processing elements (systolic NPUs, FPGA DSP grids).

A tiling picks the block sizes (tm, tn, tk) kept on chip and the loop order. It must fit the on-chip buffer
(A, B and C blocks); it sets how often each operand crosses DRAM (with the k loop innermost, A is re-read once
per block column of B and B once per block row of A) and how well the blocks fill the R x C arrays. The
search enumerates candidates, keeps the best, stops at a time limit and reports progress, so it never
runs for hours with nothing to show. The default tiling (array-sized N and K blocks, the largest M block
that fits) is evaluated first, so what the search returns never costs more than it, even when stopped.
`objective="traffic"` minimizes DRAM traffic instead of time: the NPU and FPGA cost models use it for a
GEMM's off-chip traffic (their own array models give the compute time), memoized per shape by `tiled`.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from workloads.errors import HwsimError


@dataclass(frozen=True)
class Tiling:
    tm: int
    tn: int
    tk: int
    order: str                 # "mn" (m outer) or "nm"
    time_s: float
    compute_s: float
    memory_s: float
    traffic_bytes: float
    a_reads: float = 0.0       # elements of A (M x K) read from DRAM
    b_reads: float = 0.0       # elements of B (K x N) read from DRAM

    def fits(self, buffer_bytes: float, element_bytes: float) -> bool:
        return block_bytes(self.tm, self.tn, self.tk, element_bytes) <= buffer_bytes


def block_bytes(tm, tn, tk, element_bytes) -> float:
    return (tm * tk + tk * tn + tm * tn) * element_bytes


def _sizes(limit: int, step: int) -> list:
    out, size = [], step
    while size < limit:
        out.append(size)
        size *= 2
    return out + [limit]


def evaluate(m, n, k, tm, tn, tk, order, rows, cols, arrays, clock_hz, bandwidth, element_bytes) -> Tiling:
    # weight-stationary arrays: a (tk x tn) block maps onto ceil(tk/rows) x ceil(tn/cols) array loads; each load
    # streams tm rows plus rows + cols cycles of fill and drain
    loads = math.ceil(tk / rows) * math.ceil(tn / cols)
    blocks = math.ceil(m / tm) * math.ceil(n / tn) * math.ceil(k / tk)
    cycles = blocks * loads * (tm + rows + cols) / arrays
    compute = cycles / clock_hz
    a_reads = m * k * math.ceil(n / tn)
    b_reads = k * n * math.ceil(m / tm)
    if order == "nm" and m <= tm:            # B block stays while M fits in one block: B read once
        b_reads = k * n
    if order == "mn" and n <= tn:
        a_reads = m * k
    traffic = (a_reads + b_reads + m * n) * element_bytes
    memory = traffic / bandwidth
    return Tiling(tm, tn, tk, order, max(compute, memory), compute, memory, traffic, a_reads, b_reads)


def default_tiling(m, n, k, rows, cols, buffer_bytes, element_bytes=2):
    """(tm, tn, tk, order): array-sized N and K blocks and the largest power-of-two M block that fits."""
    tn, tk = min(n, cols), min(k, rows)
    fitting = [tm for tm in _sizes(m, 16) if block_bytes(tm, tn, tk, element_bytes) <= buffer_bytes]
    if not fitting:
        raise HwsimError(f"no tiling of {m}x{n}x{k} fits a {buffer_bytes / 1e6:.3f} MB buffer; give a larger buffer")
    return fitting[-1], tn, tk, "mn"


def _key(t: Tiling, objective: str):
    return (t.traffic_bytes, t.time_s) if objective == "traffic" else (t.time_s, t.traffic_bytes)


MAX_DIM = 2 ** 31          # larger sizes would only make the candidate list explode


def search(m, n, k, rows, cols, arrays, clock_hz, bandwidth, buffer_bytes, element_bytes=2, time_limit_s=2.0,
           progress=None, objective: str = "time") -> dict:
    for name, v in (("m", m), ("n", n), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_DIM:
            raise HwsimError(f"GEMM size {name} must be a whole number from 1 to {MAX_DIM}, got {v!r}")
    for name, v, low in (("buffer size", buffer_bytes, 0), ("bytes per element", element_bytes, 0),
                         ("clock", clock_hz, 0), ("bandwidth", bandwidth, 0), ("time limit", time_limit_s, None)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                (v <= 0 if low is not None else v < 0):
            raise HwsimError(f"{name} must be a {'positive' if low is not None else 'non-negative'} finite "
                             f"number, got {v!r}")
    if objective not in ("time", "traffic"):
        raise HwsimError(f"unknown tiling objective '{objective}'; use time or traffic")
    candidates = list(itertools.product(_sizes(m, 16), _sizes(n, cols), _sizes(k, rows), ("mn", "nm")))
    first = default_tiling(m, n, k, rows, cols, buffer_bytes, element_bytes)
    candidates.remove(first)
    candidates.insert(0, first)
    start, best, seen, fits = time.perf_counter(), None, 0, 0
    for i, (tm, tn, tk, order) in enumerate(candidates):
        if best is not None and time.perf_counter() - start > time_limit_s:
            break
        seen += 1
        if block_bytes(tm, tn, tk, element_bytes) > buffer_bytes:
            continue
        fits += 1
        t = evaluate(m, n, k, tm, tn, tk, order, rows, cols, arrays, clock_hz, bandwidth, element_bytes)
        if best is None or _key(t, objective) < _key(best, objective):
            best = t
        if progress and i % 200 == 0:
            progress(i + 1, len(candidates), best)
    if best is None:
        raise HwsimError(f"no tiling of {m}x{n}x{k} fits a {buffer_bytes / 1e6:.1f} MB buffer; give a larger buffer")
    return {"best": best, "evaluated": seen, "fitting": fits, "candidates": len(candidates),
            "complete": seen == len(candidates), "seconds": time.perf_counter() - start}


@lru_cache(maxsize=4096)
def tiled(m, n, k, rows, cols, arrays, clock_hz, bandwidth, buffer_bytes, element_bytes, time_limit_s) -> tuple:
    """(searched, default) tilings of one GEMM shape minimizing DRAM traffic; memoized so predict stays fast."""
    best = search(m, n, k, rows, cols, arrays, clock_hz, bandwidth, buffer_bytes, element_bytes, time_limit_s,
                  objective="traffic")["best"]
    tm, tn, tk, order = default_tiling(m, n, k, rows, cols, buffer_bytes, element_bytes)
    return best, evaluate(m, n, k, tm, tn, tk, order, rows, cols, arrays, clock_hz, bandwidth, element_bytes)


def reuse(t: Tiling, m, n, k) -> tuple:
    """(A, B) DRAM reads per element of each operand under tiling t."""
    return t.a_reads / (m * k), t.b_reads / (k * n)
