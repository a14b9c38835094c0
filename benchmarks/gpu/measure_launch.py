"""Host launch cost of eager PyTorch, and one TP8 shard of a 70B model on a single GPU (run on a real GPU).

Two questions the published TP8 references raise (docs/tp8-h100-70b-references.md):
- How long does one GPU take for its shard of a Llama-2-70B TP8 step, without the all-reduces? The shard is
  the same model with 1/8 of the heads, KV heads, FFN width and vocabulary (head_dim kept), which is exactly
  the per-GPU GEMM and attention shapes of Megatron-style tensor parallelism.
- What does launching every kernel from the host cost (no CUDA graph)? Each case is timed twice: as CUDA
  graph replays and as plain eager calls, and the CUDA kernels one call launches are counted with
  torch.profiler. (eager - graph) / kernels bounds the host cost per kernel when the host is the bottleneck.

Writes launch.csv: model, phase, batch, seq_len, graph_s, eager_s, kernels.
usage: PYTHONPATH=. python3 benchmarks/gpu/measure_launch.py --out DIR
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(__file__))
from measure import Writer, _model, environment, step_runner, timed  # noqa: E402

from workloads.modules import Step  # noqa: E402

CASES = [("decode", 1, 512), ("decode", 8, 512), ("decode", 32, 512), ("decode", 64, 512),
         ("prefill", 1, 128), ("prefill", 1, 512), ("prefill", 1, 2048)]


def shard_config(name: str, tp: int) -> str:
    zoo = os.path.join(os.path.dirname(__file__), "..", "..", "workloads", "zoo", f"{name}.json")
    with open(zoo) as f:
        cfg = json.load(f)
    heads = cfg["num_attention_heads"]
    cfg.update(num_attention_heads=heads // tp, num_key_value_heads=max(1, cfg["num_key_value_heads"] // tp),
               head_dim=cfg["hidden_size"] // heads, intermediate_size=cfg["intermediate_size"] // tp,
               vocab_size=cfg["vocab_size"] // tp, _hwsim_name=f"{name}-tp{tp}-shard",
               # a shape study, not a trained model: allow the 8192-token prompts Llama-3-70B (same shapes) takes
               max_position_embeddings=max(cfg.get("max_position_embeddings", 0), 8192))
    path = os.path.join(tempfile.mkdtemp(), f"{name}-tp{tp}-shard.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def kernels_launched(fn) -> int:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", default="llama-2-70b:8,llama-3.1-8b:1", help="name:tp pairs")
    parser.add_argument("--cases", help="phase:batch:seq_len list (default: the built-in cases)")
    parser.add_argument("--csv", default="launch.csv", help="output file name under --out")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    environment(args.out)
    cases = [(p, int(b), int(s)) for p, b, s in (c.split(":") for c in args.cases.split(","))] if args.cases else CASES
    w = Writer(args.out, args.csv, ["model", "phase", "batch", "seq_len", "graph_s", "eager_s", "kernels"])
    for item in args.models.split(","):
        name, tp = item.split(":")
        path = shard_config(name, int(tp)) if int(tp) > 1 else name
        _, model = _model(path)
        label = name if int(tp) == 1 else f"{name}/tp{tp}"
        for phase, b, s in cases:
            step = Step(phase, b, s, 0) if phase == "prefill" else Step(phase, b, 1, s)
            fn = step_runner(model, step)
            g, _, _ = timed(fn, min_time=0.5)
            e, _, _ = timed(fn, min_time=0.5, graph=False)
            k = kernels_launched(fn)
            w.row(model=label, phase=phase, batch=b, seq_len=s, graph_s=f"{g:.4e}", eager_s=f"{e:.4e}", kernels=k)
            print(f"  {label} {phase} b={b} s={s}: graph {g * 1e3:.2f} ms, eager {e * 1e3:.2f} ms, {k} kernels",
                  flush=True)
            torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
