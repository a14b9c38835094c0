"""hwsim against measured Hugging Face generate() (issue 18): per-case errors of `--impl hf` with each profile.

Data: benchmarks/gpu/data/*-hf-generate/generate.csv (benchmarks/gpu/measure_hf_generate.py; one row per
model x batch x prompt; every step's duration in steps.jsonl). For each case hwsim predicts, on the GPU named in the
folder's env.json and its lent-host preset (or --host FILE, e.g. a `hwsim probe-host` file of that machine):
  forward   the plain prefill forward (CUDA events from the first issue to the last kernel): `eager-launch`
  prefill   generate()'s first step (prefill + sampling + stopping check): `hf-generate`, prefill
  tpot      the median decode step (context = prompt + new_tokens / 2): `hf-generate`, decode
  power     mean NVML power over the decode steps: `hf-generate` decode average power
`eager` (GPU time alone) is printed beside, as the floor a host-blind model gives.
The decode steps of one case can run in two regimes (see the data folder's README); `--steps first3|rest|all`
picks which steps' median is the measured TPOT (default all: what generate.csv's tpot_median_s holds).

usage: python3 benchmarks/host/hf_generate_accuracy.py [--data FOLDER] [--host FILE] [--steps all|first3|rest]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from sim import api  # noqa: E402

DATA = os.path.join(ROOT, "benchmarks", "gpu", "data")
PRESET = {"H200": ("h200", "h200-lent-host"), "H100": ("h100", "h100-lent-host")}


def folders():
    return sorted(os.path.join(DATA, d) for d in os.listdir(DATA) if d.endswith("-hf-generate"))


def measured(folder, steps_mode):
    df = pd.read_csv(os.path.join(folder, "generate.csv"))
    df = df[df.status == "ok"].copy()
    if steps_mode != "all":
        per = {}
        for line in open(os.path.join(folder, "steps.jsonl")):
            d = json.loads(line)
            dec = d["steps_s"][1:]
            part = dec[:3] if steps_mode == "first3" else dec[3:]
            per[(d["config"], d["batch"], d["prompt"])] = statistics.median(part)
        df["tpot_median_s"] = [per[(c, b, p)] for c, b, p in zip(df.config, df.batch, df.prompt)]
    return df


def predict_row(r, device, host):
    model = r.config.removesuffix(".json")
    kw = dict(impl="hf", host=host)
    if int(r.layers) != _layers(model):
        kw["layers"] = int(r.layers)
    ctx = int(r.prompt) + int(r.new_tokens) // 2
    out = {}
    out["forward_s"] = api.predict(model, device, "prefill", int(r.batch), int(r.prompt), profile="eager-launch",
                                   **kw).latency_s
    out["prefill_s"] = api.predict(model, device, "prefill", int(r.batch), int(r.prompt), profile="hf-generate",
                                   **kw).latency_s
    d = api.predict(model, device, "decode", int(r.batch), ctx, profile="hf-generate", **kw)
    out["tpot_s"], out["power_w"] = d.latency_s, d.avg_power_w
    out["tpot_gpu_s"] = api.predict(model, device, "decode", int(r.batch), ctx, profile="eager", **kw).latency_s
    out["forward_gpu_s"] = api.predict(model, device, "prefill", int(r.batch), int(r.prompt), profile="eager",
                                       **kw).latency_s
    return out


def _layers(model):
    from workloads import load_spec
    spec = load_spec(model, "hf")
    return next(getattr(spec, a) for a in ("n_layers", "num_layers", "layers") if hasattr(spec, a))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", help="a *-hf-generate folder (default: all of them)")
    ap.add_argument("--host", help="host preset or `hwsim probe-host` file (default: the GPU's lent-host preset)")
    ap.add_argument("--steps", choices=("all", "first3", "rest"), default="all")
    ap.add_argument("--csv", help="also write the per-case table here")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    tables = []
    for folder in args.data or folders():
        env = json.load(open(os.path.join(folder, "env.json")))
        device, host = next(v for k, v in PRESET.items() if k in env["gpu"])
        host = args.host or host
        df = measured(folder, args.steps)
        rows = []
        for r in df.itertuples():
            p = predict_row(r, device, host)
            rows.append({"data": os.path.basename(folder), "model": r.config.removesuffix(".json"), "batch": r.batch,
                         "prompt": r.prompt,
                         "forward_ms": r.prefill_forward_s * 1e3, "forward_err": p["forward_s"] / r.prefill_forward_s - 1,
                         "forward_gpu_err": p["forward_gpu_s"] / r.prefill_forward_s - 1,
                         "prefill_ms": r.prefill_step_s * 1e3, "prefill_err": p["prefill_s"] / r.prefill_step_s - 1,
                         "tpot_ms": r.tpot_median_s * 1e3, "tpot_err": p["tpot_s"] / r.tpot_median_s - 1,
                         "tpot_gpu_err": p["tpot_gpu_s"] / r.tpot_median_s - 1,
                         "power_w": r.decode_power_w, "power_err": p["power_w"] / r.decode_power_w - 1})
        t = pd.DataFrame(rows)
        tables.append(t)
        print(f"\n{os.path.basename(folder)}: {env['gpu']}, transformers {env['transformers']}, torch {env['torch']}, "
              f"host model {host}, measured TPOT = median of {args.steps} decode steps")
        with pd.option_context("display.width", 200, "display.max_rows", 200):
            show = t.drop(columns=["data"]).copy()
            for c in show.columns:
                if c.endswith("_err"):
                    show[c] = (show[c] * 100).map("{:+.0f}%".format)
            print(show.round(1).to_string(index=False))
        for label, sel in (("dense", ~t.model.str.contains("moe|mixtral|deepseek")),
                           ("MoE", t.model.str.contains("moe|mixtral|deepseek"))):
            s = t[sel]
            if len(s):
                print(f"  {label:5s} n={len(s):2d}  MAPE forward {s.forward_err.abs().mean():.0%} "
                      f"(GPU time alone {s.forward_gpu_err.abs().mean():.0%}), prefill step {s.prefill_err.abs().mean():.0%}, "
                      f"TPOT {s.tpot_err.abs().mean():.0%} (GPU time alone {s.tpot_gpu_err.abs().mean():.0%}), "
                      f"decode power {s.power_err.abs().mean():.0%}")
    if args.csv:
        pd.concat(tables).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
