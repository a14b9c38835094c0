"""Two kernel classes of HF's eager forwards on the H100, fitted on synthetic shapes (no model's forward):

- FFMA GEMMs (fp32 without TF32: cuBLAS's CUDA-core SGEMM, what torch's SDPA math path runs): `ffma_eff`, the
  attained fraction of the CUDA-core fp32 peak, with the fp32 output stored after the K loop (GPUModel.
  gemm_epilogue_s) and no tensor-core tile penalty. Data: ffma.csv, batched fp32 GEMMs with K from 16 to 4096.
- SDPA with an explicit boolean mask against the causal kernel (sdpa_mask.csv, bf16, the causal pattern passed as
  a [b, 1, s, s] mask, as transformers passes its sliding-window mask): the rate ratio by head size, printed; the
  preset's `attn_mask_rel_d256` is the d = 256 ratio over the d = 96/128 one (the level itself, `attn_mask_rel`, is
  fitted on the calibration phi-3-mini's HF forwards: hf_prefill_breakdown.py --masked-attention).

Measured by benchmarks/gpu/measure_ffma_sdpa_mask.py on the lent H100 (data/h100-2026-12-06-ffma-sdpa-mask).

usage: python3 benchmarks/gpu/fit_ffma_mask.py [--data DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hw_models import load_device  # noqa: E402
from hw_models.gpu import GPUModel  # noqa: E402
from workloads.graph import FFMA_FP32  # noqa: E402

DATA = ROOT / "benchmarks" / "gpu" / "data" / "h100-2026-12-06-ffma-sdpa-mask"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    data = Path(args.data)
    f = pd.read_csv(data / "ffma.csv")
    unit = GPUModel(load_device("h100"), params={"ffma_eff": 1.0})          # compute at the full CUDA-core rate
    comp = np.array([unit.gemm_compute_s(r.m, r.n, r.k, r.batch, FFMA_FP32, r.sm_mhz) for r in f.itertuples()])
    epi = np.array([unit.gemm_epilogue_s(r.m, r.n, r.batch, FFMA_FP32) for r in f.itertuples()])
    best = min((np.abs((comp / e + epi) / f.seconds - 1).mean(), e) for e in np.arange(0.50, 1.0, 0.001))
    e = best[1]
    err = (comp / e + epi) / f.seconds - 1
    alone = comp / e / f.seconds - 1           # the same rate, the output's write hidden behind the math
    print(f"FFMA GEMMs: ffma_eff {e:.3f} (MAPE {100 * best[0]:.1f}% over {len(f)} shapes; the compute alone at that "
          f"rate, the write overlapped: {100 * np.abs(alone).mean():.1f}%)")
    for r, x in zip(f.itertuples(), err):
        print(f"  {r.batch:4d} x {r.m:5d} x {r.n:5d} x {r.k:5d}{' (B^T)' if r.b_transposed else '      '} "
              f"{r.seconds * 1e3:8.3f} ms  {r.tflops:5.1f} TFLOP/s  model {x:+.1%}")
    s = pd.read_csv(data / "sdpa_mask.csv")
    s["ratio"] = s.masked_full_tflops / s.causal_tflops
    by = s.groupby("d").ratio.mean()
    print("SDPA, masked (every block) against causal, rate per executed FLOP, by head size: " +
          ", ".join(f"d={d} {v:.3f}" for d, v in by.items()))
    mid = s[s.d.isin([96, 128])].ratio.mean()
    print(f"  d = 256 over d = 96/128: {by[256] / mid:.3f} (attn_mask_rel_d256)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
