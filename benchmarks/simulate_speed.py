"""Simulator speed, this checkout against a baseline revision in the same run (same machine, same load).

Times (a) one TP8 decode step of Llama-3.1-70B on a DGX H100 (trace from the template, map, simulate) and
(b) 1,000 consecutive decode steps with a growing context, each traced, mapped and simulated. The baseline is
checked out into a temporary git worktree and timed by the same code in a subprocess, so the ratio compares
code, not machines. Issue 8's targets: (a) no slower than before, (b) faster than before.

usage: python3 benchmarks/simulate_speed.py [--baseline REV] [--steps N]
       (REV defaults to 0fada59, main before the execution layer was unified)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = r"""
import json, sys, time
from hw_models.systems import load_system
from mapping import map_graph
from sim.engine import simulate
from workloads import trace
steps = int(sys.argv[1])
system = load_system("dgx-h100")
simulate(map_graph(trace("llama-3.1-70b", "decode", 8, 2048), system, "tp:8"), system)      # warm: template, presets
best = float("inf")
for _ in range(20):
    t = time.perf_counter()
    r = simulate(map_graph(trace("llama-3.1-70b", "decode", 8, 2048), system, "tp:8"), system)
    best = min(best, time.perf_counter() - t)
t = time.perf_counter()
for i in range(steps):
    simulate(map_graph(trace("llama-3.1-70b", "decode", 8, 2048 + i), system, "tp:8"), system)
many = time.perf_counter() - t
print(json.dumps({"one_s": best, "many_s": many, "latency_s": r.latency_s}))
"""


def measure(tree: Path, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", MEASURE, str(steps)], cwd=tree, env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="0fada59", help="git revision to compare against")
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.baseline], check=True)
        try:
            before = measure(base, args.steps)
            after = measure(ROOT, args.steps)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    print(f"one TP8 decode step of llama-3.1-70b (best of 20): {after['one_s'] * 1e3:.2f} ms now, "
          f"{before['one_s'] * 1e3:.2f} ms at {args.baseline}: {before['one_s'] / after['one_s']:.2f}x")
    print(f"{args.steps} consecutive decode steps (context growing): {after['many_s']:.2f} s now, "
          f"{before['many_s']:.2f} s at {args.baseline}: {before['many_s'] / after['many_s']:.2f}x")
    print(f"simulated step latency: {after['latency_s'] * 1e3:.3f} ms now, {before['latency_s'] * 1e3:.3f} ms before")
    return 0


if __name__ == "__main__":
    sys.exit(main())
