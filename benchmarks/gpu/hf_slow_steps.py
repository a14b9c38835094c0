"""Why do some models' HF generate() decode steps slow down from the 4th step on? (issue 18 ground truth)

On the lent H100 (2026-12-06) `measure_hf_generate.py`, reading NVML (energy counter and SM clock) at every step
boundary, saw llama/qwen/gemma/deepseek decode steps go from ~22 ms (steps 1-3) to ~53 ms (step 4 on), a fixed
~31 ms per step, while mistral-7b, mixtral, falcon and qwen1.5-1.8b stayed flat. This script separates the
suspects on one model pair: per-step NVML reads on/off, a longer warm-up, and a torch-profiler pass over a few
steps after the 4th (host-side ops by self CPU time, GPU kernel time), so the slow step's extra time is named.

usage: python3 benchmarks/gpu/hf_slow_steps.py --out DIR --configs A.json,B.json [--batch 1 --prompt 512]
Writes DIR/slow_steps.jsonl (one row per model and variant) and DIR/profile-MODEL.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure_hf_generate as M  # noqa: E402


def run(model, config, batch, prompt, new_tokens, nvml, nvml_every_step, warm_tokens, profile_path=None, cudnn=True):
    import torch
    import transformers
    torch.backends.cuda.enable_cudnn_sdp(cudnn)
    ids = torch.randint(3, 1000, (batch, prompt), device="cuda")
    mask = torch.ones_like(ids)
    stamps = []

    class Stamp(transformers.StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            torch.cuda.synchronize()
            stamps.append(time.perf_counter())
            if nvml is not None and nvml_every_step:
                nvml.energy_j(), nvml.sm_mhz()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    crit = transformers.StoppingCriteriaList([Stamp()])
    kw = dict(attention_mask=mask, do_sample=False, pad_token_id=0, stopping_criteria=crit)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=warm_tokens, min_new_tokens=warm_tokens, **kw)
        torch.cuda.synchronize()
        stamps.clear()
        start = time.perf_counter()
        if profile_path:
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
                torch.cuda.synchronize()
            with open(profile_path, "w") as f:
                f.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
                f.write("\n")
                f.write(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=15))
        else:
            model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
            torch.cuda.synchronize()
    steps = [stamps[0] - start] + [b - a for a, b in zip(stamps, stamps[1:])]
    dec = steps[1:]
    return {"first3_ms": 1e3 * statistics.median(dec[:3]), "rest_ms": 1e3 * statistics.median(dec[4:]),
            "steps_ms": [round(1e3 * s, 2) for s in steps]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--first-pass", action="store_true",
                    help="only first passes (KV lengths the process has not run), each at its own prompt length: "
                         "default SDPA backends, cuDNN SDPA off, and a profiled first pass")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    nvml = M.NVML()
    with open(os.path.join(args.out, "slow_steps.jsonl"), "w") as f:
        for path in args.configs.split(","):
            model, config = M.build(path)
            name = os.path.basename(path).removesuffix(".json")
            P = args.prompt
            variants = [("nvml-every-step", True, 4, None, P, True), ("no-nvml", False, 4, None, P, True),
                        ("no-nvml-warm64", False, 64, None, P, True), ("nvml-every-step-again", True, 4, None, P, True),
                        ("profiled-no-nvml", False, 4, os.path.join(args.out, f"profile-{name}.txt"), P, True)]
            if args.first_pass:   # each variant at a prompt length (so KV lengths) no earlier variant ran
                variants = [("first-pass", False, 4, None, P, True), ("first-pass-no-cudnn", False, 4, None, P + 100, False),
                            ("first-pass-again", False, 4, None, P + 200, True),
                            ("profiled-first-pass", False, 4, os.path.join(args.out, f"profile-first-{name}.txt"),
                             P + 300, True)]
            for variant, every, warm, prof, prompt, cudnn in variants:
                r = run(model, config, args.batch, prompt, 16 if prof else 40, nvml, every, warm, prof, cudnn)
                row = {"config": name, "batch": args.batch, "prompt": prompt, "variant": variant, **r}
                print({k: v for k, v in row.items() if k != "steps_ms"}, flush=True)
                f.write(json.dumps(row) + "\n")
                f.flush()
            del model
            import torch
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
