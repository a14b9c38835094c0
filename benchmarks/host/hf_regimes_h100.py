"""The H100 host against HF generate() without the sampling thread (issue 18): 3 models only, batch 1, prompt 512.

Data: benchmarks/gpu/data/h100-2026-12-06-hf-sampler-artifact/regimes.jsonl, the "plain" and "plain-again" runs
(no NVML sampling thread; transformers 5.17.0, torch 2.11): measured TPOT = the median of both runs' decode steps
(this host's run-to-run noise is about +-15%). hwsim: `--impl hf --profile hf-generate` on the h100 with
h100-lent-host as it is, and with its launch cost fitted to llama-3.1-8b and phi-3-mini (calibration) and reported
on mistral-7b (held out): two points to fit one number and one to check it, too few to call validated.
Trace with the measured transformers version (see hf_generate_accuracy.py).

usage: python3 benchmarks/host/hf_regimes_h100.py
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hf_generate_accuracy import with_launch  # noqa: E402
from hw_models.host import load_host  # noqa: E402
from sim import api  # noqa: E402

DATA = os.path.join(ROOT, "benchmarks", "gpu", "data", "h100-2026-12-06-hf-sampler-artifact", "regimes.jsonl")
CALIBRATION = ("llama-3.1-8b", "phi-3-mini")


def measured():
    steps = {}
    for line in open(DATA):
        d = json.loads(line)
        if d["variant"] in ("plain", "plain-again"):
            steps.setdefault((d["config"].removesuffix(".json"), d["batch"], d["prompt"]), []).extend(d["steps_ms"][1:])
    return {k: statistics.median(v) / 1e3 for k, v in steps.items()}


def predict(model, batch, prompt, host):
    return api.predict(model, "h100", "decode", batch, prompt + 32, profile="hf-generate", impl="hf",
                       host=host).latency_s


def main() -> int:
    warnings.simplefilter("ignore")
    cases = measured()
    preset = load_host("h100-lent-host")
    best = None
    for half in range(10, 121):
        h = with_launch(preset, half / 2)
        e = statistics.mean(abs(predict(m, b, p, h) / t - 1) for (m, b, p), t in cases.items() if m in CALIBRATION)
        if best is None or e < best[0]:
            best = (e, half / 2)
    fitted = with_launch(preset, best[1])
    print(f"h100 host, HF generate() plain runs (transformers 5.17 measured): launch fitted on {', '.join(CALIBRATION)}"
          f" = {best[1]:.1f} us (preset {preset.costs_us['launch']:.1f} us, fitted on hwsim's own eager modules)")
    for (m, b, p), t in cases.items():
        role = "calibration" if m in CALIBRATION else "held out"
        a, f = predict(m, b, p, preset), predict(m, b, p, fitted)
        print(f"  {m:14s} {b}x{p} {role:11s} measured {t * 1e3:5.1f} ms   preset {a * 1e3:5.1f} ms ({a / t - 1:+.0%})"
              f"   fitted {f * 1e3:5.1f} ms ({f / t - 1:+.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
