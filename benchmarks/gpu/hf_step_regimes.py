"""Why do HF generate() decode steps run in two regimes (issue 18)?

measure_hf_generate.py on an H200 (2026-12-06) saw decode steps of one case at ~22 ms for the first three steps
and ~55 ms from the fourth on (llama-3.1-8b, qwen2.5-7b, phi-3-mini at 1x512), while other cases (mistral-7b,
falcon-7b, phi-3-mini at 1x2048) stayed at ~22 ms throughout. This script separates the suspects on one machine:
  sampler   the 5 ms NVML power/clock sampling thread on or off
  gc        Python's garbage collector on or off
  sync      per-step timestamps (a StoppingCriteria that synchronizes) vs whole-call timing with no per-step sync:
            (T(64 new tokens) - T(4 new tokens)) / 60
  repeat    the same generate() twice in a row (is the slow regime step-indexed or time-indexed?)
Writes OUT/regimes.jsonl (one line per run: variant, per-step seconds or whole-call seconds).
usage: python3 benchmarks/gpu/hf_step_regimes.py --out DIR --configs a.json,b.json [--batch 1 --prompt 512]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure_hf_generate as m   # noqa: E402


def run(model, ids, mask, new, criteria):
    import torch
    with torch.no_grad():
        m.sync()
        t = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                       pad_token_id=0, stopping_criteria=criteria)
        m.sync()
        return time.perf_counter() - t


def main() -> int:
    import torch
    import transformers
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--variants", default="timing,nosync,profiled",
                    help="which parts to run: timing (sampler/plain/nogc runs), nosync, profiled")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    nvml = m.NVML()
    out = open(os.path.join(args.out, "regimes.jsonl"), "a")
    parts = set(args.variants.split(","))
    for item in args.configs.split(","):
        path, _, layers = item.partition(":")
        model, config = m.build(path, int(layers) if layers else None)
        vocab = config.vocab_size
        ids = torch.randint(3, vocab - 1, (args.batch, args.prompt), device=m.DEVICE)
        mask = torch.ones_like(ids)
        stamps = []

        class Stamp(transformers.StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                m.sync()
                stamps.append(time.perf_counter())
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        crit = transformers.StoppingCriteriaList([Stamp()])
        run(model, ids, mask, 4, crit)                       # warm-up, as measure_hf_generate does
        sampler = None

        def record(variant, **extra):
            steps = [b - a for a, b in zip(stamps, stamps[1:])]
            row = {"config": os.path.basename(path), "variant": variant, "batch": args.batch, "prompt": args.prompt,
                   "steps_ms": [round(s * 1e3, 2) for s in steps], **extra}
            if steps:
                row["median_first3_ms"] = round(statistics.median(steps[:3]) * 1e3, 2)
                row["median_rest_ms"] = round(statistics.median(steps[3:]) * 1e3, 2)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(row["config"], variant, row.get("median_first3_ms"), row.get("median_rest_ms"), extra, flush=True)

        for variant in ("sampler", "plain", "plain-again", "nogc", "sampler-again") if "timing" in parts else ():
            if variant.startswith("sampler"):
                sampler = m.Sampler(nvml)
                sampler.start()
            if variant == "nogc":
                gc.disable()
            stamps.clear()
            e0 = nvml.energy_j()
            total = run(model, ids, mask, args.new_tokens, crit)
            e1 = nvml.energy_j()
            extra = {"call_power_w": round((e1 - e0) / total, 1)} if e0 is not None and e1 is not None else {}
            if sampler:
                p, c = sampler.mean(stamps[0], stamps[-1])
                extra.update(decode_power_w=p and round(p, 1), decode_sm_mhz=c)
                sampler.stop.set()
                sampler.join()
                sampler = None
            gc.enable()
            record(variant, total_s=round(total, 4), **extra)
        t4 = [run(model, ids, mask, 4, None) for _ in range(3)] if "nosync" in parts else [0]
        t64 = [run(model, ids, mask, args.new_tokens, None) for _ in range(2)] if "nosync" in parts else [0]
        stamps.clear()
        if "nosync" in parts:
            record("nosync", tpot_ms=round((min(t64) - min(t4)) / (args.new_tokens - 4) * 1e3, 2),
                   t4_s=[round(x, 4) for x in t4], t64_s=[round(x, 4) for x in t64])
        # GPU time per decode step: kernels of a 16-token generate() under the torch profiler, minus a 1-token one
        from torch.profiler import ProfilerActivity, profile
        busy = {}
        for new in (1, 16) if "profiled" in parts else ():
            gpu = m.DEVICE == "cuda"
            with profile(activities=[ProfilerActivity.CUDA if gpu else ProfilerActivity.CPU]) as prof:
                run(model, ids, mask, new, None)
            kind = torch.autograd.DeviceType.CUDA if gpu else torch.autograd.DeviceType.CPU
            ev = [e for e in prof.events() if e.device_type == kind and (gpu or e.name.startswith("aten::mm"))]
            busy[new] = (sum(e.device_time for e in ev) / 1e3, len(ev))       # ms, kernels
            if new == 1:                   # the prefill step's kernels by total time: which ones the model misses
                by = {}
                for e in ev:
                    n, t = by.get(e.name, (0, 0.0))
                    by[e.name] = (n + 1, t + e.device_time / 1e3)
                top = sorted(by.items(), key=lambda kv: -kv[1][1])[:12]
        if "profiled" in parts:
            record("profiled", gpu_ms_per_decode_step=round((busy[16][0] - busy[1][0]) / 15, 3),
                   kernels_per_decode_step=round((busy[16][1] - busy[1][1]) / 15, 1),
                   gpu_ms_prefill_step=round(busy[1][0], 3), kernels_prefill_step=busy[1][1],
                   top_prefill_kernels=[[k[:120], n, round(t, 3)] for k, (n, t) in top])
        del model
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
