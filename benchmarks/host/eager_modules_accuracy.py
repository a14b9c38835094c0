"""hwsim's own modules run eagerly (no CUDA graph) against `predict --profile eager-launch` (issue 18).

The profile folders of benchmarks/gpu/prefill_clock_probe.py hold, in runs.csv, back-to-back eager forwards of
hwsim's own modules (`impl` hwsim) beside HF's; this prints each hwsim row's measured step time, the prediction
from a host file (the lease's own probe) and the relative error, and the MAPE of the MoE and dense rows. These runs
were taken under NVML sampling and ran slower than quiet forwards (the folder's README), so they show a direction,
not an acceptance figure.

usage: python3 benchmarks/host/eager_modules_accuracy.py [--data FOLDER] [--host FILE] [--device h100]
(default: h100-2026-12-06-lease11-moe-prefill-profile with lease11's own host-before.yaml)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import pandas as pd  # noqa: E402

from sim import api  # noqa: E402

DATA = os.path.join(ROOT, "benchmarks", "gpu", "data")
DEFAULT_DATA = "h100-2026-12-06-lease11-moe-prefill-profile"
DEFAULT_HOST = os.path.join(DATA, "h100-2026-12-06-lease11-hf-generate", "host-before.yaml")
MOE = ("deepseek", "qwen1.5-moe", "mixtral")


def rows(folder: str, host: str, device: str) -> pd.DataFrame:
    runs = pd.read_csv(os.path.join(folder, "runs.csv"))
    runs = runs[runs["impl"] == "hwsim"]
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in runs.itertuples():
            pred = api.predict(r.config, device, phase="prefill", batch=int(r.batch), seq_len=int(r.prompt),
                               profile="eager-launch", host=host).latency_s
            out.append(dict(config=r.config, batch=r.batch, prompt=r.prompt, measured_ms=r.step_s * 1e3,
                            predicted_ms=pred * 1e3, error=pred / r.step_s - 1))
    return pd.DataFrame(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help="a profile folder (name under benchmarks/gpu/data or path)")
    ap.add_argument("--host", default=DEFAULT_HOST, help="host file or preset name the prediction takes")
    ap.add_argument("--device", default="h100")
    args = ap.parse_args(argv)
    folder = args.data if os.path.isdir(args.data) else os.path.join(DATA, args.data)
    if not os.path.isfile(os.path.join(folder, "runs.csv")):
        print(f"no runs.csv in {folder}; pass --data a prefill_clock_probe.py output folder", file=sys.stderr)
        return 2
    t = rows(folder, args.host, args.device)
    print(t.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    moe = t["config"].str.startswith(MOE)
    for name, part in (("MoE", t[moe]), ("dense", t[~moe])):
        if len(part):
            print(f"{name:5s} n={len(part)}  MAPE {100 * statistics.mean(part['error'].abs()):.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
