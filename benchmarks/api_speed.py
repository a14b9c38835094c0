"""One-case `sim.api.predict` speed, warm: this checkout against a baseline revision measured in the same run.

Cases (Llama-3.1-8B, and Mixtral-8x7B for MoE, on the H100 model): a repeated shape (a memo hit now); decode with
the context growing by one each call (what a serving simulator asks); batch and context both changing; prefill of
a new prompt length each call (from 256 tokens, under the cap; and from 4,096, every step over the H100's 700 W cap:
its sliding window's solve, cap_sequence); MoE decode with batch and context changing. On the H200 (the same sliding
window since 2026-12-08, gamma 1) and the A100 (no window, gamma 0): decode, context +1, and prefill, prompt +1 (the
H200's from 2,048 tokens, every step over its 700 W cap). Also the full path (trace from the
template, transform, cost every op, solve the operating point) on this checkout, as a yardstick.

The baseline (default: the merge-base of HEAD and main; `--baseline REV`) is checked out into a temporary git
worktree and timed by the same code in a subprocess, so the ratios compare code, not machines; the two
checkouts run alternately `--runs` times (default 3) and each case keeps its best run, as the machine's load
varies. Each case is warmed by 64 calls of other shapes of it (until 1fbc75d the warm shapes lay past the model's
positions, so they took the full path and the timed calls compiled the fast path's blocks: about 6-12 us a call
of prefill, 2-4 us of decode, more of MoE decode, in the figures). Target (the project brief): 0.1 ms a call. Reference, not measured here: LLM-Viewer's one-case analysis
takes about 0.11 ms (the figure the brief quotes).

usage: python3 benchmarks/api_speed.py [--calls N] [--runs R] [--baseline REV]
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
sys.path.insert(0, str(ROOT))

MEASURE = r'''
import json, sys, time
from sim import api
calls = int(sys.argv[1])
CASES = {
    "repeated shape": ("llama-3.1-8b", "h100", lambda i: ("decode", 8, 2048)),
    "decode, context +1 per call": ("llama-3.1-8b", "h100", lambda i: ("decode", 8, 1024 + i)),
    "batch and context changing": ("llama-3.1-8b", "h100", lambda i: ("decode", 1 + i % 64, 128 + 7 * i % 3000)),
    "prefill, prompt +1 per call": ("llama-3.1-8b", "h100", lambda i: ("prefill", 1, 256 + i)),
    # at the 700 W cap: the sliding cap window's solve (cap_sequence) on every new prompt length
    "H100 prefill (capped), prompt +1": ("llama-3.1-8b", "h100", lambda i: ("prefill", 1, 4096 + i)),
    "MoE decode, batch and context changing": ("mixtral-8x7b", "h100",
                                               lambda i: ("decode", 1 + i % 64, 128 + 7 * i % 3000)),
    "H200 decode, context +1 per call": ("llama-3.1-8b", "h200", lambda i: ("decode", 8, 1024 + i)),
    "H200 prefill (capped), prompt +1": ("llama-3.1-8b", "h200", lambda i: ("prefill", 1, 2048 + i)),
    "A100 decode, context +1 per call": ("llama-3.1-8b", "a100", lambda i: ("decode", 8, 1024 + i)),
    "A100 prefill, prompt +1 per call": ("llama-3.1-8b", "a100", lambda i: ("prefill", 1, 256 + i)),
}
out = {}
for label, (model, hw, case) in CASES.items():
    n = calls if model != "mixtral-8x7b" else max(calls // 10, 20)     # a baseline may trace each MoE step
    for i in range(min(n, 64)):     # warm: compile, blocks of the batches used (shapes in range, none timed below)
        api.predict(model, hw, *case(i + 10 ** 4))
    t = time.perf_counter()
    for i in range(n):
        api.predict(model, hw, *case(i))
    out[label] = (time.perf_counter() - t) / n
if len(sys.argv) > 2:                                                 # the full path, this checkout only
    from hw_models import load_device
    from sim.predict import predict
    from workloads.recipe import build_workload
    devices = {hw: load_device(hw) for _, hw, _ in CASES.values()}
    for device in devices.values():
        predict(build_workload("llama-3.1-8b", "decode", 8, 2048), device)
    for label, (model, hw, case) in CASES.items():
        n = max(calls // 20, 5)
        t = time.perf_counter()
        for i in range(n):
            predict(build_workload(model, *case(i)), devices[hw])
        out["full: " + label] = (time.perf_counter() - t) / n
print(json.dumps(out))
'''


def measure(tree: Path, calls: int, full: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    args = [sys.executable, "-c", MEASURE, str(calls)] + (["full"] if full else [])
    out = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3, help="runs of each checkout, alternating; best per case")
    ap.add_argument("--baseline", default=None, help="git revision (default: merge-base of HEAD and main)")
    args = ap.parse_args()
    baseline = args.baseline or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                                               capture_output=True, text=True, check=True).stdout.strip()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), baseline], check=True)
        try:
            before, after = {}, {}
            for run in range(args.runs):         # alternating, each case's best run: load spikes hit both alike
                for tree, into, full in ((base, before, False), (ROOT, after, run == 0)):
                    for label, t in measure(tree, args.calls, full).items():
                        into[label] = min(into.get(label, t), t)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"warm api.predict, ms per call: this checkout vs {baseline[:10]} (same run, best of {args.runs} "
          f"alternating runs each; {os.cpu_count()} cores, load average {load_start:.2f} at the start, {load:.2f} "
          f"at the end)")
    print(f"{'case':42s} {'now':>8s} {'baseline':>9s} {'speed-up':>9s} {'full path':>10s} {'/ 0.1 ms':>9s}")
    for label, now in after.items():
        if label.startswith("full: "):
            continue
        was = before.get(label, float("nan"))
        full = after.get("full: " + label, float("nan"))
        print(f"{label:42s} {now * 1e3:8.3f} {was * 1e3:9.3f} {was / now:8.1f}x {full * 1e3:10.3f} "
              f"{now * 1e3 / 0.1:9.2f}")
    print("reference (not measured here): LLM-Viewer's one-case analysis, about 0.11 ms; target 0.1 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
