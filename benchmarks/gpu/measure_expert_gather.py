"""Time the two kernels of transformers' `batched_mm` MoE experts (the path generate() switches decode steps to):
the gather of each routed (token, expert) pair's weights, `W[idx]` (aten.index; torch's vectorized gather kernel when
the slices are contiguous and 16-byte aligned), and the batched matrix-vector product over the gathered copies
(`bmm` with one row per pair), beside `index_select` and a plain copy of the same bytes.

Why: deepseek-v2-lite's HF decode was under-predicted at batch 8 on the H200 and a slow gather was one suspect;
hwsim prices `index` as a vectorized data move (workloads/tracer.py `_GATHERS`, Kernel.strided 0).

usage: python3 benchmarks/gpu/measure_expert_gather.py > OUT.jsonl   (CUDA; one JSON row per shape, ~30 s)
       python3 benchmarks/gpu/measure_expert_gather.py --wide > OUT.jsonl   (~1 min)

--wide (twentieth session): how much of a gather's input comes from DRAM once per *distinct* expert. The first
version timed 20 back-to-back gathers with the same indices, so a slice read in one repetition could still be in L2
for the next. --wide writes a 256 MB buffer before every repetition (L2 flushed), times each gather alone with CUDA
events, and sweeps the expert slice from 1 MB to 235 MB (dozens of the smallest fit the H100's 50 MB L2, none of the
largest), pairs 1-256 and two index orders: uniform random, as a router gives it, and sorted (every repeat of an
expert adjacent). Each row carries the distinct experts among its indices.
"""
from __future__ import annotations

import json
import sys

import torch

SHAPES = [(64, 2816, 2048), (64, 2048, 1408), (60, 2816, 2048), (8, 28672, 4096)]   # experts, N, K (bf16)
PAIRS = [1, 6, 32, 48, 128]


def seconds(fn, n=20) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n * 1e-3


def main() -> None:
    for experts, n, k in SHAPES:
        w = torch.randn(experts, n, k, device="cuda", dtype=torch.bfloat16)
        for pairs in PAIRS:
            idx = torch.randint(0, experts, (pairs,), device="cuda")
            moved = pairs * n * k * 2 * 2                       # read and write
            row = {"E": experts, "N": n, "K": k, "pairs": pairs, "bytes": moved}
            row["index_s"] = seconds(lambda: w[idx])
            row["index_select_s"] = seconds(lambda: torch.index_select(w, 0, idx))
            src = w[idx]
            row["copy_s"] = seconds(lambda: src.clone())
            x, wt = torch.randn(pairs, 1, k, device="cuda", dtype=torch.bfloat16), src.transpose(1, 2)
            row["bmm_s"] = seconds(lambda: torch.bmm(x, wt))
            row["bmm_bytes"] = pairs * n * k * 2
            row["index_GBps"] = moved / row["index_s"] / 1e9
            row["copy_GBps"] = moved / row["copy_s"] / 1e9
            row["bmm_GBps"] = row["bmm_bytes"] / row["bmm_s"] / 1e9
            print(json.dumps({key: round(v, 7) if isinstance(v, float) else v for key, v in row.items()}), flush=True)
        del w
        torch.cuda.empty_cache()


WIDE_SHAPES = [(64, 512, 1024), (128, 1536, 2048), (128, 2048, 768), (64, 2816, 2048), (64, 2048, 1408),
               (32, 4096, 4096), (16, 8192, 4096), (8, 28672, 4096), (8, 4096, 14336)]
WIDE_PAIRS = [1, 4, 8, 16, 32, 64, 128, 256]
MAX_OUT_BYTES = 6e9


def flushed_seconds(fn, flush, reps=10) -> float:
    """Median over `reps` of one call's device time, with L2 overwritten before each call."""
    times = []
    for rep in range(reps + 2):
        flush.add_(1.0)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        if rep >= 2:
            times.append(start.elapsed_time(end) * 1e-3)
    return sorted(times)[len(times) // 2]


def wide() -> None:
    flush = torch.zeros(64 * 2 ** 20, device="cuda", dtype=torch.float32)          # 256 MB
    gen = torch.Generator(device="cuda").manual_seed(0)
    for experts, n, k in WIDE_SHAPES:
        w = torch.randn(experts, n, k, device="cuda", dtype=torch.bfloat16)
        slice_b = n * k * 2
        for pairs in WIDE_PAIRS:
            if pairs * slice_b > MAX_OUT_BYTES:
                continue
            idx = torch.randint(0, experts, (pairs,), device="cuda", generator=gen)
            for order, ids in (("random", idx), ("sorted", torch.sort(idx).values)):
                distinct = int(torch.unique(ids).numel())
                row = {"E": experts, "N": n, "K": k, "slice_MB": round(slice_b / 1e6, 3), "pairs": pairs,
                       "order": order, "distinct": distinct}
                row["index_s"] = flushed_seconds(lambda: w[ids], flush)
                src = w[ids]
                row["copy_s"] = flushed_seconds(lambda: src.clone(), flush)
                row["distinct_GBps"] = (distinct + pairs) * slice_b / row["index_s"] / 1e9
                row["every_GBps"] = 2 * pairs * slice_b / row["index_s"] / 1e9
                row["copy_GBps"] = 2 * pairs * slice_b / row["copy_s"] / 1e9
                del src
                print(json.dumps({key: round(v, 7) if isinstance(v, float) else v for key, v in row.items()}),
                      flush=True)
        del w
        torch.cuda.empty_cache()


if __name__ == "__main__":
    wide() if "--wide" in sys.argv[1:] else main()
