"""Trace speed: one phase of a 70B-class and a 405B model (targets: under 2 s and 3 s).

Each case runs in a fresh Python process and reports three figures:
  import   - `import workloads` (mostly `import torch`)
  cold     - the first trace in the process (includes torch's one-time lazy imports)
  warm     - the median of later traces of new shapes (module cached, new batch/length)
The target applies to the cold figure (trace only, after import).

usage: python3 benchmarks/trace_speed.py
"""
from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import workloads
t1 = time.perf_counter()
model, phase = sys.argv[1], sys.argv[2]
workloads.trace(model, phase, 8, 2048)
t2 = time.perf_counter()
warm = []
for i, s in enumerate((1024, 3000, 4096)):
    t = time.perf_counter()
    g = workloads.trace(model, phase, 4 + i, s)
    warm.append(time.perf_counter() - t)
print(json.dumps({"import": t1 - t0, "cold": t2 - t1, "warm": sorted(warm)[1], "ops": len(g.ops)}))
"""

CASES = [("llama-3.1-70b", 2.0), ("qwen2.5-72b", 2.0), ("llama-3.1-405b", 3.0), ("deepseek-v3", 3.0)]


def main() -> int:
    print(f"{'model':16s} {'phase':8s} {'import s':>9s} {'cold s':>7s} {'warm s':>7s} {'ops':>5s} {'target s':>8s}  ok")
    worst = 0.0
    for model, target in CASES:
        for phase in ("prefill", "decode"):
            out = subprocess.run([sys.executable, "-c", CHILD, model, phase], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            worst = max(worst, r["cold"] / target)
            print(f"{model:16s} {phase:8s} {r['import']:9.2f} {r['cold']:7.2f} {r['warm']:7.3f} {r['ops']:5d} "
                  f"{target:8.1f}  {'yes' if r['cold'] < target else 'NO'}")
    print(f"\nworst cold trace / target = {worst:.2f} (below 1.00 meets the targets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
