"""Time the two kernels of transformers' `batched_mm` MoE experts (the path generate() switches decode steps to):
the gather of each routed (token, expert) pair's weights, `W[idx]` (aten.index; torch's vectorized gather kernel when
the slices are contiguous and 16-byte aligned), and the batched matrix-vector product over the gathered copies
(`bmm` with one row per pair), beside `index_select` and a plain copy of the same bytes.

Why: deepseek-v2-lite's HF decode was under-predicted at batch 8 on the H200 and a slow gather was one suspect;
hwsim prices `index` as a vectorized data move (workloads/tracer.py `_GATHERS`, Kernel.strided 0).

usage: python3 benchmarks/gpu/measure_expert_gather.py > OUT.jsonl   (CUDA; one JSON row per shape, ~30 s)
"""
from __future__ import annotations

import json

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


if __name__ == "__main__":
    main()
