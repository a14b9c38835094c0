"""Fit the NVLink link parameters of the DGX system presets to published all-reduce measurements.

Sources (numbers only, read from the public files; nothing of their code is used):
- NCCL: Vidur's DGX all-reduce profiles (microsoft/vidur data/profiling/network/{h100_dgx,a100_dgx}/all_reduce.csv
  @7d47513, median column, ms; `size` in bytes; rows with devices_per_node == num_workers, i.e. one node).
- vLLM's custom all-reduce on 8x H100 (sgl-project/sglang PR #2904 description table, without CUDA graphs).

Calibration is the 8-GPU curve (ring-step latency from the messages below 256 KB, attained fraction of the
per-direction NVLink bandwidth from the slope above 8 MB). With `--gpu a100` the 2- and 4-GPU curves of the same
file are held out, and so are LLMCompass's two A100 TP4 all-reduce rows (benchmarks/gpu/data/llmcompass-a100-mi210:
GPT-3 175B layer, 402.7 MB prefill and 196.6 KB decode messages) and nccl-tests issue #149 (8x A100-SXM4-80GB,
all_reduce_perf busbw about 200 GB/s at 1 GB).

usage: python3 benchmarks/collective_fit.py [--gpu h100|a100] [path/to/vidur/all_reduce.csv]
Prints the ring-step latency, the attained fraction of the NVLink bandwidth (450 GB/s NVLink 4, 300 GB/s NVLink 3)
and, for the H100, the custom all-reduce line that hw_models/presets/systems/dgx-h100*.yaml use, and how well
hwsim's formulas then fit.
"""
from __future__ import annotations

import csv
import sys

import numpy as np

NVLINK_GBPS = {"h100": 450.0,   # per direction per GPU: DGX H100 datasheet (900 GB/s bidirectional)
               "a100": 300.0}   # DGX A100 datasheet (600 GB/s bidirectional, NVLink 3)
N = 8
# (message bytes, microseconds, GPUs): LLMCompass A100 TP4 all-reduce rows (a100_mi210_ops.csv llmc-0181, llmc-0193)
LLMCOMPASS_A100 = [(8 * 2048 * 12288 * 2, 2890.90, 4), (8 * 12288 * 2, 26.04, 4)]
NCCL_TESTS_A100_BUSBW = 200.0   # GB/s, nccl-tests issue #149 (8x A100-SXM4-80GB, 1 GB messages)
# (bytes, microseconds): vLLM custom all-reduce, TP8 on H100 (sglang PR #2904)
CUSTOM = [(512, 10.1), (4096, 9.3), (32768, 11.8), (262144, 24.1), (524288, 30.4), (1048576, 45.0)]


def curve(rows, n):
    """(bytes, median us) of the one-node rows of `n` GPUs."""
    sel = [r for r in rows if r["num_workers"] == str(n) and r.get("devices_per_node", str(n)) == str(n)]
    return (np.array([float(r["size"]) for r in sel]),
            np.array([float(r["time_stats.all_reduce.median"]) for r in sel]) * 1e3)


def fit_nccl(rows, nvlink_gbps=NVLINK_GBPS["h100"]):
    s, t = curve(rows, N)
    small = s < 256 * 1024
    alpha = np.median(t[small]) / (2 * (N - 1))
    big = s > 8e6
    slope = np.polyfit(s[big], t[big], 1)[0]                    # us per byte
    busbw = 2 * (N - 1) / N / (slope * 1e-6) / 1e9
    return alpha, busbw / nvlink_gbps, s, t


def ring_us(nbytes, n, alpha, gbps):
    """hwsim's ring all-reduce (hw_models/collectives.py): 2(n-1) steps of alpha + bytes/n at the attained rate."""
    return 2 * (n - 1) * (alpha + np.asarray(nbytes, dtype=float) / n / (gbps * 1e3))


def main() -> int:
    args = sys.argv[1:]
    gpu = "h100"
    if args[:1] == ["--gpu"]:
        gpu, args = args[1], args[2:]
    bw = NVLINK_GBPS[gpu]
    path = args[0] if args else None
    if path:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        alpha, eff, s, t = fit_nccl(rows, bw)
        err = np.abs(ring_us(s, N, alpha, bw * eff) - t) / t
        print(f"NCCL ring ({gpu}, calibration: {N} GPUs): {alpha:.2f} us per step, efficiency {eff:.2f} of {bw:.0f} "
              f"GB/s; model vs {len(s)} medians: mean |error| {100 * err.mean():.0f}%, median {100 * np.median(err):.0f}%")
        if gpu == "a100":
            for n in (2, 4):                    # held out: the TP sizes of the published A100 rows
                s2, t2 = curve(rows, n)
                big = s2 > 1e6
                for name, a, g in (("fitted", alpha, bw * eff), ("datasheet (eff 1, 3 us)", 3.0, bw)):
                    e = np.abs(ring_us(s2, n, a, g) - t2) / t2
                    print(f"  held out, {n} GPUs, {name}: mean |error| {100 * e.mean():.0f}% over {len(s2)} medians, "
                          f"{100 * e[big].mean():.0f}% above 1 MB")
            for nbytes, us, n in LLMCOMPASS_A100:
                print(f"  held out, LLMCompass TP{n} all-reduce of {nbytes / 1e6:.1f} MB: measured {us:.0f} us, "
                      f"fitted {ring_us(nbytes, n, alpha, bw * eff):.0f} us, datasheet {ring_us(nbytes, n, 3.0, bw):.0f} us")
            print(f"  held out, nccl-tests #149 busbw at 1 GB: {NCCL_TESTS_A100_BUSBW:.0f} GB/s; fitted "
                  f"{bw * eff:.0f} GB/s, datasheet {bw:.0f} GB/s")
            return 0
    else:
        print("(pass Vidur's h100_dgx/all_reduce.csv, or --gpu a100 and a100_dgx/all_reduce.csv, to refit the NCCL part)")
    s = np.array([b for b, _ in CUSTOM], dtype=float)
    t = np.array([u for _, u in CUSTOM])
    slope, icpt = np.polyfit(s, t, 1)
    err = np.abs(np.polyval([slope, icpt], s) - t) / t
    print(f"custom all-reduce: {icpt:.1f} us + bytes / {1 / (slope * 1e-6) / 1e9:.1f} GB/s; "
          f"max |error| {100 * err.max():.0f}% over {len(s)} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
