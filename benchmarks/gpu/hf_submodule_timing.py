"""Host-side time of each submodule of an HF decoder layer during decode steps, from forward pre/post hooks
(perf_counter; no synchronisation, so while the host runs ahead of the GPU these are the host's Python + dispatch
time per submodule). Decode steps as generate() runs them (MoE experts switched to batched_mm,
hf_prefill_profile.decode_experts); shapes 1x128 and 8x2048; 20 timed steps after 5 warm ones. Keys: `0.` the
first layer (its attention carries the step's one-off work), `L.` the median over the other layers.

Why: hwsim's host model under-predicts deepseek-v2-lite's and qwen1.5-moe's HF decode steps; this says which
submodule holds the missing host time.

usage: python3 benchmarks/gpu/hf_submodule_timing.py deepseek-v2-lite,qwen1.5-moe-a2.7b,llama-3.1-8b  (CUDA,
transformers; configs from workloads/zoo; one line per model and shape)
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure_hf_generate as hfgen  # noqa: E402
from hf_prefill_profile import decode_experts  # noqa: E402

SUBMODULES = ["", "self_attn", "mlp", "mlp.gate", "mlp.experts", "mlp.shared_experts", "input_layernorm",
              "self_attn.o_proj"]


def main(names: str) -> None:
    hfgen.DEVICE = "cuda"
    for name in names.split(","):
        model, _ = hfgen.build(f"workloads/zoo/{name}.json")
        times, start = {}, {}

        def hooks(key):
            def pre(module, args):
                start[key] = time.perf_counter_ns()

            def post(module, args, out):
                times.setdefault(key, []).append((time.perf_counter_ns() - start[key]) / 1e3)
            return pre, post

        for i, layer in enumerate(model.model.layers):
            for sub in SUBMODULES:
                try:
                    module = layer.get_submodule(sub) if sub else layer
                except AttributeError:
                    continue
                pre, post = hooks(("0." if i == 0 else "L.") + sub)
                module.register_forward_pre_hook(pre)
                module.register_forward_hook(post)
        for batch, prompt in [(1, 128), (8, 2048)]:
            ids = torch.randint(3, 1000, (batch, prompt), device="cuda")
            mask = torch.ones_like(ids)
            with torch.no_grad():
                cache = model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1).past_key_values
            restore = decode_experts(model)
            nxt = torch.randint(3, 1000, (batch, 1), device="cuda")
            wall = []
            for it in range(25):
                if it == 5:
                    times.clear()
                torch.cuda.synchronize()
                t = time.perf_counter()
                with torch.no_grad():
                    mask = torch.cat([mask, torch.ones_like(nxt)], -1)
                    model(nxt, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
                torch.cuda.synchronize()
                wall.append(time.perf_counter() - t)
            restore()
            print(name, batch, prompt, "wall_ms", round(statistics.median(wall[5:]) * 1e3, 2),
                  {k: round(statistics.median(v), 1) for k, v in sorted(times.items())}, flush=True)
        del model, cache
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
