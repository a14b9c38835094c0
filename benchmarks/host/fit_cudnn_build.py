"""The host time of torch's cuDNN SDPA graph build at a new attention shape (hw_models/host.py `cudnn_new_shape`),
measured from HF generate() steps without a profiler.

A fresh process's decode steps beyond the lengths its warm-up ran build one cuDNN graph per new shape (KV length):
those steps run slower than the case's first three decode steps (lengths the warm-up ran) by the build's host time,
one build per distinct cuDNN shape in the step (hf_generate_accuracy.cudnn_shapes). Per first-pass case
(hf_generate_accuracy.first_passes, the process order replayed): (median of decode steps 5-64 - median of steps
1-3) / shapes per step. The value is the median over one data set's calibration architectures
(hf_generate_accuracy.CALIBRATION); the other architectures and the other leases are printed beside it, held out.

Result (eighth session): lease5's calibration architectures give 34.3 ms per build (10 cases, 33.5-35.0); its
held-out architectures 33.8 ms; the other quiet leases 30.5-35.3 ms (medians), the intermittently slow ones 40-51 ms. The earlier 43.6 ms came from one profiled
first pass on lease8 (the profiler's own overhead inside it).

usage: python3 benchmarks/host/fit_cudnn_build.py [--data FOLDER] [--all]
(default: the fifth session's lease5 set; --all prints every *-hf-generate folder). Put transformers 5.17.0 first on
PYTHONPATH for the 2026-12-06 data (hf_generate_accuracy.py says why).
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

import hf_generate_accuracy as acc  # noqa: E402

DATA = os.path.join(acc.DATA, "h100-2026-12-06-lease5-hf-generate")


def build_ms(first3, later, shapes: int) -> float:
    """One build's host time, ms: the later steps' median over the first three's, per shape built each step."""
    return (statistics.median(later) - statistics.median(first3)) * 1e3 / max(shapes, 1)


def builds(folder: str) -> list:
    """[(model, batch, prompt, ms per build)] of `folder`'s first-pass cases."""
    df = acc.measured(folder, "all")
    steps = {}
    for line in open(os.path.join(folder, "steps.jsonl")):
        d = json.loads(line)
        steps[(d["config"], d["batch"], d["prompt"])] = d["steps_s"][1:]
    out = []
    for r, first in zip(df.itertuples(), acc.first_passes(df, folder)):
        s = steps[(r.config, r.batch, r.prompt)]
        if not first or len(s) < 8:
            continue
        shapes = len(acc.cudnn_shapes(r, int(r.prompt) + int(r.new_tokens) // 2))
        out.append((r.config.removesuffix(".json"), int(r.batch), int(r.prompt), build_ms(s[:3], s[4:], shapes)))
    return out


def summary(rows) -> str:
    if not rows:
        return "no first-pass cases"
    v = [x[3] for x in rows]
    return f"n={len(v):2d} median {statistics.median(v):5.1f} ms (range {min(v):.1f}-{max(v):.1f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--all", action="store_true")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if not os.path.isfile(os.path.join(args.data, "steps.jsonl")):
        print(f"fit_cudnn_build: {args.data} has no steps.jsonl; name a *-hf-generate data folder", file=sys.stderr)
        return 2
    rows = builds(args.data)
    cal = [x for x in rows if x[0] in acc.CALIBRATION]
    print(f"{os.path.basename(args.data)}: calibration {summary(cal)}; held out "
          f"{summary([x for x in rows if x[0] not in acc.CALIBRATION])}")
    if cal:
        print(f"cudnn_new_shape = {statistics.median(x[3] for x in cal) * 1e3:.0f} us")
    if args.all:
        for f in acc.folders():
            if os.path.abspath(f) != os.path.abspath(args.data) and f.startswith(acc.DATA) and "h100" in f:
                print(f"  {os.path.basename(f)}: {summary(builds(f))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
