"""Sweep speed: a 1,000,000-point study over (model, device override, quantization, phase, batch, length)
through `hwsim sweep`'s engine, locally on all cores; target under 2 minutes on this machine.

    python3 benchmarks/sweep_speed.py [--points-scale 1.0] [--workers N] [--dask] [--baseline REV] [--skip-full]

Prints start-up (graph templates), the sweep's wall time, points per second overall and per worker, and the
ratios to the targets (1,000,000 points in 120 s; the issue's 100,000 points per second per core).

Then the per-core rate after start-up, one worker in one process, for a dense model (Llama-3.1-8B) and a MoE
model (Mixtral-8x7B) over the same axes (24 H100 overrides x 4 quantizations x 2 phases x 32 batches x 41
lengths, chunk by chunk as `hwsim sweep` evaluates them; start-up is chunk 0, whose graph templates and linear
steps every later chunk reuses), for this checkout and for a baseline revision
(default: main) checked out into a temporary git worktree and timed by the same code in a subprocess, so the
ratio compares code, not machines. A baseline without MoE templates traces every MoE point (~0.2 s): it is timed
on its first --moe-baseline-points points.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_CORE = r'''
import json, sys, time
from sim.dse.evaluate import evaluate
from sim.dse.study import study_from_source
model, chunks, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
nb, nl = 32, 41
batch = [1 + round(255 * i / (nb - 1)) for i in range(nb)]
lengths = [128 + round((32000 - 128) * i / (nl - 1)) for i in range(nl)]
text = """from sim.dse import Study
study = Study(name="per-core", axes={"model": [%r], "device": ["h100"],
    "hw.hbm.bandwidth": ["2TB/s", "3.35TB/s", "4.8TB/s", "6.7TB/s", "8TB/s", "10TB/s"], "hw.sm_count": [66, 100, 132, 160],
    "quant": ["none", "w8a16", "w4a16", "fp8"], "phase": ["decode", "prefill"], "batch": %r, "seq_len": %r})
""" % (model, batch, lengths)
study = study_from_source(text, "per-core.py")
size = study.chunk()
t = time.perf_counter()
evaluate(study.points(0, size))                # start-up (not counted): presets, templates, and the linear steps
startup = time.perf_counter() - t              # of every (quantization, phase, block) of chunk 0, which recur
n, cpu = 0, 0.0
for k in range(1, 1 + chunks):
    pts = study.points(k * size, (k + 1) * size)
    if limit:
        pts = pts.iloc[:limit]
    c = time.process_time()
    out = evaluate(pts)
    cpu += time.process_time() - c
    n += len(pts)
ok = int((out["status"] == "ok").sum())
print(json.dumps({"points": n, "cpu_s": cpu, "startup_s": startup, "last_ok": ok, "last": len(out)}))
'''


def per_core(tree: Path, model: str, chunks: int, limit: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", PER_CORE, model, str(chunks), str(limit)], cwd=tree, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_per_core(baseline: str, chunks: int, moe_limit: int):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), baseline], check=True)
        try:
            rows = []
            for label, model, limit in (("dense", "llama-3.1-8b", 0), ("MoE", "mixtral-8x7b", moe_limit)):
                before = per_core(base, model, 1 if limit else chunks, limit)
                after = per_core(ROOT, model, chunks, 0)
                rows.append((label, model, before, after))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"per core after start-up (one worker, one process; CPU-seconds of evaluate), now vs {baseline}; "
          f"load average {load} (1, 5, 15 min) at the end:")
    for label, model, before, after in rows:
        now, was = after["points"] / after["cpu_s"], before["points"] / before["cpu_s"]
        print(f"  {label:5s} {model:14s} {now:10,.0f} points/s now ({after['points']:,} points, start-up "
              f"{after['startup_s']:.1f} s); {was:10,.1f} at {baseline} ({before['points']:,} points): "
              f"{now / was:,.1f}x; / 100,000 target = {now / 1e5:.2f}")

STUDY = """
from sim.dse import Study
study = Study(
    name="speed",
    axes={{"model": ["llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "qwen2.5-72b"], "device": ["h100"],
          "hw.hbm.bandwidth": ["2TB/s", "3.35TB/s", "4.8TB/s", "6.7TB/s", "8TB/s", "10TB/s"],
          "hw.sm_count": [66, 100, 132, 160],
          "quant": ["none", "w8a16", "w4a16", "fp8"], "phase": ["decode", "prefill"],
          "batch": {batch}, "seq_len": {lengths}}},
    constraints=["fits"], objectives={{"latency_s": "min", "usd_per_mtoken": "min"}})
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points-scale", type=float, default=1.0, help="fraction of the batch x length block (quick runs)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--dask", action="store_true", help="a local Dask cluster of --workers processes instead")
    ap.add_argument("--baseline", default="main", help="git revision for the per-core comparison")
    ap.add_argument("--chunks", type=int, default=3, help="chunks timed per model in the per-core comparison")
    ap.add_argument("--moe-baseline-points", type=int, default=0,
                    help="time a baseline's MoE run on its first N points only (0: whole chunks; for baselines "
                         "that trace every MoE point)")
    ap.add_argument("--skip-full", action="store_true", help="only the per-core comparison")
    args = ap.parse_args()
    if args.skip_full:
        compare_per_core(args.baseline, args.chunks, args.moe_baseline_points)
        return
    nb = max(2, round(32 * args.points_scale ** 0.5))
    nl = max(2, round(41 * args.points_scale ** 0.5))
    batch = [1 + round(255 * i / (nb - 1)) for i in range(nb)]
    lengths = [128 + round((32000 - 128) * i / (nl - 1)) for i in range(nl)]
    text = STUDY.format(batch=batch, lengths=lengths)
    from sim.dse.run import run
    from sim.dse.study import study_from_source
    study = study_from_source(text, "speed.py")
    t0 = time.perf_counter()
    from workloads.capture import _template, load_spec
    for model in study.axes["model"]:
        for phase in study.axes["phase"]:
            _template(load_spec(model), phase)
    startup = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp(prefix="hwsim-sweep-speed-"))
    import resource

    def cpu():
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    try:
        cpu0 = cpu()
        t1 = time.perf_counter()
        res = run(study, out / "run", workers=args.workers, dask=args.dask, progress=sys.stderr.isatty())
        wall = time.perf_counter() - t1
        cpu_s = cpu() - cpu0
        df = res.table
    finally:
        shutil.rmtree(out, ignore_errors=True)
    n = study.size
    rate = n / wall
    per_worker = rate / args.workers
    ok = int((df["status"] == "ok").sum())
    print(f"study: {n:,} points ({' x '.join(map(str, study.shape))}), chunk {study.chunk():,} points, "
          f"{args.workers} {'Dask ' if args.dask else ''}worker(s) on {os.cpu_count()} cores")
    print(f"start-up (graph templates of {len(study.axes['model'])} models x {len(study.axes['phase'])} phases): "
          f"{startup:.1f} s")
    print(f"sweep (evaluate, Parquet parts, final table, Pareto): {wall:.1f} s; {ok:,} points ok, "
          f"{int(df['feasible'].sum()):,} feasible, {int(df['pareto'].sum())} on the front")
    per_cpu = n / cpu_s if cpu_s > 0 else float("nan")
    print(f"rate: {rate:,.0f} points/s overall, {per_worker:,.0f} per worker; {per_cpu:,.0f} points per CPU-second "
          f"({cpu_s:.1f} CPU-s in all processes: the per-core rate on a machine shared with other work)")
    print(f"ratios: 1M-point time / 120 s target = {wall * 1e6 / n / 120:.2f} (<= 1 passes); "
          f"per-core rate / 100,000 target = {per_cpu / 1e5:.2f}")
    compare_per_core(args.baseline, args.chunks, args.moe_baseline_points)


if __name__ == "__main__":
    main()
