"""Where the host's time goes in one HF prefill forward: per aten op, host (CPU) time and calls, and the syncs.

Why (issue 18): on the lent H100 HF's MoE prefill forwards at 128 tokens are host-bound (deepseek-v2-lite 1x128: 53
ms of wall time against 19 ms of device time, data/h100-2026-12-06-lease11-moe-prefill-profile) and hwsim
under-predicts them by 20-38%, while its dense forwards are within ~7%. A device-side profile does not say what costs
the host more in HF's MoE block at 128 tokens than at one. This script says it, per op, on the GPU's own host:

- the forward's wall time, unprofiled (median of `--reps` back-to-back forwards, each synchronised);
- one forward under torch.profiler (CPU and CUDA): per aten op (top level and nested, by name) its calls, self CPU
  time and total CPU time, and the device time of the kernels it launched; per CUDA runtime call
  (cudaLaunchKernel, cudaStreamSynchronize, cudaMemcpyAsync ...) its calls and CPU time;
- the host-device syncs: torch.cuda.set_sync_debug_mode("warn") over one unprofiled forward, each warning's
  calling line in transformers' code (file:line), counted.

`--decode`: the same for a decode step (one token per sequence into the DynamicCache a prefill of the shape's
prompt filled, as generate() runs its forwards; every timed or profiled step caches one more token). Why: HF's
deepseek-v2-lite decode steps are host-bound and 10-16% slower than hwsim's host model says on every H100 lease, the
dense models' within ~8%; the counts of aten calls and launches per step name what the trace lacks. MoE
experts are switched to batched_mm as generate() switches them (hf_prefill_profile.decode_experts; the lease15 set
was taken before this and ran grouped_mm); every new KV length builds a cuDNN graph on the host.

usage: python3 benchmarks/gpu/hf_host_profile.py --out DIR [--configs deepseek-v2-lite,llama-3.1-8b[:LAYERS]]
       [--shapes 1x16,1x128,8x128,1x2048] [--reps 10] [--decode]      (`--smoke`: CPU check, not data)
Writes DIR/runs.csv, DIR/ops.csv, DIR/syncs.csv and DIR/env.json. Self-contained but for measure_hf_generate.build
(torch and transformers).
"""
from __future__ import annotations

import collections
import csv
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))


def forward_fn(torch, model, batch, prompt, device, decode=False):
    ids = torch.randint(3, 1000, (batch, prompt), device=device)
    mask = torch.ones_like(ids)

    def run():
        with torch.no_grad():
            model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
    if not decode:
        return run
    with torch.no_grad():
        state = {"cache": model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1).past_key_values,
                 "mask": mask}
    nxt = torch.randint(3, 1000, (batch, 1), device=device)
    from hf_prefill_profile import decode_experts
    decode_experts(model)           # batched_mm experts, as generate() decodes (left switched: a decode-only run)

    def step():
        with torch.no_grad():
            state["mask"] = torch.cat([state["mask"], torch.ones_like(nxt)], dim=-1)
            model(nxt, attention_mask=state["mask"], past_key_values=state["cache"], use_cache=True, logits_to_keep=1)
    return step


def wall(torch, run, reps, gpu):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        if gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def profile_ops(torch, run, gpu):
    """({op: [calls, self_cpu_us, cpu_total_us, device_us]}, profiled wall s, device busy us)."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        run()
        if gpu:
            torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    ops = {}
    for e in prof.key_averages():
        dev = getattr(e, "self_device_time_total", None)
        if dev is None:
            dev = getattr(e, "self_cuda_time_total", 0.0)
        ops[e.key] = [e.count, e.self_cpu_time_total, e.cpu_time_total, dev]
    busy = sum(v[3] for k, v in ops.items() if v[1] == 0 and v[3] > 0)   # kernels: device time, no CPU time
    return ops, dt, busy


def sync_sites(torch, run, gpu):
    """{transformers file:line or op text: syncs} over one forward (empty on the CPU)."""
    if not gpu:
        return {}
    sites = collections.Counter()
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    import traceback  # noqa: F401 - the warnings carry no stack; the message names the op
    for w in caught:
        msg = str(w.message).splitlines()[0][:120]
        where = f"{os.path.basename(w.filename)}:{w.lineno}"
        sites[f"{where} | {msg}"] += 1
    return dict(sites)


def main() -> int:
    from prefill_clock_probe import forward_parser
    ap = forward_parser(__doc__, "deepseek-v2-lite,qwen1.5-moe-a2.7b,llama-3.1-8b", "1x16,1x128,8x128,1x2048")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds; no new config starts after this")
    ap.add_argument("--decode", action="store_true", help="a decode step after the shape's prompt (see above)")
    args = ap.parse_args()
    import torch
    import transformers
    import measure_hf_generate as H
    gpu = torch.cuda.is_available() and not args.smoke
    H.DEVICE = "cuda" if gpu else "cpu"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "env.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
                   "gpu": torch.cuda.get_device_name(0) if gpu else None, "torch": torch.__version__,
                   "transformers": transformers.__version__, "cpu": platform.processor(),
                   "script": "benchmarks/gpu/hf_host_profile.py", "smoke_test_not_data": bool(args.smoke),
                   "phase": "decode" if args.decode else "prefill"}, f, indent=2)
    runs = csv.writer(open(os.path.join(args.out, "runs.csv"), "w", newline=""))
    runs.writerow(["config", "layers", "batch", "prompt", "wall_median_s", "wall_min_s", "profiled_wall_s",
                   "device_busy_s", "aten_calls", "launches", "syncs"])
    opsf = csv.writer(open(os.path.join(args.out, "ops.csv"), "w", newline=""))
    opsf.writerow(["config", "layers", "batch", "prompt", "op", "calls", "self_cpu_us", "cpu_total_us", "device_us"])
    syncf = csv.writer(open(os.path.join(args.out, "syncs.csv"), "w", newline=""))
    syncf.writerow(["config", "layers", "batch", "prompt", "site", "count"])
    t_start = time.perf_counter()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    for item in args.configs.split(","):
        if time.perf_counter() - t_start > args.budget:
            print(f"out of budget before {item}", flush=True)
            break
        name, _, lay = item.partition(":")
        layers = 1 if args.smoke else (int(lay) if lay else None)
        model, config = H.build(str(ROOT / "workloads" / "zoo" / f"{name}.json"), layers)
        nl = config.num_hidden_layers
        for b, s in shapes:
            if args.smoke:
                b, s = 1, 8
            run = forward_fn(torch, model, b, s, H.DEVICE, args.decode)
            run()
            run()
            med, mn = wall(torch, run, 2 if args.smoke else args.reps, gpu)
            ops, pwall, busy = profile_ops(torch, run, gpu)
            sites = sync_sites(torch, run, gpu)
            aten = sum(v[0] for k, v in ops.items() if k.startswith("aten::"))
            launches = sum(v[0] for k, v in ops.items() if k in ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx"))
            runs.writerow([name, nl, b, s, f"{med:.6f}", f"{mn:.6f}", f"{pwall:.6f}", f"{busy / 1e6:.6f}", aten,
                           launches, sum(sites.values())])
            for k, (n, self_us, tot_us, dev_us) in sorted(ops.items(), key=lambda kv: -kv[1][1]):
                opsf.writerow([name, nl, b, s, k[:160], n, f"{self_us:.1f}", f"{tot_us:.1f}", f"{dev_us:.1f}"])
            for site, n in sorted(sites.items(), key=lambda kv: -kv[1]):
                syncf.writerow([name, nl, b, s, site, n])
            print(f"{name}:{nl} {b}x{s}: wall {1e3 * med:.1f} ms (min {1e3 * mn:.1f}), profiled {1e3 * pwall:.1f} ms, "
                  f"device busy {busy / 1e3:.1f} ms, {aten} aten calls, {launches} launches, "
                  f"{sum(sites.values())} syncs", flush=True)
        del model
        if gpu:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
