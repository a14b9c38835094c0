"""Which cuBLAS kernel each bf16 GEMM shape gets, and its speed per MHz of SM clock, sustained (issue 12).

Why: on the lent H100, phi-3-mini's sustained prefill steps (K = 3072) run ~10% slower than hwsim's GEMM model
while llama-3.1-8b's (K = 4096) run ~8% faster, and inside those steps cuBLAS ran phi's qkv / gate_up as
`nvjet_sm90_tst_192x192_64x4_*` kernels at ~0.42 TFLOP/s per MHz and llama's as `256x128` / `320x128` kernels at
~0.50 (docs/stack-accuracy.md, "H100: the sustained steps measured"). Whether the gap is the kernel cuBLAS picks (a
property of the shape, in isolation too) or the clock inside the step (a power matter) is settled by running each
shape alone: per shape and M, one call under torch.profiler names the kernel(s), then the GEMM runs back to back
for `--seconds` with NVML's SM clock and power sampled every 5 ms; the steady part (after the first 30%) gives
TFLOP/s, the mean clock, and TFLOP/s per MHz.

usage (GPU machine): python3 benchmarks/gpu/gemm_kernel_choice.py --out DIR [--seconds 1.0] [--budget 200]
       (`--smoke`: a CPU check of the script, small shapes, clock and power 0: not data)
Writes DIR/gemm_kernels.csv and DIR/env.json. Self-contained: torch and measure_hf_generate.py's NVML reader and 5 ms sampler (power from its energy counter).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# (name, N, K): the projections of phi-3-mini (K = 3072) and llama-3.1-8b (K = 4096) whose kernels the steps named
SHAPES = (("phi3.qkv", 9216, 3072), ("phi3.o", 3072, 3072), ("phi3.gate_up", 16384, 3072), ("phi3.down", 3072, 8192),
          ("llama8b.qkv", 6144, 4096), ("llama8b.o", 4096, 4096), ("llama8b.gate_up", 28672, 4096),
          ("llama8b.down", 4096, 14336))
MS = (8192, 2048)


class _NoNVML:
    """--smoke: no GPU, no readings."""

    def power_w(self):
        return 0.0

    def sm_mhz(self):
        return 0.0

    def energy_j(self):
        return None


def kernels_of(fn, device):
    from torch.profiler import ProfilerActivity, profile
    kind = "CUDA" if device == "cuda" else "CPU"
    with profile(activities=[getattr(ProfilerActivity, kind)]) as prof:
        fn()
        _sync(device)
    names = [e.name for e in prof.events() if e.device_type.name == kind and "memcpy" not in e.name.lower()]
    return ";".join(dict.fromkeys(names))


def _sync(device):
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--budget", type=float, default=200.0)
    ap.add_argument("--smoke", action="store_true", help="check the script on the CPU: its output is not data")
    args = ap.parse_args(argv)
    import torch
    device = "cpu" if args.smoke else "cuda"
    os.makedirs(args.out, exist_ok=True)
    from measure_hf_generate import NVML, Sampler      # its 5 ms NVML thread; nothing host-bound runs here
    if args.smoke:
        nvml, shapes, ms = _NoNVML(), [(n, s // 64, k // 64) for n, s, k in SHAPES[:2]], (64,)
    else:
        nvml, shapes, ms = NVML(), SHAPES, MS
    sampler = Sampler(nvml)
    sampler.start()
    start = time.perf_counter()
    json.dump({"date": time.strftime("%Y-%m-%d"), "gpu": None if args.smoke else torch.cuda.get_device_name(0),
               "torch": torch.__version__, "script": "benchmarks/gpu/gemm_kernel_choice.py", "seconds": args.seconds,
               "smoke_test_not_data": args.smoke},
              open(os.path.join(args.out, "env.json"), "w"), indent=1)
    f = open(os.path.join(args.out, "gemm_kernels.csv"), "w", newline="")
    w = csv.writer(f)
    w.writerow(["shape", "m", "n", "k", "kernel", "calls", "seconds_per_call", "tflops", "sm_mhz", "min_sm_mhz",
                "power_w", "tflops_per_mhz"])
    for m in ms:
        for name, n, k in shapes:
            if time.perf_counter() - start > args.budget:
                print("budget reached", flush=True)
                break
            a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
            b = torch.randn(n, k, device=device, dtype=torch.bfloat16).t()
            out = torch.empty(m, n, device=device, dtype=torch.bfloat16)

            def fn():
                torch.mm(a, b, out=out)
            for _ in range(3):
                fn()
            kern = kernels_of(fn, device)
            _sync(device)
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                for _ in range(8):
                    fn()
                calls += 8
                _sync(device)
            t1 = time.perf_counter()
            start = t0 + 0.3 * (t1 - t0)             # the steady part: after the clock has settled
            power, mhz = sampler.mean(start, t1)
            power, mhz = power or 0.0, mhz or 0.0
            min_mhz = min((s[2] for s in list(sampler.samples) if start <= s[0] <= t1), default=0.0)
            per = (t1 - t0) / calls
            tf = 2 * m * n * k / per / 1e12
            w.writerow([name, m, n, k, kern, calls, f"{per:.4e}", f"{tf:.1f}", f"{mhz:.0f}",
                        f"{min_mhz:.0f}", f"{power:.0f}",
                        f"{tf / mhz:.4f}" if mhz else ""])
            f.flush()
            print(f"{name} m={m}: {kern[:60]} {tf:.3g} TFLOP/s at {mhz:.0f} MHz", flush=True)
            del a, b, out
    sampler.stop.set()
    f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
