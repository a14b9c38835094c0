"""Fit the NVLink link parameters of the DGX-H100 system presets to published all-reduce measurements.

Sources (numbers only, read from the public files; nothing of their code is used):
- NCCL: Vidur's DGX-H100 all-reduce profile over 8 GPUs (microsoft/vidur
  data/profiling/network/h100_dgx/all_reduce.csv @7d47513, median column, ms; `size` in bytes).
- vLLM's custom all-reduce on 8x H100 (sgl-project/sglang PR #2904 description table, without CUDA graphs).

usage: python3 benchmarks/collective_fit.py [path/to/vidur/all_reduce.csv]
Prints the ring-step latency, the attained fraction of the 450 GB/s NVLink 4 bandwidth and the custom
all-reduce line that hw_models/presets/systems/dgx-h100*.yaml use, and how well hwsim's formulas then fit.
"""
from __future__ import annotations

import csv
import sys

import numpy as np

NVLINK_GBPS = 450.0          # per direction per GPU, DGX H100 datasheet
N = 8
# (bytes, microseconds): vLLM custom all-reduce, TP8 on H100 (sglang PR #2904)
CUSTOM = [(512, 10.1), (4096, 9.3), (32768, 11.8), (262144, 24.1), (524288, 30.4), (1048576, 45.0)]


def fit_nccl(rows):
    s = np.array([float(r["size"]) for r in rows])
    t = np.array([float(r["time_stats.all_reduce.median"]) for r in rows]) * 1e3      # us
    small = s < 256 * 1024
    alpha = np.median(t[small]) / (2 * (N - 1))
    big = s > 8e6
    slope = np.polyfit(s[big], t[big], 1)[0]                    # us per byte
    busbw = 2 * (N - 1) / N / (slope * 1e-6) / 1e9
    return alpha, busbw / NVLINK_GBPS, s, t


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else None
    if path:
        with open(path) as f:
            rows = [r for r in csv.DictReader(f) if r["num_workers"] == str(N)]
        alpha, eff, s, t = fit_nccl(rows)
        model = 2 * (N - 1) * (alpha + s / N / (NVLINK_GBPS * eff * 1e3))
        err = np.abs(model - t) / t
        print(f"NCCL ring: {alpha:.2f} us per step, efficiency {eff:.2f} of {NVLINK_GBPS:.0f} GB/s; "
              f"model vs {len(s)} medians: mean |error| {100 * err.mean():.0f}%, median {100 * np.median(err):.0f}%")
    else:
        print("(pass Vidur's h100_dgx/all_reduce.csv to refit the NCCL part)")
    s = np.array([b for b, _ in CUSTOM], dtype=float)
    t = np.array([u for _, u in CUSTOM])
    slope, icpt = np.polyfit(s, t, 1)
    err = np.abs(np.polyval([slope, icpt], s) - t) / t
    print(f"custom all-reduce: {icpt:.1f} us + bytes / {1 / (slope * 1e-6) / 1e9:.1f} GB/s; "
          f"max |error| {100 * err.max():.0f}% over {len(s)} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
