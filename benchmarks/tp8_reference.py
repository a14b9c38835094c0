"""TP8 on an 8x H100 node for a 70B model: simulated step times beside published measurements.

References (docs/tp8-h100-70b-references.md): SplitwiseSim profiling data (Llama-2-70B, fp16, TP8, DGX-H100,
medians of 5 runs; Mutinifni/splitwise-sim data/perf_model.csv @3780880) and Lambda's vLLM runs (Llama-3-70B,
bf16, TP8, 8x H100 SXM; LambdaLabsML/vllm-benchmark @a4f9f43; per-step times derived from streamed chunks).
The two stacks differ by ~2.7x at batch-1 decode (eager without CUDA graphs vs vLLM with CUDA graphs), so
each is compared with the hwsim software profile closest to it.

usage: python3 benchmarks/tp8_reference.py
"""
from __future__ import annotations

import sys

from hw_models.systems import load_system
from mapping import map_graph
from sim.engine import simulate
from workloads import trace

# (model, phase, batch, seq_len, measured seconds, source, hwsim profile)
CASES = [
    ("llama-2-70b", "prefill", 1, 512, 0.053, "SplitwiseSim", "eager"),
    ("llama-2-70b", "prefill", 1, 1024, 0.078, "SplitwiseSim", "eager"),
    ("llama-2-70b", "prefill", 1, 2048, 0.137, "SplitwiseSim", "eager"),
    ("llama-2-70b", "prefill", 1, 4096, 0.390, "SplitwiseSim", "eager"),
    ("llama-2-70b", "decode", 1, 512, 0.0298, "SplitwiseSim", "eager"),
    ("llama-2-70b", "decode", 8, 512, 0.0325, "SplitwiseSim", "eager"),
    ("llama-2-70b", "decode", 32, 512, 0.0386, "SplitwiseSim", "eager"),
    ("llama-2-70b", "decode", 64, 512, 0.0502, "SplitwiseSim", "eager"),
    ("llama-3-70b", "decode", 1, 700, 0.0112, "Lambda vLLM", "fused"),
]


def main() -> int:
    system = load_system("dgx-h100")
    print(f"{'model':12s} {'phase':8s} {'batch':>5s} {'seq':>5s} {'measured ms':>11s} {'hwsim ms':>9s} {'error':>7s}  source / profile")
    errors = {}
    for model, phase, batch, seq, measured, source, profile in CASES:
        graph = trace(model, phase, batch, seq)
        r = simulate(map_graph(graph, system, "tp:8"), system, profile)
        err = (r.latency_s - measured) / measured
        errors.setdefault(phase, []).append(abs(err))
        print(f"{model:12s} {phase:8s} {batch:5d} {seq:5d} {measured * 1e3:11.1f} {r.latency_s * 1e3:9.1f} "
              f"{100 * err:+6.1f}%  {source} / {profile}")
    for phase, errs in errors.items():
        print(f"{phase}: mean |error| {100 * sum(errs) / len(errs):.1f}%, max {100 * max(errs):.1f}% (target 15%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
