"""Issue 18's across-host test: the same HF generate() cases measured on two leases, each predicted from its own probe.

For two `*-hf-generate` data folders (two runs that may have landed on different hosts), on the cases both ran
(config x batch x prompt): the measured per-token time (median of the first three decode steps, as
hf_generate_accuracy.py --steps first3) on each, hwsim's prediction for each from that lease's own `hwsim probe-host`
file (`host-before.yaml` unless --host-a/--host-b say otherwise) with nothing refitted, and the ratio between the two
leases, predicted against measured. The acceptance asks for each lease's TPOT within 10% and the ratio within 10% of
the measured one; calibration and held-out architectures (hf_generate_accuracy.CALIBRATION) are reported apart.

usage: python3 benchmarks/host/across_hosts.py --a FOLDER --b FOLDER [--host-a FILE] [--host-b FILE] [--csv FILE]
(folder names relative to benchmarks/gpu/data/ are accepted; --host-a/--host-b take a path or a file name in
that lease's folder, e.g. host-after.yaml). Put transformers 5.17.0 first on PYTHONPATH for the
2026-12-06 data (hf_generate_accuracy.py says why).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pandas as pd  # noqa: E402

import hf_generate_accuracy as acc  # noqa: E402
from hw_models.host import load_host  # noqa: E402
from sim import api  # noqa: E402


def _folder(name: str) -> str:
    return name if os.path.isdir(name) else os.path.join(acc.DATA, name)


def _host_file(name, folder: str) -> str:
    """--host-a / --host-b: a path, or a file name inside the lease's own data folder (default host-before.yaml)."""
    name = name or "host-before.yaml"
    return name if os.path.isfile(name) else os.path.join(folder, name)


def tpot_table(folder: str, host_file: str, device: str) -> pd.DataFrame:
    """Measured (first three decode steps) and predicted TPOT per case of `folder`, from `host_file`."""
    host = load_host(host_file)
    rows = []
    for r in acc.measured(folder, "first3").itertuples():
        model = r.config.removesuffix(".json")
        kw = dict(impl="hf", host=host, **acc._drop(r, model))
        ctx = int(r.prompt) + int(r.new_tokens) // 2
        p = api.predict(model, device, "decode", int(r.batch), ctx, profile="hf-generate", **kw).latency_s
        rows.append({"model": model, "batch": int(r.batch), "prompt": int(r.prompt),
                     "measured_s": r.tpot_median_s, "predicted_s": p})
    return pd.DataFrame(rows)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The shared cases with each lease's error and the ratio a / b, measured and predicted."""
    m = a.merge(b, on=["model", "batch", "prompt"], suffixes=("_a", "_b"))
    m["err_a"] = m.predicted_s_a / m.measured_s_a - 1
    m["err_b"] = m.predicted_s_b / m.measured_s_b - 1
    m["ratio_measured"] = m.measured_s_a / m.measured_s_b
    m["ratio_predicted"] = m.predicted_s_a / m.predicted_s_b
    m["ratio_err"] = m.ratio_predicted / m.ratio_measured - 1
    m["set"] = ["calibration" if x in acc.CALIBRATION else "held-out" for x in m.model]
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--host-a")
    ap.add_argument("--host-b")
    ap.add_argument("--csv")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    fa, fb = _folder(args.a), _folder(args.b)
    for f in (fa, fb):
        if not os.path.isfile(os.path.join(f, "generate.csv")):
            print(f"across_hosts: {f} has no generate.csv; name a *-hf-generate data folder", file=sys.stderr)
            return 2
    device = {"H200": "h200", "H100": "h100"}
    gpu = [next((v for k, v in device.items() if k in open(os.path.join(f, "env.json")).read()), "h100")
           for f in (fa, fb)]
    ha, hb = _host_file(args.host_a, fa), _host_file(args.host_b, fb)
    for h in (ha, hb):
        if not os.path.isfile(h):
            print(f"across_hosts: no host file {h}; name a probe-host file or one in the data folder "
                  f"(e.g. --host-a host-after.yaml)", file=sys.stderr)
            return 2
    m = compare(tpot_table(fa, ha, gpu[0]), tpot_table(fb, hb, gpu[1]))
    print(f"a = {os.path.basename(fa)} (host {os.path.relpath(ha, fa)}), b = {os.path.basename(fb)} "
          f"(host {os.path.relpath(hb, fb)}): {len(m)} shared cases, first three decode steps")
    print(m[["model", "batch", "prompt", "measured_s_a", "measured_s_b", "err_a", "err_b", "ratio_measured",
             "ratio_predicted", "ratio_err"]].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    for name, f in (("a", fa), ("b", fb)):
        print(f"  {name}: {acc.steadiness_line(f)}")
    for label, s in acc.by_set(m):
        print(f"  {label:11s} n={len(s):2d}  TPOT MAPE a {s.err_a.abs().mean():.1%}, b {s.err_b.abs().mean():.1%}; "
              f"ratio a/b measured median {statistics.median(s.ratio_measured):.2f}, predicted median "
              f"{statistics.median(s.ratio_predicted):.2f}, ratio error MAPE {s.ratio_err.abs().mean():.1%}")
    if args.csv:
        m.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
