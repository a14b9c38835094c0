"""One-case `sim.api.predict` speed, warm, against the full path (trace from the template, transform, cost every
op, solve the operating point) on the same cases in the same run.

Three workloads of Llama-3.1-8B on the H100 model: a repeated shape; decode with the context growing by one
each call (what a serving simulator asks); batch and context both changing. Target (the brief): 0.1 ms a call.

usage: python3 benchmarks/api_speed.py [--calls N]
"""
from __future__ import annotations

import argparse
import sys
import time

from hw_models import load_device
from sim import api
from sim.predict import predict
from workloads.recipe import build_workload

CASES = {
    "repeated shape": lambda i: ("decode", 8, 2048),
    "decode, context +1 per call": lambda i: ("decode", 8, 1024 + i),
    "batch and context changing": lambda i: ("decode", 1 + i % 64, 128 + 7 * i % 3000),
    "prefill, prompt +1 per call": lambda i: ("prefill", 1, 256 + i),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    device = load_device("h100")
    api.predict("llama-3.1-8b", "h100", "decode", 8, 2048)                 # compile and warm
    predict(build_workload("llama-3.1-8b", "decode", 8, 2048), device)
    print(f"{'case':30s} {'api.predict':>12s} {'full path':>10s} {'speed-up':>9s}")
    for label, case in CASES.items():
        t = time.perf_counter()
        for i in range(args.calls):
            api.predict("llama-3.1-8b", "h100", *case(i))
        fast = (time.perf_counter() - t) / args.calls
        t = time.perf_counter()
        n = max(args.calls // 4, 1)
        for i in range(n):
            predict(build_workload("llama-3.1-8b", *case(i)), device)
        full = (time.perf_counter() - t) / n
        print(f"{label:30s} {fast * 1e3:9.3f} ms {full * 1e3:7.3f} ms {full / fast:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
