"""What an Ampere-generation GEMM kernel keeps of a Hopper GPU's speed: the ratios ampere_gemm_on_hopper.py measured.

Reads DIR/ampere_gemm.csv and prints, per shape and M, the time of the best mma.sync (Ampere instruction) Triton
kernel against cuBLAS (the kernels hwsim's Hopper GEMM numbers were fitted on) and against the same Triton kernel
with wgmma, and two factors for hw_models (the compute-bound rows, M >= 1024: the share of the Hopper kernels' rate
an sm80 kernel attains; the weight-streaming rows, M <= 64: the same for its bandwidth), each the median over its
rows, with the spread. The factors describe the proxy kernel (Triton's mma.sync code), not CUTLASS's sm80 kernels
themselves; docs/stack-accuracy.md says what that leaves open.

usage: python3 benchmarks/gpu/fit_ampere_on_hopper.py DIR
"""
from __future__ import annotations

import statistics
import sys

import pandas as pd

COMPUTE_M, STREAM_M = 1024, 64


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (shape, m): seconds of each source and the ratios cublas / mma_v2 and mma_v3 / mma_v2 (the share
    of the faster kernel's speed the mma.sync kernel keeps)."""
    t = frame.pivot_table(index=["shape", "m", "n", "k"], columns="source", values="seconds", aggfunc="min")
    t = t.reset_index()
    t["keep_vs_cublas"] = t["cublas"] / t["mma_v2"]
    if "mma_v3" in t:
        t["keep_vs_wgmma"] = t["mma_v3"] / t["mma_v2"]
    return t


def factors(t: pd.DataFrame) -> dict:
    out = {}
    for name, rows in (("compute", t[t.m >= COMPUTE_M]), ("stream", t[t.m <= STREAM_M])):
        v = rows["keep_vs_cublas"].dropna().tolist()
        if v:
            out[name] = (statistics.median(v), min(v), max(v), len(v))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    frame = pd.read_csv(f"{argv[0]}/ampere_gemm.csv")
    mma = frame[frame.source == "mma_v2"]["mma"].unique().tolist()
    print(f"mma_v2 kernels' instruction (from their PTX): {mma}; mma_v3: "
          f"{frame[frame.source == 'mma_v3']['mma'].unique().tolist()}")
    t = ratios(frame)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(t.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    for name, (med, lo, hi, n) in factors(t).items():
        print(f"{name}: mma.sync keeps {med:.3f} of cuBLAS (min {lo:.3f}, max {hi:.3f}, {n} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
