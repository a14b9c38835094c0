"""`hwsim sweep STUDY`: a design-space study (grid or search) into a Parquet results folder, with a report."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from workloads.errors import HwsimError

from .output import check_folder, command, document, emit_json, table

EXAMPLES = """examples:
  hwsim sweep studies/hbm_compute_sweep.py
  hwsim sweep studies/hbm_compute_sweep.py --out runs/hbm --workers 2
  hwsim sweep studies/hbm_compute_sweep.py --out runs/hbm --resume          # after an interruption
  hwsim sweep studies/hbm_compute_sweep.py --scheduler tcp://10.0.0.5:8786  # on a Dask cluster
  hwsim sweep studies/npu_area_cost.py --search nsga2 --budget 400 --seed 1  # Optuna search instead of the grid
  hwsim sweep my_study.yaml --csv --report

A study file (Python: `study = Study(...)`, or YAML with the same fields) declares axes (model, device or
PRESET+KEY=VALUE, hw.KEY override axes, phase incl. serve, batch, seq_len, quant, ...), constraints ("fits",
"latency_s <= 0.05") and objectives ({column: min|max}); see sim/dse/study.py and the shipped studies/.
The results folder holds study.json, parts/ (one Parquet file per finished chunk: an interrupted sweep resumes
with --resume, recomputing nothing), results.parquet (with feasible and pareto columns), and with --report an
HTML report (axes, Pareto plots, heatmaps, sensitivity, the best designs and their rooflines).
"""


def register(sub):
    p = command(sub, "sweep", "run a design-space study (grid sweep or Optuna search) with Pareto fronts",
                "Run a design-space study: every point of its grid (or an Optuna search of it) evaluated "
                "locally on all cores or on a Dask cluster, results appended to Parquet as chunks finish.", EXAMPLES)
    p.add_argument("study", help="study file (.py defining `study = Study(...)`, or .yaml)")
    p.add_argument("--out", help="results folder (default: hwsim-sweep/STUDY_NAME)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    p.add_argument("--force", action="store_true", help="discard the results already in --out and start over")
    p.add_argument("--workers", type=int, help="local worker processes (default: all cores; 1 = in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--dask", action="store_true", help="run on a local Dask cluster of --workers processes")
    p.add_argument("--search", choices=["nsga2", "tpe", "random"], help="Optuna search instead of the full grid")
    p.add_argument("--budget", type=int, help="search: points to evaluate (default 200)")
    p.add_argument("--seed", type=int, help="search: sampler seed (default 0)")
    p.add_argument("--csv", action="store_true", help="also write results.csv")
    p.add_argument("--report", action="store_true", help="write report.html with plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(run=run)


def _check(args):
    if args.workers is not None and args.workers < 1:
        raise HwsimError(f"--workers must be at least 1, got {args.workers}")
    if args.budget is not None and args.budget < 1:
        raise HwsimError(f"--budget must be at least 1, got {args.budget}")
    if args.resume and args.force:
        raise HwsimError("--resume and --force contradict each other; pick one")
    if args.scheduler and not args.scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise HwsimError(f"--scheduler takes a Dask address like tcp://host:8786, got {args.scheduler!r}")
    if args.dask and args.scheduler:
        raise HwsimError("--dask starts a local Dask cluster and --scheduler joins an existing one; pick one")
    if args.scheduler and args.workers is not None:
        raise HwsimError("--workers sets local processes; with --scheduler the cluster's own workers run the sweep: "
                         "drop --workers")
    if args.search:
        stray = [o for o, v in (("--workers", args.workers is not None), ("--dask", args.dask),
                                ("--scheduler", args.scheduler)) if v]
        if stray:
            raise HwsimError(f"{', '.join(stray)} apply to grid sweeps; a --search runs its batches in this process: "
                             f"drop {' and '.join(stray)}")
    else:
        stray = [o for o, v in (("--budget", args.budget), ("--seed", args.seed)) if v is not None]
        if stray:
            raise HwsimError(f"{' and '.join(stray)} apply to --search only; add --search nsga2|tpe|random or drop "
                             f"{' and '.join(stray)}")


def run(args):
    from ..dse import report as report_mod
    from ..dse.run import finish, run as run_study
    from ..dse.study import load_study
    _check(args)
    study = load_study(args.study)
    out = Path(args.out or Path("hwsim-sweep") / study.name)
    check_folder(out, "--out")                     # before any work: a folder that takes no files costs nothing
    budget = 200 if args.budget is None else args.budget
    seed = 0 if args.seed is None else args.seed
    progress = not args.quiet and not args.json
    if args.search:
        from ..dse.search import search
        df = search(study, out, budget=budget, sampler=args.search, seed=seed, progress=progress,
                    force=args.force, resume=args.resume, parents=not args.out)
        rate, computed = None, len(df)
    else:
        res = run_study(study, out, resume=args.resume, force=args.force, workers=args.workers,
                        scheduler=args.scheduler, dask=args.dask, progress=progress, parents=not args.out)
        df = res.table
        rate, computed = res.rate, res.computed_points
    if args.csv:
        from ..dse.run import _write_text
        _write_text(df.to_csv(index=False), out / "results.csv")
    if args.report:
        report_mod.write(study, df, out)
    summary = report_mod.summary(study, df)
    findings = report_mod.findings_text(study, df)
    if args.json:
        emit_json(document("sweep", {"study": args.study, "out": str(out), "search": args.search,
                                     "budget": budget if args.search else None},
                           result={**summary, "computed_points": computed, "points_per_s": rate,
                                   "findings": findings}))
        return 0
    print(f"{study.name}: {summary['points']} points ({summary['ok']} evaluated, {summary['feasible']} feasible, "
          f"{summary['front']} on the Pareto front of {', '.join(f'{k} ({v})' for k, v in study.objectives.items())})")
    if rate:
        print(f"  computed {computed:,} points at {rate:,.0f} points/s")
    if summary["errors"]:
        print(f"  {summary['errors']} points failed, e.g.: {summary['first_error']}")
    cols = [(c, c, "<") for c in summary["axis_columns"]] + \
           [(c, (lambda r, c=c: f"{r[c]:.4g}" if isinstance(r[c], float) else r[c]), ">") for c in study.objectives]
    if summary["best"]:
        print("  Pareto front (up to 10 designs):")
        print("\n".join("    " + line for line in table(summary["best"], cols).splitlines()))
    if findings:
        print(findings)
    print(f"  results   {out / 'results.parquet'}" + (f" and results.csv" if args.csv else ""))
    if args.report:
        print(f"  report    {out / 'report.html'}")
    return 0
