"""Where does a GPU-bound HF prefill forward spend its time? (issue 18: prefill forward 10-16% under-predicted)

hwsim prices the aten ops it traces from HF's own code; on the lent H100 the large GPU-bound prefill forwards
(8x2048 and up) still come out 10-16% too fast and the gap is not explained by any one op class. This script
runs the same forward as `measure_hf_generate.py` (`model(ids, attention_mask, use_cache=True, logits_to_keep=1)`,
bf16, sdpa) under the torch profiler and writes, per model and shape, the GPU time of every aten op (self CUDA
time, i.e. the kernels it launched itself) and of every kernel, so the miss can be charged to named ops locally
(`hwsim` per-op prices of the same trace are compared offline).

`--decode`: the same for one decode step instead (GPU-bound decode steps, e.g. phi-3-mini past its sliding window
and deepseek-v2-lite's MLA at 8x2048 on the H100: 31 and 39 ms measured, 27 and 34 ms of GPU time predicted): a
prefill forward of PROMPT tokens into HF's DynamicCache, three decode steps, then decode steps timed and one profiled,
each one token per sequence (`prompt` in the files is then the cached length at the first timed step; every later
step caches one more), MoE experts switched from grouped_mm to batched_mm as generate() switches them for its decode
steps (transformers' `_optimize_model_for_decode`; the 2026-12-07 lease15 set was taken before this and ran
grouped_mm). Each step at a new KV length builds a cuDNN attention graph on the host (a window-capped cache keeps
one shape).

usage: python3 benchmarks/gpu/hf_prefill_profile.py --out DIR --configs A.json[:LAYERS],B.json --shapes 8x2048,1x4096
       [--decode]
Writes DIR/ops.csv (config, batch, prompt, op, calls, self_cuda_us, phase), DIR/kernels.csv (config, batch, prompt,
kernel, calls, cuda_us, phase), DIR/forward.csv (CUDA-event time of the forward without the profiler, median of 5,
and phase). Sets written before the phase column are prefill.
`--smoke` checks the script on the CPU with a 1-layer model: its output is not data.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure_hf_generate as M  # noqa: E402


def forward_once(model, ids, mask):
    model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1)


def decode_experts(model):
    """Switch MoE experts to batched_mm for decode steps, as generate() does on a GPU (transformers'
    `_optimize_model_for_decode`); returns the function that switches them back (a no-op where nothing changed)."""
    get = getattr(model, "get_experts_implementation", None)
    if get is None or model.device.type == "cpu":
        return lambda: None
    try:
        original = get()
    except Exception:  # noqa: BLE001 - a model without experts
        return lambda: None
    if not isinstance(original, dict) or "grouped_mm" not in original.values():
        return lambda: None
    model.set_experts_implementation({k: "batched_mm" if v == "grouped_mm" else v for k, v in original.items()})
    return lambda: model.set_experts_implementation(original)


class DecodeSteps:
    """Decode steps of one sequence batch as generate() runs them: one token each, into the prefill's DynamicCache,
    MoE experts switched to batched_mm as generate() switches them (`close()` switches them back); called like
    forward_once (the ids and mask arguments are ignored: each call extends its own)."""

    def __init__(self, model, ids, mask, warm=3):
        import torch
        out = model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
        self.cache, self.mask = out.past_key_values, mask
        self.next = torch.randint(3, 1000, (ids.shape[0], 1), device=ids.device)
        self.close = decode_experts(model)
        for _ in range(warm):
            self(model, None, None)

    def __call__(self, model, ids, mask):
        import torch
        self.mask = torch.cat([self.mask, torch.ones_like(self.next)], dim=-1)
        model(self.next, attention_mask=self.mask, past_key_values=self.cache, use_cache=True, logits_to_keep=1)

    @property
    def cached(self) -> int:
        return self.mask.shape[-1]


def timed(model, ids, mask, reps=5, forward=forward_once):
    import torch
    out = []
    for _ in range(reps):
        if M.DEVICE != "cuda":
            t = time.perf_counter()
            forward(model, ids, mask)
            out.append(time.perf_counter() - t)
            continue
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        forward(model, ids, mask)
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / 1e3)
    return statistics.median(out)


def profile_rows(model, ids, mask, forward=forward_once):
    """(op rows, kernel rows): each (name, calls, microseconds) from one profiled forward."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if M.DEVICE == "cuda" else [])
    with profile(activities=acts) as prof:
        forward(model, ids, mask)
        M.sync()
    ops, kernels = {}, {}
    for ev in prof.events():
        dev = getattr(ev, "device_type", None)
        is_kernel = dev is not None and "CUDA" in str(dev)
        if is_kernel:
            k = kernels.setdefault(ev.name, [0, 0.0])
            k[0] += 1
            k[1] += ev.time_range.elapsed_us()
        elif ev.name.startswith("aten::"):
            o = ops.setdefault(ev.name, [0, 0.0])
            o[0] += 1
            self_dev = getattr(ev, "self_device_time_total", None)
            if self_dev is None:
                self_dev = getattr(ev, "self_cuda_time_total", 0.0)
            o[1] += self_dev
    return ([(n, c, us) for n, (c, us) in ops.items()], [(n, c, us) for n, (c, us) in kernels.items()])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--shapes", default="8x2048")
    ap.add_argument("--budget", type=float, default=1e9, help="seconds; no new model starts after this")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--decode", action="store_true", help="profile a decode step after PROMPT cached tokens")
    args = ap.parse_args()
    phase = "decode" if args.decode else "prefill"
    import torch
    if args.smoke or not torch.cuda.is_available():
        M.DEVICE = "cpu"
    os.makedirs(args.out, exist_ok=True)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    t0 = time.time()
    files = {n: open(os.path.join(args.out, n + ".csv"), "w", newline="") for n in ("ops", "kernels", "forward")}
    writers = {n: csv.writer(f) for n, f in files.items()}
    writers["ops"].writerow(["config", "batch", "prompt", "op", "calls", "self_cuda_us", "phase"])
    writers["kernels"].writerow(["config", "batch", "prompt", "kernel", "calls", "cuda_us", "phase"])
    writers["forward"].writerow(["config", "layers", "batch", "prompt", "forward_s", "status", "phase"])
    for spec in args.configs.split(","):
        if time.time() - t0 > args.budget:
            print("budget spent; stopping before", spec, flush=True)
            break
        path, _, layers = spec.partition(":")
        layers = 1 if args.smoke else (int(layers) if layers else None)
        name = os.path.basename(path).removesuffix(".json")
        try:
            model, _ = M.build(path, layers)
        except Exception as e:  # noqa: BLE001 - one failing architecture must not end the run
            writers["forward"].writerow([name, layers or "", "", "", "", f"error: {type(e).__name__}: {e}"[:200],
                                         phase])
            continue
        for batch, prompt in shapes:
            if args.smoke:
                batch, prompt = 1, min(prompt, 16)
            try:
                ids = torch.randint(3, 1000, (batch, prompt), device=M.DEVICE)
                mask = torch.ones_like(ids)
                with torch.no_grad():
                    if args.decode:
                        forward = DecodeSteps(model, ids, mask)
                        cached = forward.cached
                    else:
                        forward, cached = forward_once, prompt
                        for _ in range(2):
                            forward_once(model, ids, mask)
                    M.sync()
                    fwd = timed(model, ids, mask, forward=forward)
                    ops, kernels = profile_rows(model, ids, mask, forward=forward)
                    if args.decode:
                        forward.close()
                writers["forward"].writerow([name, layers or "", batch, cached, f"{fwd:.6f}", "ok", phase])
                for n, c, us in sorted(ops, key=lambda r: -r[2]):
                    writers["ops"].writerow([name, batch, cached, n, c, f"{us:.1f}", phase])
                for n, c, us in sorted(kernels, key=lambda r: -r[2]):
                    writers["kernels"].writerow([name, batch, cached, n[:300], c, f"{us:.1f}", phase])
                print(f"{name} {batch}x{cached} {phase}: forward {1e3 * fwd:.2f} ms, "
                      f"kernel sum {sum(r[2] for r in kernels) / 1e3:.2f} ms", flush=True)
            except Exception as e:  # noqa: BLE001 - e.g. out of memory at one shape
                writers["forward"].writerow([name, layers or "", batch, prompt, "", f"error: {type(e).__name__}", phase])
            for f in files.values():
                f.flush()
        del model
        if M.DEVICE == "cuda":
            torch.cuda.empty_cache()
    for f in files.values():
        f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
