"""`hwsim validate`: prediction error against the committed GPU measurements, beside a plain roofline."""
from __future__ import annotations

import sys
from pathlib import Path

from workloads.errors import HwsimError

from .. import validation
from .output import command, document, emit_json, table

EXAMPLES = """examples:
  hwsim validate
  hwsim validate --cases        # every case, not only the summary
  hwsim validate --json
"""


def register(sub):
    p = command(sub, "validate", "error of the GPU model against the measured steps (and of a plain roofline)",
                "Re-run every measured full decoder step (benchmarks/gpu/data/*/steps.csv) through "
                                   "hwsim and through a plain datasheet roofline, and print the error table.", EXAMPLES)
    p.add_argument("--data", default=str(validation.DATA_DIR), help="folder of measurement sets")
    p.add_argument("--cases", action="store_true", help="also print each case")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args):
    sets = validation.datasets(Path(args.data))
    if not sets:
        raise HwsimError(f"no measurement sets (*/steps.csv) under {args.data}")
    results, doc = {}, []
    for folder, env, device_id in sets:
        if device_id is None:
            print(f"skipping {folder.name}: no preset for device '{env['device']}'", file=sys.stderr)
            continue
        progress = (lambda i, n: print(f"\r{folder.name}: {i}/{n}", end="", file=sys.stderr)) if sys.stderr.isatty() else None
        rows = validation.evaluate(folder, device_id, progress)
        if progress:
            print(file=sys.stderr)
        for r in rows:
            if r["status"] != "ok":
                print(f"{folder.name}/steps.csv: {r['status']} (row skipped)", file=sys.stderr)
        results.setdefault(device_id, []).extend(rows)
        doc.append({"data": folder.name, "device": device_id, "env": env, "summary": validation.summary(rows),
                    "cases": rows})
    ratio = validation.ratio_check(results)
    if args.json:
        emit_json(document("validate", {"data": args.data}, sets=doc, h200_h100_ratio=ratio))
        return 0
    for entry in doc:
        print(f"\n{entry['data']}  ({entry['env']['device']}, torch {entry['env']['torch']}, preset {entry['device']})")
        print(table(entry["summary"], [
            ("phase", "phase", "<"), ("cases", "cases", ">"),
            ("hwsim MAPE", lambda r: f"{r['hwsim_mape']:.1f}%", ">"), ("hwsim max", lambda r: f"{r['hwsim_max']:.0f}%", ">"),
            ("roofline MAPE", lambda r: f"{r['roofline_mape']:.1f}%", ">"),
            ("roofline max", lambda r: f"{r['roofline_max']:.0f}%", ">")]))
        if args.cases:
            print(table(validation.priced(entry["cases"]), [
                ("model", "model", "<"), ("phase", "phase", "<"), ("batch", "batch", ">"), ("seq", "seq_len", ">"),
                ("measured ms", lambda r: f"{r['measured_s'] * 1e3:.2f}", ">"),
                ("hwsim ms", lambda r: f"{r['hwsim_s'] * 1e3:.2f}", ">"), ("err", lambda r: f"{100 * r['hwsim_err']:+.1f}%", ">"),
                ("roofline ms", lambda r: f"{r['roofline_s'] * 1e3:.2f}", ">"),
                ("err", lambda r: f"{100 * r['roofline_err']:+.1f}%", ">")]))
    if ratio:
        print(f"\nH200/H100 latency ratio over {ratio['cases']} cases measured on both: predicted vs measured "
              f"error {ratio['ratio_err_mean_pct']:.1f}% mean, {ratio['ratio_err_max_pct']:.1f}% max")
    return 0
