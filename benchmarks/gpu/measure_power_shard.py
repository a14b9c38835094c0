"""Sustained power and SM clock of large-batch decode on one GPU's tensor-parallel shard (run on a real GPU).

Why: hwsim's power model lowers the clock when a step would exceed the 700 W cap. The NVML runs in
measure.py cover prefill and decode up to batch 256 of an 8B model; studies such as Lamina rely on it for
decode at batch ~430 of a 70B shard (compute-bound GEMMs). This runs those shapes (a TP4 shard of
Llama-3-70B, short context so that the GEMMs dominate) back to back for several seconds each and records
step time, NVML power and clock, like measure.py's power part.

Writes power_shard.csv: case, model, phase, batch, seq_len, step_seconds, avg_power_w, p95_power_w,
energy_j_per_step, avg_sm_mhz, min_sm_mhz, seconds.
usage: PYTHONPATH=. python3 benchmarks/gpu/measure_power_shard.py --out DIR
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from measure import Writer, _model, environment, step_runner, sustain, timed  # noqa: E402
from measure_launch import shard_config  # noqa: E402

from workloads.modules import Step  # noqa: E402

CASES = [("decode", 64, 64), ("decode", 256, 64), ("decode", 430, 64), ("decode", 512, 64), ("prefill", 1, 2048)]


def main() -> int:
    import pynvml as nvml
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="llama-3-70b:4", help="name:tp")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--token-ids", choices=("zeros", "random"), default="zeros",
                        help="the steps' token ids (measure.py --token-ids): zeros as the 2026-11-24 runs, random as "
                             "real text (more GEMM power)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import measure
    measure.TOKEN_IDS = args.token_ids           # step_runner reads it; environment() records it
    environment(args.out)
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    name, tp = args.model.split(":")
    _, model = _model(shard_config(name, int(tp)))
    w = Writer(args.out, "power_shard.csv", ["case", "model", "phase", "batch", "seq_len", "step_seconds",
                                             "avg_power_w", "p95_power_w", "energy_j_per_step", "avg_sm_mhz",
                                             "min_sm_mhz", "seconds"])
    for phase, b, s in CASES:
        step = Step(phase, b, s, 0) if phase == "prefill" else Step(phase, b, 1, s)
        graph_s, _, run = timed(step_runner(model, step), min_time=0.5)
        r = sustain(nvml, h, run, args.seconds)
        w.row(case="step", model=f"{name}/tp{tp}", phase=phase, batch=b, seq_len=s, **r)
        print(f"  {name}/tp{tp} {phase} b={b} s={s}: {float(r['step_seconds']) * 1e3:.2f} ms sustained "
              f"({graph_s * 1e3:.2f} ms first), {r['avg_power_w']} W, SM {r['avg_sm_mhz']} MHz", flush=True)
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
