"""At what clock and rate do a prefill step's GEMMs run? hwsim's own modules against HF code, same shapes (issue 12/18).

The H100's eager prefill steps of hwsim's own modules (benchmarks/gpu/measure.py, CUDA-graph replays) are predicted
within a few percent, while HF's prefill forwards of the same models are 10-15% too fast in hwsim and their
profiled GEMMs run at the sustained-GEMM rate (~670 TFLOP/s, hf_prefill_profile.py). This script measures, for
each model, implementation and shape: the step time under 3 s of back-to-back runs with NVML power and SM clock
sampled every 5 ms (time-weighted by sample), then one profiled run's GPU time by kernel class (GEMM, attention,
other) and its top kernels; and one GEMM shape alone, sustained, and as a burst after 1 s idle (its first
replays, before the power controller acts).

usage: python3 benchmarks/gpu/prefill_clock_probe.py --out DIR [--configs llama-3.1-8b,qwen2.5-7b] [--shapes 1x4096,4x2048]
Writes DIR/runs.csv, DIR/kernels.csv, DIR/gemm.csv. `--smoke`: CPU check, not data.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))


def kernel_class(name: str) -> str:
    n = name.lower()
    if any(k in n for k in ("nvjet", "gemm", "cutlass", "xmma", "cublas", "splitk")):
        return "gemm"
    if any(k in n for k in ("flash", "fmha", "sdpa", "attention", "attn")):
        return "attention"
    return "other"


class Sampler(threading.Thread):
    def __init__(self, nvml, handle, period=0.005):
        super().__init__(daemon=True)
        self.nvml, self.h, self.period, self.samples, self.stop = nvml, handle, period, [], False

    def run(self):
        while not self.stop:
            self.samples.append((self.nvml.nvmlDeviceGetPowerUsage(self.h) / 1e3,
                                 self.nvml.nvmlDeviceGetClockInfo(self.h, self.nvml.NVML_CLOCK_SM)))
            time.sleep(self.period)


def sustained(torch, nvml, handle, run, seconds=3.0):
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    s = Sampler(nvml, handle) if nvml else None
    e0 = nvml.nvmlDeviceGetTotalEnergyConsumption(handle) if nvml else 0
    if s:
        s.start()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run()
        n += 1
        sync()
    dt = time.perf_counter() - t0
    out = {"step_s": dt / n, "runs": n}
    if s:
        s.stop = True
        s.join()
        e1 = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        steady = s.samples[len(s.samples) // 4:] or s.samples
        clocks = sorted(c for _, c in steady)
        out.update(avg_power_w=(e1 - e0) / 1e3 / dt, avg_sm_mhz=statistics.mean(clocks),
                   p10_sm_mhz=clocks[len(clocks) // 10], p90_sm_mhz=clocks[(9 * len(clocks)) // 10])
    return out


def profiled(torch, run):
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    kernels = {}
    for ev in prof.events():
        if "CUDA" in str(getattr(ev, "device_type", "")):
            k = kernels.setdefault(ev.name, [0, 0.0])
            k[0] += 1
            k[1] += ev.time_range.elapsed_us()
    return kernels


def forward_parser(doc: str, configs: str, shapes: str) -> argparse.ArgumentParser:
    """The options every HF-forward measuring script here takes (this one, hf_host_profile.py): --out, --configs
    (zoo names, each optionally :LAYERS where the script says so), --shapes (BATCHxPROMPT,...), --smoke."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--configs", default=configs)
    ap.add_argument("--shapes", default=shapes)
    ap.add_argument("--smoke", action="store_true", help="check the script on the CPU: its output is not data")
    return ap


def main() -> int:
    ap = forward_parser(__doc__, "llama-3.1-8b,qwen2.5-7b", "1x4096,4x2048")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    import torch
    gpu = torch.cuda.is_available() and not args.smoke
    os.makedirs(args.out, exist_ok=True)
    nvml = handle = None
    if gpu:
        import pynvml as nvml
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
    import measure_hf_generate as H
    H.DEVICE = "cuda" if gpu else "cpu"
    steps = csv.writer(open(os.path.join(args.out, "runs.csv"), "w", newline=""))
    steps.writerow(["config", "impl", "batch", "prompt", "step_s", "runs", "avg_power_w", "avg_sm_mhz", "p10_sm_mhz",
                    "p90_sm_mhz", "profiled_gemm_ms", "profiled_attention_ms", "profiled_other_ms"])
    kfile = csv.writer(open(os.path.join(args.out, "kernels.csv"), "w", newline=""))
    kfile.writerow(["config", "impl", "batch", "prompt", "class", "kernel", "calls", "us"])
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    for name in args.configs.split(","):
        for impl in ("hwsim", "hf"):
            if impl == "hwsim":
                from workloads import load_spec
                from workloads.modules import CausalLM, Step
                spec = load_spec(name)
                if args.smoke:
                    from dataclasses import replace
                    spec = replace(spec, layers=1, layer_kinds=spec.layer_kinds[:1])
                model = CausalLM(spec, dtype=torch.bfloat16 if gpu else torch.float32,
                                 device="cuda" if gpu else "cpu", share_layers=False)
                with torch.no_grad():
                    for p in model.parameters():
                        p.normal_(0.0, 0.02)
            else:
                model, _ = H.build(str(ROOT / "workloads" / "zoo" / f"{name}.json"), 1 if args.smoke else None)
            for b, s in shapes:
                if args.smoke:
                    b, s = 1, 16
                if impl == "hwsim":
                    step = Step("prefill", b, s, 0)
                    caches = model.allocate_caches(step, unique=False)

                    def run(model=model, step=step, caches=caches):
                        with torch.no_grad():
                            model(step, unique=False, caches=caches)
                else:
                    ids = torch.randint(3, 1000, (b, s), device="cuda" if gpu else "cpu")
                    mask = torch.ones_like(ids)

                    def run(model=model, ids=ids, mask=mask):
                        with torch.no_grad():
                            model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
                run()
                r = sustained(torch, nvml, handle, run, 0.2 if args.smoke else args.seconds)
                ks = profiled(torch, run)
                cls = {"gemm": 0.0, "attention": 0.0, "other": 0.0}
                for kname, (calls, us) in ks.items():
                    cls[kernel_class(kname)] += us
                for kname, (calls, us) in sorted(ks.items(), key=lambda kv: -kv[1][1])[:25]:
                    kfile.writerow([name, impl, b, s, kernel_class(kname), kname[:200], calls, f"{us:.1f}"])
                steps.writerow([name, impl, b, s, f"{r['step_s']:.6f}", r["runs"], f"{r.get('avg_power_w', 0):.1f}",
                                f"{r.get('avg_sm_mhz', 0):.0f}", r.get("p10_sm_mhz", ""), r.get("p90_sm_mhz", ""),
                                f"{cls['gemm'] / 1e3:.2f}", f"{cls['attention'] / 1e3:.2f}", f"{cls['other'] / 1e3:.2f}"])
                print(f"{name} {impl} {b}x{s}: {1e3 * r['step_s']:.1f} ms, {r.get('avg_power_w', 0):.0f} W, "
                      f"SM {r.get('avg_sm_mhz', 0):.0f} MHz (p10 {r.get('p10_sm_mhz')}, p90 {r.get('p90_sm_mhz')}); "
                      f"GEMM {cls['gemm'] / 1e3:.1f} / attention {cls['attention'] / 1e3:.1f} / other "
                      f"{cls['other'] / 1e3:.1f} ms", flush=True)
                if gpu:
                    torch.cuda.empty_cache()
            del model
            if gpu:
                torch.cuda.empty_cache()
    # one GEMM shape alone: sustained, and a burst after idle
    g = csv.writer(open(os.path.join(args.out, "gemm.csv"), "w", newline=""))
    g.writerow(["m", "n", "k", "mode", "seconds", "tflops", "avg_sm_mhz", "avg_power_w"])
    dev = "cuda" if gpu else "cpu"
    dt = torch.bfloat16 if gpu else torch.float32
    for m, n, k in ((4096, 14336, 4096), (8192, 4096, 4096)):
        if args.smoke:
            m, n, k = 64, 64, 64
        x = torch.randn(m, k, device=dev, dtype=dt)
        w = torch.randn(n, k, device=dev, dtype=dt)

        def lin():
            torch.nn.functional.linear(x, w)
        if gpu:
            time.sleep(1.0)
            times = []
            for _ in range(12):
                a, bb = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                lin()
                bb.record()
                bb.synchronize()
                times.append(a.elapsed_time(bb) / 1e3)
            burst = statistics.median(times[1:6])
            g.writerow([m, n, k, "burst after 1 s idle (replays 2-6)", f"{burst:.4e}", f"{2 * m * n * k / burst / 1e12:.1f}",
                        "", ""])
        r = sustained(torch, nvml, handle, lambda: [lin() for _ in range(20)], 0.2 if args.smoke else 2.0)
        t = r["step_s"] / 20
        g.writerow([m, n, k, "sustained 2 s", f"{t:.4e}", f"{2 * m * n * k / t / 1e12:.1f}",
                    f"{r.get('avg_sm_mhz', 0):.0f}", f"{r.get('avg_power_w', 0):.1f}"])
        print(f"gemm {m}x{n}x{k}: sustained {2 * m * n * k / t / 1e12:.0f} TFLOP/s at {r.get('avg_sm_mhz', 0):.0f} MHz"
              + (f", burst {2 * m * n * k / burst / 1e12:.0f} TFLOP/s" if gpu else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
