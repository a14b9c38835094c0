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
       (any machine): python3 benchmarks/gpu/gemm_kernel_choice.py --check DIR [--device h100]
       hwsim's GEMM model against DIR's rows: at each row's measured clock, and solved under the power cap
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


def check(folder, device_name=None):
    """hwsim's GEMM model against a measured folder's rows, as a DataFrame: the time at each row's measured mean SM
    clock (the kernel's efficiency alone), and the time, clock and power solved under the power cap with the preset's
    power terms (what `predict` would say of the GEMM run back to back)."""
    import pandas as pd
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if root not in sys.path:
        sys.path.insert(0, root)
    from fit_stack import gemm_op
    from hw_models import load_device
    from hw_models.gpu import GPUModel
    from hw_models.power import PowerModel
    df = pd.read_csv(os.path.join(folder, "gemm_kernels.csv"))
    if device_name is None:
        gpu = json.load(open(os.path.join(folder, "env.json"))).get("gpu") or ""
        device_name = "h200" if "H200" in gpu else "h100"
    device = load_device(device_name)
    model, power = GPUModel(device, profile="fused"), PowerModel(device)
    rows = []
    for r in df.itertuples():
        op = gemm_op(int(r.m), int(r.n), int(r.k), "bf16")
        at_clock = model.cost(op, float(r.sm_mhz)).time_s
        pt = power.solve(lambda f: (model.cost(op, f).time_s, model.energy_flops(op), model.cost(op, f).bytes))
        t = float(r.seconds_per_call)
        rows.append({"shape": r.shape, "m": int(r.m), "kernel": r.kernel.split(";")[-1].replace("nvjet_sm90_tst_", ""),
                     "measured_us": t * 1e6, "sm_mhz": float(r.sm_mhz), "power_w": float(r.power_w),
                     "tflops_per_mhz": float(r.tflops_per_mhz),
                     "at_clock_err": at_clock / t - 1, "capped_err": pt.time_s / t - 1,
                     "hwsim_mhz": pt.clock_mhz, "hwsim_w": pt.avg_power_w})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--check", metavar="DIR", help="compare hwsim's GEMM model with DIR's measured rows (no GPU)")
    ap.add_argument("--device", help="preset for --check (default: from DIR/env.json)")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--budget", type=float, default=200.0)
    ap.add_argument("--smoke", action="store_true", help="check the script on the CPU: its output is not data")
    args = ap.parse_args(argv)
    if args.check:
        t = check(args.check, args.device)
        print(t.to_string(index=False, float_format=lambda v: f"{v:+.1%}" if abs(v) < 1 else f"{v:.0f}"))
        print(f"{len(t)} rows: at the measured clock MAPE {t.at_clock_err.abs().mean():.1%} "
              f"({t.at_clock_err.min():+.1%}..{t.at_clock_err.max():+.1%}); under the cap MAPE "
              f"{t.capped_err.abs().mean():.1%} ({t.capped_err.min():+.1%}..{t.capped_err.max():+.1%}), hwsim's clock "
              f"{t.hwsim_mhz.min():.0f}-{t.hwsim_mhz.max():.0f} MHz, measured {t.sm_mhz.min():.0f}-{t.sm_mhz.max():.0f}")
        for fam in sorted({s.split('.')[0] for s in t['shape']}):
            f = t[t['shape'].str.startswith(fam + ".")]
            print(f"  {fam}: at the measured clock mean {f.at_clock_err.mean():+.1%}; measured TFLOP/s per MHz "
                  f"{f.tflops_per_mhz.min():.3f}-{f.tflops_per_mhz.max():.3f} (mean {f.tflops_per_mhz.mean():.3f})")
        return 0
    if not args.out:
        ap.error("--out DIR is required to measure (or --check DIR to compare)")
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
            marks = [(t0, 0)]                        # (time, calls done) after each synchronized batch
            while time.perf_counter() - t0 < args.seconds:
                for _ in range(8):
                    fn()
                calls += 8
                _sync(device)
                marks.append((time.perf_counter(), calls))
            t1 = time.perf_counter()
            # the steady part, after the clock has settled: the first mark past 30% of the run to the end
            steady, done = next(((t, c) for t, c in marks if t >= t0 + 0.3 * (t1 - t0)), marks[0])
            if calls == done:
                steady, done = t0, 0
            power, mhz = sampler.mean(steady, t1)
            power, mhz = power or 0.0, mhz or 0.0
            min_mhz = min((s[2] for s in list(sampler.samples) if steady <= s[0] <= t1), default=0.0)
            per = (t1 - steady) / (calls - done)
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
