"""TeLLMe v2 (arXiv 2510.15926) reproduction attempt: ternary BitNet-0.7B decode on a Kria KV260 FPGA.

Configuration (../shared/seed-papers.md): KV260 at 250 MHz with 64-bit DDR4-2400 (19.2 GB/s), BitNet b1.58
0.7B (W1.58/A8), decode; the paper reports up to about 25 tokens/s under 5 W, falling to about 11 tokens/s as
the context grows. Every number printed comes from the models; the paper's figures are printed beside them.

usage: python3 -m studies.tellme
"""
from __future__ import annotations

import sys

from hw_models import load_device
from sim.predict import predict
from workloads.recipe import build_workload

PAPER = {"tokens_per_s_max": 25.0, "power_w_max": 5.0, "tokens_per_s_long": 11.2}


def main() -> int:
    kv260 = load_device("kv260")
    print(f"{'context':>7s} {'tokens/s':>9s} {'W':>6s}   paper: up to ~{PAPER['tokens_per_s_max']:.0f} tok/s under "
          f"{PAPER['power_w_max']:.0f} W, ~{PAPER['tokens_per_s_long']} tok/s at long context")
    rates = []
    for context in (64, 128, 256, 512, 1024):
        p = predict(build_workload("bitnet-b1.58-0.7b", "decode", 1, context, quant="ternary"), kv260)
        rates.append(1 / p.latency_s)
        print(f"{context:7d} {1 / p.latency_s:9.1f} {p.avg_power_w:6.2f}")
    print(f"\nshort context {rates[0]:.1f} tok/s ({100 * (rates[0] / PAPER['tokens_per_s_max'] - 1):+.0f}% vs the "
          f"paper), decline to {rates[-1]:.1f} tok/s at 1,024 ({rates[-1] / rates[0]:.2f}x; paper about "
          f"{PAPER['tokens_per_s_long'] / PAPER['tokens_per_s_max']:.2f}x)")
    if abs(rates[0] / PAPER["tokens_per_s_max"] - 1) > 0.15:
        print("NOT REPRODUCED within 15%: the model lacks TeLLMe's attention and LM-head (ARM core) costs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
