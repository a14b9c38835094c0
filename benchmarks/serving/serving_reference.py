"""Serving against published serving measurements (issue 9 acceptance: throughput and median TTFT/TPOT against
vendor and framework benchmark pages with their full configuration).

Reference: NVIDIA NIM LLM benchmarking guide, "Performance" page (docs.nvidia.com/nim/benchmarking/llm/1.0.0/
performance): Llama-3.3-70B-Instruct, NIM 1.8.0, 2x H100 80G, FP8, TP2, 5,000 input / 500 output tokens,
AIPerf at fixed concurrency (each client sends its next request when the previous completes); TTFT and ITL
in ms and output throughput in tokens/s. Llama-3.3-70B has Llama-3.1-70B's architecture (the zoo preset is
used). NIM runs TensorRT-LLM with in-flight batching: modelled as chunked prefill beside decodes
(`vllm-chunked`) with an 8,192-token budget (TensorRT-LLM's default max_num_tokens), FP8 weights and KV
cache, stack `fused`. Clients start at random times within one request's latency at concurrency 1 (the
benchmark's warm-up leaves them out of step) and each client's first request is left out of the statistics,
as a warm-up. Nothing is fitted to this page.

    python3 benchmarks/serving/serving_reference.py [--markdown]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SOURCE = "NVIDIA NIM benchmarking guide, Performance page (NIM 1.8.0, Llama-3.3-70B-Instruct, 2x H100 FP8 TP2)"
ISL, OSL = 5000, 500
# concurrency: (TTFT ms, ITL ms, output tokens/s)
PUBLISHED = {1: (406.77, 18.58, 51.67), 5: (546.7, 21.83, 218.48), 25: (688.69, 38.75, 623.4),
             50: (834.51, 59.73, 814.37), 100: (7996.25, 92.91, 917.26)}
TOLERANCE = 0.15


def run(requests_per_client: int = 6):
    from sim.serving import Pool, serve
    from workloads.requests import closed_loop
    pool = Pool(model="llama-3.1-70b", system="dgx-h100", mapping="tp:2", scheduler="vllm-chunked",
                max_tokens=8192, max_seqs=256, quant="fp8", kv_dtype="fp8", profile="fused", max_context=8192)
    one = serve(closed_loop(1, 1, f"fixed:{ISL}:{OSL}"), pool).summary["e2e_s_mean"]
    rows = []
    for c, (ttft, itl, thr) in PUBLISHED.items():
        df = closed_loop(c, c * requests_per_client, f"fixed:{ISL}:{OSL}", stagger_s=one)
        res = serve(df, pool)
        req = res.requests[df.parent.to_numpy() >= 0]           # after each client's first request
        start, end = float(req.arrival_s.min()), float(req.finish_s.max())
        rows.append({"concurrency": c, "ttft_ms": (ttft, 1e3 * float(req.ttft_s.mean())),
                     "itl_ms": (itl, 1e3 * float(req.tpot_s.mean())),
                     "throughput": (thr, float(req.output_tokens.sum()) / (end - start))})
    return rows


def report(rows, markdown=False):
    import numpy as np
    print(f"Serving vs {SOURCE}, {ISL} in / {OSL} out")
    head = ["concurrency", "TTFT ms pub", "hwsim", "err", "ITL ms pub", "hwsim", "err", "out tok/s pub", "hwsim", "err"]
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    errs = {"ttft_ms": [], "itl_ms": [], "throughput": []}
    for r in rows:
        cells = [r["concurrency"]]
        for k in ("ttft_ms", "itl_ms", "throughput"):
            pub, got = r[k]
            e = got / pub - 1
            errs[k].append(abs(e))
            cells += [f"{pub:,.1f}", f"{got:,.1f}", f"{100 * e:+.0f}%"]
        print(("| " + " | ".join(str(c) for c in cells) + " |") if markdown else
              "  ".join(f"{str(c):>10}" for c in cells))
    for k, v in errs.items():
        v = np.array(v)
        print(f"{k}: mean |error| {100 * v.mean():.0f}%, {int((v <= TOLERANCE).sum())}/{len(v)} within "
              f"{100 * TOLERANCE:.0f}%")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", action="store_true")
    report(run(), ap.parse_args().markdown)
