"""Sustained NVML power of single eager kernels by how they reach memory: vectorized, non-vectorized, cat.

Why: hwsim charges every DRAM byte the same energy (`e_byte_pj`), whatever the kernel. Hugging Face's decode with a
sliding-window cache spends most of its GPU time in torch's non-vectorized CatArrayBatchedCopy (a fifth of the
bandwidth), and its decode power came out 23% low on the H100 (phi-3-mini 8x2048): the SMs issue a scalar load
and store with index arithmetic per element there, where a vectorized kernel moves 16 bytes per instruction. This
times each kernel class at a size that keeps the GPU busy (CUDA graph of `--reps` calls, replayed back to back for
`--seconds`) and writes its time, bytes moved, average power and SM clock, so the energy per byte of each class can
be read against the vectorized copy (benchmarks/gpu/fit_kernel_power.py).

usage: python3 benchmarks/gpu/measure_kernel_power.py --out DIR [--seconds 4] [--budget S]
Writes DIR/kernel_power.csv (case, access, bytes, step_seconds, avg_power_w, energy_j_per_step, avg_sm_mhz, ...)
and DIR/env.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import environment, sustain, timed  # noqa: E402

BF16 = torch.bfloat16


def cases():
    """(name, access class as hwsim's tracer names it, bytes one call moves, fn). Shapes as HF's decode and
    prefill make them (phi-3-mini's KV cache: 32 heads of 96; a 4096-wide hidden state)."""
    dev = "cuda"
    out = []
    # vectorized copy: the reference for e_byte_pj
    src = torch.randn(128 * 1024 * 1024, device=dev, dtype=BF16)
    dst = torch.empty_like(src)
    out.append(("copy_vec", "vec", 2 * src.numel() * 2, lambda: dst.copy_(src)))
    # elementwise add of two contiguous tensors (vectorized, three streams)
    a = torch.randn(64 * 1024 * 1024, device=dev, dtype=BF16)
    b = torch.randn_like(a)
    c = torch.empty_like(a)
    out.append(("add_vec", "vec", 3 * a.numel() * 2, lambda: torch.add(a, b, out=c)))
    # the sliding-window cache's append past its window: a gapped view and the new token (CatArrayBatchedCopy,
    # not vectorized); batch 32 so one call moves ~0.8 GB
    k = torch.randn(32, 32, 2048, 96, device=dev, dtype=BF16)
    new = torch.randn(32, 32, 1, 96, device=dev, dtype=BF16)
    kv_out = torch.empty(32, 32, 2048, 96, device=dev, dtype=BF16)
    view_bytes = k[:, :, 1:, :].numel() * 2
    out.append(("cat_gapped", "cat", 2 * (view_bytes + new.numel() * 2),
                lambda: torch.cat((k[:, :, 1:, :], new), dim=-2, out=kv_out)))
    # the same cat of contiguous parts (torch vectorizes it)
    kc = torch.randn(32, 32, 2047, 96, device=dev, dtype=BF16)
    out.append(("cat_dense", "vec", 2 * (kc.numel() * 2 + new.numel() * 2),
                lambda: torch.cat((kc, new), dim=-2, out=kv_out)))
    # RMSNorm's product with a broadcast fp32 row scale (HF: hidden.float() * rsqrt(var)): not vectorized
    x = torch.randn(32, 2048, 4096, device=dev, dtype=torch.float32)
    r = torch.randn(32, 2048, 1, device=dev, dtype=torch.float32)
    y = torch.empty_like(x)
    out.append(("mul_bcast", "nonvec", 2 * x.numel() * 4 + r.numel() * 4, lambda: torch.mul(x, r, out=y)))
    # the bf16 -> fp32 upcast (a dtype-converting copy)
    h = torch.randn(32, 2048, 4096, device=dev, dtype=BF16)
    hf = torch.empty(32, 2048, 4096, device=dev, dtype=torch.float32)
    out.append(("upcast", "convert", h.numel() * (2 + 4), lambda: hf.copy_(h)))
    # the row mean of squares' reduction (RMSNorm's variance)
    m = torch.empty(32, 2048, 1, device=dev, dtype=torch.float32)
    out.append(("row_mean", "reduce", x.numel() * 4 + m.numel() * 4, lambda: torch.mean(x, -1, keepdim=True, out=m)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=4.0, help="sustained seconds per case")
    ap.add_argument("--reps", type=int, default=8, help="calls per CUDA graph")
    ap.add_argument("--budget", type=float, default=1e9, help="seconds; no new case starts after this")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import pynvml as nvml
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    environment(args.out)
    with open(os.path.join(args.out, "env.json")) as f:
        env = json.load(f)
    env["script"] = "benchmarks/gpu/measure_kernel_power.py"
    for key in ("window_attention", "token_ids"):          # measure.py's settings, not this script's
        env.pop(key, None)
    with open(os.path.join(args.out, "env.json"), "w") as f:
        json.dump(env, f, indent=1)
    t0 = time.perf_counter()
    path = os.path.join(args.out, "kernel_power.csv")
    fields = ["case", "access", "bytes", "kernel_seconds", "step_seconds", "avg_power_w", "p95_power_w",
              "energy_j_per_step", "avg_sm_mhz", "min_sm_mhz", "seconds", "reps"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        time.sleep(1.0)
        r = sustain(nvml, h, lambda: time.sleep(0.05), args.seconds)
        w.writerow(dict(case="idle", access="", bytes=0, kernel_seconds=0, reps=0, **r))
        f.flush()
        for name, access, nbytes, fn in cases():
            if time.perf_counter() - t0 > args.budget:
                break

            def many(fn=fn):
                for _ in range(args.reps):
                    fn()
            t, _, run = timed(many)
            r = sustain(nvml, h, run, args.seconds)
            w.writerow(dict(case=name, access=access, bytes=nbytes * args.reps, kernel_seconds=f"{t / args.reps:.4e}",
                            reps=args.reps, **r))
            f.flush()
            gbps = nbytes / (t / args.reps) / 1e9
            print(f"{name:12s} {t / args.reps * 1e3:7.3f} ms  {gbps:6.0f} GB/s  {r['avg_power_w']} W  "
                  f"SM {r['avg_sm_mhz']} MHz", flush=True)
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
