"""What-if (not a result): the published Mixtral-8x7B rows of TensorRT-LLM v0.9.0 if its Hopper expert GEMMs kept only
a share of the Hopper kernels' rates (issue 12; docs/stack-accuracy.md, "Ampere kernels on Hopper").

v0.9.0's MoE plugin runs sm80 (Ampere) CUTLASS kernels on sm90; hwsim has no measured share yet
(benchmarks/gpu/ampere_gemm_on_hopper.py measures it). This prices the rows under trtllm-0.6 with the MoE plugin's
grouped GEMMs and, on the H100 and H200 only, the grouped GEMM's compute rate (grouped_mm_eff) times COMPUTE and its
bandwidth (grouped_bw_eff, grouped_sm_gbps) times BANDWIDTH, for each trial pair, and prints the Hopper groups'
MAPE. Nothing is written anywhere.

usage: python3 benchmarks/mixtral_sm80_whatif.py [--shares 1:1,0.6:1,0.5:0.85]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hw_models.moe as moe  # noqa: E402
from hw_models import stacks  # noqa: E402

TRIAL = "trtllm-0.9-whatif"
HOPPER = ("h100", "h200")


def _install(share: dict):
    """Register the trial stack and scale the grouped GEMM's rates on Hopper devices under it."""
    stacks.STACKS[TRIAL] = dataclasses.replace(stacks.STACKS["trtllm-0.6"], name=TRIAL, moe_kernel="grouped")
    original = moe.grouped_parts

    def scaled(model, classes, n, k, clock_mhz, nbytes=None, dtype="bf16", w_bytes=2.0, a_bytes=2.0):
        if model.stack.name != TRIAL or not any(h in model.device.id.lower() for h in HOPPER):
            return original(model, classes, n, k, clock_mhz, nbytes, dtype, w_bytes, a_bytes)
        p = model.p
        model.p = dict(p, grouped_mm_eff=p.get("grouped_mm_eff", p["mm_eff"]) * share["compute"],
                       grouped_bw_eff=p.get("grouped_bw_eff", p["bw_eff"]) * share["bandwidth"],
                       grouped_sm_gbps=p.get("grouped_sm_gbps", 0.0) * share["bandwidth"])
        try:
            return original(model, classes, n, k, clock_mhz, nbytes, dtype, w_bytes, a_bytes)
        finally:
            model.p = p
    moe.grouped_parts = scaled
    return original


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shares", default="1:1,0.6:1,0.5:0.85", help="COMPUTE:BANDWIDTH pairs, comma-separated")
    args = ap.parse_args(argv)
    try:
        trials = [tuple(float(x) for x in pair.split(":")) for pair in args.shares.split(",")]
        assert all(len(t) == 2 and 0 < t[0] <= 1 and 0 < t[1] <= 1 for t in trials)
    except (ValueError, AssertionError):
        print(f"--shares {args.shares!r}: give COMPUTE:BANDWIDTH pairs in (0, 1], e.g. 0.6:1,0.5:0.85",
              file=sys.stderr)
        return 2
    import stack_accuracy as acc
    print("what-if, not a result: MAPE of the Hopper Mixtral groups (held out, nothing fitted)")
    for c, b in trials:
        original = _install({"compute": c, "bandwidth": b})
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                errs, rows = acc.published_moe([TRIAL])
        finally:
            moe.grouped_parts = original
        cells = []
        for gpu in HOPPER:
            for metric in ("tput", "ftl"):
                v = [e for key, e in errs.items() if key[0] == TRIAL and key[2] == gpu and key[-1] == metric]
                cells.append(f"{gpu} {metric} {100 * statistics.mean(v[0]):5.1f}%")
        ftl2048 = [(p[TRIAL] - r[-1]) / r[-1] for kind, r, p in rows
                   if kind == "ftl" and r[0] == "h100" and r[4] == 2048]
        print(f"compute {c:.2f}, bandwidth {b:.2f}: " + ", ".join(cells) +
              f"; H100 first token at 2048 tokens {100 * ftl2048[0]:+.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
