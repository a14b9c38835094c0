"""How fast the host ran during each HF generate() case, from the sidecar, and hwsim's TPOT with that (issue 18).

`measure_hf_generate.py --sidecar` samples the machine's Python-call and torch-CPU-op times every 0.1 s in a second
process (benchmarks/gpu/host_sidecar.py) and writes when each probe and each case's decode ran (windows.jsonl).
Here, per case: the sidecar's median torch-op time over the case's decode steps over its median during the
`hwsim probe-host` run before the cases (`slowdown`; the py-call reading beside it). hwsim predicts the case's
TPOT from that probe file as it is and with the host slowed by `slowdown` (HostSpec.with_speed(1 / slowdown)):
nothing is fitted, the sidecar is a reading of the host taken during the run, as the probe is one taken before it.
Which reading scales the host (the torch op) was chosen before any sidecar data existed.

usage: python3 benchmarks/host/sidecar_speed.py --data FOLDER [--reference before|after] [--csv FILE]
(transformers 5.17.0 first on PYTHONPATH, as hf_generate_accuracy.py says)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pandas as pd  # noqa: E402

import hf_generate_accuracy as acc  # noqa: E402


def windows(folder: str) -> list:
    with open(os.path.join(folder, "windows.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def readings(samples: pd.DataFrame, t0: float, t1: float) -> tuple:
    """(median torch-op ns, median py-call ns, samples) of the sidecar between t0 and t1."""
    s = samples[(samples.wall_time >= t0) & (samples.wall_time <= t1)]
    if s.empty:
        return None, None, 0
    op = s.torch_op_ns.dropna()
    return (float(op.median()) if len(op) else None), float(s.py_call_ns.median()), len(s)


def case_speeds(folder: str, reference: str = "before") -> pd.DataFrame:
    """Per measured case: the sidecar's readings during its decode against those during the reference probe."""
    samples = pd.read_csv(os.path.join(folder, "sidecar.csv"))
    win = windows(folder)
    ref = next((w for w in win if w["what"] == f"probe-{reference}"), None)
    if ref is None:
        raise ValueError(f"{folder}: no probe-{reference} window in windows.jsonl")
    ref_op, ref_py, n_ref = readings(samples, ref["t0"], ref["t1"])
    if not n_ref:
        raise ValueError(f"{folder}: the sidecar has no samples during probe-{reference}")
    rows = []
    for w in win:
        if w["what"] != "decode":
            continue
        op, py, n = readings(samples, w["t0"], w["t1"])
        rows.append({"config": w["config"], "batch": int(w["batch"]), "prompt": int(w["prompt"]), "samples": n,
                     "slowdown": op / ref_op if op and ref_op else None,
                     "py_slowdown": py / ref_py if py and ref_py else None})
    return pd.DataFrame(rows)


def tpot_rows(folder: str, host_file: str, speeds: pd.DataFrame, device: str) -> pd.DataFrame:
    """Measured TPOT (first three decode steps) against hwsim's from the probe file, as is and scaled per case."""
    from hw_models.host import load_host
    from sim import api
    host = load_host(host_file)
    by_case = {(r.config, r.batch, r.prompt): r for r in speeds.itertuples()}
    rows = []
    for r in acc.measured(folder, "first3").itertuples():
        model = r.config.removesuffix(".json")
        sp = by_case.get((r.config, int(r.batch), int(r.prompt)))
        kw = dict(impl="hf", **acc._drop(r, model))
        ctx = int(r.prompt) + int(r.new_tokens) // 2
        plain = api.predict(model, device, "decode", int(r.batch), ctx, profile="hf-generate", host=host,
                            **kw).latency_s
        slow = sp.slowdown if sp is not None and sp.slowdown else None
        scaled = (api.predict(model, device, "decode", int(r.batch), ctx, profile="hf-generate",
                              host=host.with_speed(1.0 / slow), **kw).latency_s if slow else None)
        rows.append({"model": model, "batch": int(r.batch), "prompt": int(r.prompt),
                     "set": "calibration" if model in acc.CALIBRATION else "held-out",
                     "measured_ms": r.tpot_median_s * 1e3, "slowdown": slow,
                     "py_slowdown": sp.py_slowdown if sp is not None else None,
                     "err_probe": plain / r.tpot_median_s - 1,
                     "err_sidecar": scaled / r.tpot_median_s - 1 if scaled else None})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a measure_hf_generate.py --sidecar folder")
    ap.add_argument("--reference", choices=("before", "after"), default="before",
                    help="the probe the sidecar's readings are taken against, and whose host file predicts")
    ap.add_argument("--csv")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    folder = args.data if os.path.isdir(args.data) else os.path.join(acc.DATA, args.data)
    need = ("generate.csv", "sidecar.csv", "windows.jsonl", f"host-{args.reference}.yaml")
    missing = [n for n in need if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        print(f"sidecar_speed: {folder} lacks {', '.join(missing)}; name a folder measured with "
              f"measure_hf_generate.py --sidecar", file=sys.stderr)
        return 2
    device = "h200" if "H200" in open(os.path.join(folder, "env.json")).read() else "h100"
    try:
        speeds = case_speeds(folder, args.reference)
    except ValueError as exc:
        print(f"sidecar_speed: {exc}", file=sys.stderr)
        return 2
    t = tpot_rows(folder, os.path.join(folder, f"host-{args.reference}.yaml"), speeds, device)
    print(f"{os.path.basename(folder)}: TPOT (first three decode steps) from host-{args.reference}.yaml, as probed "
          f"and slowed per case by the sidecar's torch-op time against its reading during that probe")
    fmt = {c: (lambda v: f"{v:.2f}") for c in ("measured_ms", "slowdown", "py_slowdown")}
    fmt.update({c: (lambda v: f"{v:+.1%}") for c in ("err_probe", "err_sidecar")})
    print(t.to_string(index=False, formatters=fmt))
    both = t.dropna(subset=["slowdown"])
    if len(both) > 2:
        r = both.slowdown.corr(1.0 / (1.0 + both.err_probe))
        print(f"  correlation of the sidecar's slowdown with the case's own (measured over predicted from the probe): "
              f"{r:+.2f} over {len(both)} cases")
    for label, s in acc.by_set(t):
        sc = s.err_sidecar.dropna()
        print(f"  {label:11s} n={len(s):2d}  TPOT MAPE from the probe {s.err_probe.abs().mean():.1%}, with the "
              f"sidecar {sc.abs().mean():.1%} (n={len(sc)}); slowdown median "
              f"{statistics.median(s.slowdown.dropna()) if s.slowdown.notna().any() else float('nan'):.2f}")
    if args.csv:
        t.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
