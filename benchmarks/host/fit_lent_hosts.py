"""Fit the launch cost of the lent H100 and H200 machines' hosts (hw_models/presets/hosts/*-lent-host.yaml).

Data: benchmarks/gpu/data/{h100-sxm,h200}-2026-11-24-launch/launch.csv: 7 eager steps of hwsim's own modules per
machine (llama-3.1-8b and a Llama-2-70B TP8 shard; decode batch 1-64 and prefill 128-2048 tokens), timed with CUDA
events from the first issue to the last kernel, without CUDA graphs (benchmarks/gpu/measure_launch.py).
Those runs measure only the sum of the host's costs, so one number is fitted per host: the cost of a kernel launch
(`launch`; a library call costs `launch` plus the difference the development machine's probe measured between a
64x64 matmul and a one-element add). Views and module calls keep the development machine's probe values
(benchmarks/host/data/dev-cpu-2core.yaml): a different x86 CPU, an estimate. The device side is hwsim's `eager`
GPU model (tests/test_predict.py checks it against the same machines' CUDA-graph runs).

usage: python3 benchmarks/host/fit_lent_hosts.py      (prints the fitted launch cost and the per-step errors)
"""
from __future__ import annotations

import csv
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks", "gpu"))

from hw_models import load_device  # noqa: E402
from hw_models.host import HostSpec, load_host  # noqa: E402
from sim.predict import predict  # noqa: E402
from workloads import trace  # noqa: E402

MACHINES = {"h100-lent-host": ("h100-sxm-80gb", "h100-sxm-2026-11-24-launch"),
            "h200-lent-host": ("h200-141gb", "h200-2026-11-24-launch")}
DEV = os.path.join(ROOT, "benchmarks", "host", "data", "dev-cpu-2core.yaml")


def cases(folder):
    from measure_launch import shard_config
    shard = shard_config("llama-2-70b", 8)
    for r in csv.DictReader(open(os.path.join(ROOT, "benchmarks", "gpu", "data", folder, "launch.csv"))):
        model = shard if r["model"].endswith("/tp8") else r["model"]
        yield r, trace(model, r["phase"], int(r["batch"]), int(r["seq_len"]))


def errors(device, graphs, dev, launch):
    costs = dict(dev.costs_us, launch=launch, library=launch + dev.costs_us["library"] - dev.costs_us["launch"])
    host = HostSpec("fit", "fit", costs)
    out = []
    for r, g in graphs:
        p = predict(g, device, "eager-launch", host=host)
        out.append((p.latency_s - float(r["eager_s"])) / float(r["eager_s"]))
    return out


def fit(name):
    preset, folder = MACHINES[name]
    device = load_device(preset)
    dev = load_host(DEV)
    graphs = list(cases(folder))
    best = None
    for tenth in range(10, 800):                     # 1.0 .. 80.0 us in 0.1 us steps
        e = errors(device, graphs, dev, tenth / 10)
        score = statistics.mean(abs(x) for x in e)
        if best is None or score < best[0]:
            best = (score, tenth / 10, e)
    score, launch, e = best
    print(f"{name}: launch {launch:.1f} us, library {launch + dev.costs_us['library'] - dev.costs_us['launch']:.1f} us "
          f"(view {dev.costs_us['view']:.2f}, module {dev.costs_us['module']:.2f} from the dev probe): "
          f"mean |error| {100 * score:.1f}%, max {100 * max(abs(x) for x in e):.1f}% over {len(e)} steps")
    for (r, _), x in zip(graphs, e):
        print(f"   {r['model']:18s} {r['phase']:8s} b={r['batch']:>3s} s={r['seq_len']:>5s}  measured "
              f"{float(r['eager_s']) * 1e3:7.2f} ms  error {100 * x:+6.1f}%")
    return launch


def main() -> int:
    for name in MACHINES:
        fit(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
