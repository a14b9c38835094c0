"""Sweep speed: a 1,000,000-point study over (model, device override, quantization, phase, batch, length)
through `hwsim sweep`'s engine, locally on all cores; target under 2 minutes on this machine.

    python3 benchmarks/sweep_speed.py [--points-scale 1.0] [--workers N] [--dask]

Prints start-up (graph templates), the sweep's wall time, points per second overall and per worker, and the
ratios to the targets (1,000,000 points in 120 s; the issue's 100,000 points per second per core).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
