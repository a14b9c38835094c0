"""Simulator speed (targets: one TP8 decode step of a 70B model under 0.2 s; 1,000 steps under 5 s).

usage: python3 benchmarks/simulate_speed.py
"""
from __future__ import annotations

import sys
import time

from hw_models.systems import load_system
from mapping import map_graph
from sim.engine import simulate
from workloads import trace


def main() -> int:
    system = load_system("dgx-h100")
    graph = trace("llama-3.1-70b", "decode", 8, 2048)      # builds the template once
    t = time.perf_counter()
    mapped = map_graph(graph, system, "tp:8")
    r = simulate(mapped, system)
    one = time.perf_counter() - t
    print(f"one TP8 decode step of llama-3.1-70b: {one:.3f} s to simulate ({r.latency_s * 1e3:.2f} ms simulated; "
          f"target 0.2 s)")
    steps = 100
    t = time.perf_counter()
    for i in range(steps):
        simulate(map_graph(trace("llama-3.1-70b", "decode", 8, 2048 + i), system, "tp:8"), system)
    per = (time.perf_counter() - t) / steps
    print(f"consecutive steps with growing context: {per * 1e3:.1f} ms each, {per * 1000:.1f} s per 1,000 steps "
          f"(target 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
