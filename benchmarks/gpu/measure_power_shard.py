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
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from measure import PowerSampler, Writer, environment, step_runner, timed  # noqa: E402
from measure_launch import shard_config  # noqa: E402

from workloads import load_spec  # noqa: E402
from workloads.modules import CausalLM, Step  # noqa: E402

CASES = [("decode", 64, 64), ("decode", 256, 64), ("decode", 430, 64), ("decode", 512, 64), ("prefill", 1, 2048)]


def main() -> int:
    import pynvml as nvml
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="llama-3-70b:4", help="name:tp")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    environment(args.out)
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    name, tp = args.model.split(":")
    spec = load_spec(shard_config(name, int(tp)))
    torch.manual_seed(0)
    model = CausalLM(spec, dtype=torch.bfloat16, device="cuda", share_layers=False)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    w = Writer(args.out, "power_shard.csv", ["case", "model", "phase", "batch", "seq_len", "step_seconds",
                                             "avg_power_w", "p95_power_w", "energy_j_per_step", "avg_sm_mhz",
                                             "min_sm_mhz", "seconds"])
    for phase, b, s in CASES:
        step = Step(phase, b, s, 0) if phase == "prefill" else Step(phase, b, 1, s)
        graph_s, _, run = timed(step_runner(model, step), min_time=0.5)
        torch.cuda.synchronize()
        sampler = PowerSampler(nvml, h)
        e0 = nvml.nvmlDeviceGetTotalEnergyConsumption(h)
        sampler.start()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            for _ in range(4):
                run()
            n += 4
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        e1 = nvml.nvmlDeviceGetTotalEnergyConsumption(h)
        sampler.stop = True
        sampler.join()
        steady = sampler.samples[len(sampler.samples) // 4:] or sampler.samples
        powers = sorted(p for p, _ in steady)
        clocks = [c for _, c in steady]
        energy = (e1 - e0) / 1e3
        w.row(case="step", model=f"{name}/tp{tp}", phase=phase, batch=b, seq_len=s,
              step_seconds=f"{elapsed / n:.4e}", avg_power_w=f"{energy / elapsed:.1f}",
              p95_power_w=f"{powers[int(0.95 * (len(powers) - 1))]:.1f}", energy_j_per_step=f"{energy / n:.4e}",
              avg_sm_mhz=f"{statistics.mean(clocks):.0f}", min_sm_mhz=min(clocks), seconds=f"{elapsed:.2f}")
        print(f"  {name}/tp{tp} {phase} b={b} s={s}: {elapsed / n * 1e3:.2f} ms sustained "
              f"({graph_s * 1e3:.2f} ms first), {energy / elapsed:.0f} W, SM {statistics.mean(clocks):.0f} MHz",
              flush=True)
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
