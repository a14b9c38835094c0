"""GPU measurements for calibrating and validating the GPU cost model (run on a real NVIDIA GPU).

What it measures (each a CSV under --out, plus env.json):
  gemm.csv        bf16 and fp8 GEMMs over M x (N, K) shapes of common LLM projections
  attention.csv   the model's attention op (torch SDPA: flash prefill, decode over a KV cache)
  elementwise.csv add / mul / SiLU / unfused RMSNorm / copy over sizes
  steps.csv       full decoder steps of several models (plain eager PyTorch modules of hwsim with random
                  bf16 weights, unfused RMSNorm/RoPE/SiLU, SDPA attention, preallocated KV cache), each step
                  captured in a CUDA graph and timed over replays
  power.csv       NVML average power, energy and SM clock while a step runs back to back for a few seconds

Timing: CUDA events around each graph replay after warm-up, median of >= 5 replays and >= 0.3 s;
GEMM inputs rotate over several buffers so small shapes do not run from L2. Weights and caches are
random normal values, never zeros.

usage (on the GPU machine, from the repository root):
  PYTHONPATH=. python3 benchmarks/gpu/measure.py --out DIR [--quick] [--parts gemm,attention,elementwise,steps,power]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import statistics
import sys
import threading
import time

import torch

from workloads import load_spec
from workloads.modules import CausalLM, Step

GEMM_NK = [(4096, 4096), (1024, 4096), (6144, 4096), (14336, 4096), (4096, 14336), (8192, 8192), (1024, 8192),
           (28672, 8192), (8192, 28672), (5120, 5120), (17408, 5120), (5120, 17408), (128256, 4096)]
GEMM_M = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
MODELS = ["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "phi-3-mini", "llama-2-13b", "qwen3-14b"]
PREFILL = [(1, 128), (1, 512), (1, 1024), (1, 2048), (1, 4096), (1, 8192), (4, 512), (4, 2048), (8, 1024),
           (8, 4096), (16, 512), (64, 128), (256, 128)]
DECODE = [(b, c) for c in (512, 2048, 8192) for b in (1, 8, 32, 64, 128, 256)]


def timed(fn, min_reps=5, min_time=0.3, graph=True):
    """Median seconds of fn, as CUDA-graph replays (or plain calls) timed with events."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    run = fn
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        run = g.replay
        run()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < 200):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        run()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times), len(times), run


class Writer:
    def __init__(self, out, name, fields):
        self.f = open(os.path.join(out, name), "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=fields)
        self.w.writeheader()

    def row(self, **r):
        self.w.writerow(r)
        self.f.flush()


def measure_gemm(out, quick):
    w = Writer(out, "gemm.csv", ["dtype", "m", "n", "k", "seconds", "tflops", "reps"])
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    for dtype in ("bf16", "fp8"):
        for n, k in (GEMM_NK[:2] if quick else GEMM_NK):
            for m in (GEMM_M[::4] if quick else GEMM_M):
                if dtype == "fp8" and m % 16:
                    continue
                size = (m * k + n * k) * (1 if dtype == "fp8" else 2)
                sets = max(1, min(8, int(4 * l2 // max(size, 1)) + 1))
                a = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(sets)]
                b = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sets)]
                if dtype == "fp8":
                    a = [x.to(torch.float8_e4m3fn) for x in a]
                    b = [x.to(torch.float8_e4m3fn) for x in b]
                    one = torch.ones((), device="cuda")

                    def fn():
                        for x, y in zip(a, b):
                            torch._scaled_mm(x, y.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
                else:
                    def fn():
                        for x, y in zip(a, b):
                            torch.mm(x, y.t())
                t, reps, _ = timed(fn, min_time=0.12)
                t /= sets
                w.row(dtype=dtype, m=m, n=n, k=k, seconds=f"{t:.4e}", tflops=f"{2 * m * n * k / t / 1e12:.2f}", reps=reps)
                del a, b
        torch.cuda.empty_cache()


def measure_attention(out, quick):
    from workloads.modules.attention_op import attention
    w = Writer(out, "attention.csv", ["phase", "b", "hq", "hkv", "sq", "sk", "d", "seconds", "reps"])
    cases = []
    for hq, hkv in ((32, 8), (64, 8), (32, 32)):
        for b, s in ((1, 512), (1, 2048), (1, 8192), (4, 2048), (16, 512), (8, 4096)):
            cases.append(("prefill", b, hq, hkv, s, s))
        for b in (1, 8, 32, 128):
            for ctx in (512, 2048, 8192):
                if b * ctx * hkv <= 128 * 8192 * 8:
                    cases.append(("decode", b, hq, hkv, 1, ctx + 1))
    for phase, b, hq, hkv, sq, sk in (cases[:4] if quick else cases):
        q = torch.randn(b, hq, sq, 128, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(b, hkv, sk, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(b, hkv, sk, 128, device="cuda", dtype=torch.bfloat16)
        t, reps, _ = timed(lambda: attention(q, k, v, 128, True, 0, 0.0, False))
        w.row(phase=phase, b=b, hq=hq, hkv=hkv, sq=sq, sk=sk, d=128, seconds=f"{t:.4e}", reps=reps)


def measure_elementwise(out, quick):
    from workloads.modules.leaves import RMSNorm
    w = Writer(out, "elementwise.csv", ["op", "numel", "bytes", "seconds", "gbps", "reps"])
    for numel in ([1 << 16, 1 << 24] if quick else [1 << p for p in range(12, 30, 2)]):
        x = torch.randn(numel // 4096 or 1, 4096, device="cuda", dtype=torch.bfloat16)
        y = torch.randn_like(x)
        norm = RMSNorm(4096, 1e-5, device="cuda", dtype=torch.bfloat16)
        wide = torch.randn(x.shape[0], 2 * x.shape[1], device="cuda", dtype=torch.bfloat16)
        gate, up = wide.split(x.shape[1], dim=-1)           # non-contiguous halves, as in fused gate_up outputs
        cases = {
            "add": (lambda: x + y, 3), "mul": (lambda: x * y, 3), "silu": (lambda: torch.nn.functional.silu(x), 2),
            "silu_mul_strided": (lambda: torch.nn.functional.silu(gate) * up, 5),
            "silu_mul_contiguous": (lambda: torch.nn.functional.silu(x) * y, 5),
            "copy": (lambda: x.clone(), 2), "rmsnorm_unfused": (lambda: norm(x), None),
        }
        for name, (fn, passes) in cases.items():
            t, reps, _ = timed(fn)
            nbytes = passes * x.numel() * 2 if passes else 0
            w.row(op=name, numel=x.numel(), bytes=nbytes, seconds=f"{t:.4e}",
                  gbps=f"{nbytes / t / 1e9:.1f}" if nbytes else "", reps=reps)


def _fits(spec, params, b, tokens):
    free, total = torch.cuda.mem_get_info()
    need = spec.kv_bytes_per_token(2.0) * b * tokens + 4 * b * tokens * max(spec.hidden, spec.intermediate) * 2
    return need < free - 4e9


def _model(name):
    spec = load_spec(name)
    torch.manual_seed(0)
    model = CausalLM(spec, dtype=torch.bfloat16, device="cuda", share_layers=False)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return spec, model


PHASES = ("prefill", "decode")   # --phases of the steps part
TOKEN_IDS = "zeros"      # --token-ids: "zeros" (the 2026-11-24 data) or "random" (uniform ids, as real text varies)


def step_runner(model, step):
    caches = model.allocate_caches(step, unique=False)
    for c in caches:
        c.normal_()
    ids = None
    if TOKEN_IDS == "random":
        g = torch.Generator(device="cuda").manual_seed(0)
        ids = torch.randint(3, model.spec.vocab, (step.batch, step.new_tokens), device="cuda", generator=g)

    def fn():
        with torch.no_grad():
            model(step, unique=False, caches=caches, ids=ids)
    return fn


def measure_steps(out, quick, models=None, window_only=False):
    w = Writer(out, "steps.csv", ["model", "phase", "batch", "seq_len", "seconds", "reps"])
    for name in (models or (MODELS[:1] if quick else MODELS)):
        spec, model = _model(name)
        params = sum(p.numel() for p in model.parameters())
        cases = [("prefill", b, s) for b, s in PREFILL] + [("decode", b, c) for b, c in DECODE]
        for phase, b, s in (cases[::6] if quick else cases):
            if phase not in PHASES:
                continue
            step = Step(phase, b, s, 0) if phase == "prefill" else Step(phase, b, 1, s)
            if s + 1 > spec.max_positions or not _fits(spec, params, b, s + 1):
                continue
            if phase == "prefill" and b * s * params > 32768 * 8.1e9:
                continue
            windows = [k.window for k in spec.layer_kinds if k.window]
            if window_only and not (phase == "prefill" and windows and s > min(windows)):
                continue
            t, reps, _ = timed(step_runner(model, step), min_time=0.5)
            w.row(model=name, phase=phase, batch=b, seq_len=s, seconds=f"{t:.4e}", reps=reps)
            print(f"  {name} {phase} b={b} s={s}: {t * 1e3:.2f} ms", flush=True)
            torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()


class PowerSampler(threading.Thread):
    def __init__(self, nvml, handle):
        super().__init__(daemon=True)
        self.nvml, self.h, self.samples, self.stop = nvml, handle, [], False

    def run(self):
        while not self.stop:
            p = self.nvml.nvmlDeviceGetPowerUsage(self.h) / 1e3
            c = self.nvml.nvmlDeviceGetClockInfo(self.h, self.nvml.NVML_CLOCK_SM)
            self.samples.append((p, c))
            time.sleep(0.02)


def sustain(nvml, handle, run, duration: float) -> dict:
    """Run `run` back to back for `duration` seconds: step time, NVML energy, power and SM clock (power.csv fields)."""
    torch.cuda.synchronize()
    sampler = PowerSampler(nvml, handle)
    e0 = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    sampler.start()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < duration:
        for _ in range(4):
            run()
        n += 4
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    e1 = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    sampler.stop = True
    sampler.join()
    steady = sampler.samples[len(sampler.samples) // 4:] or sampler.samples
    powers = sorted(p for p, _ in steady)
    clocks = [c for _, c in steady]
    energy = (e1 - e0) / 1e3
    return {"step_seconds": f"{elapsed / max(n, 1):.4e}", "avg_power_w": f"{energy / elapsed:.1f}",
            "p95_power_w": f"{powers[int(0.95 * (len(powers) - 1))]:.1f}", "energy_j_per_step": f"{energy / max(n, 1):.4e}",
            "avg_sm_mhz": f"{statistics.mean(clocks):.0f}", "min_sm_mhz": min(clocks), "seconds": f"{elapsed:.2f}"}


def measure_power(out, quick):
    import pynvml as nvml
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    w = Writer(out, "power.csv", ["case", "model", "phase", "batch", "seq_len", "step_seconds", "avg_power_w",
                                  "p95_power_w", "energy_j_per_step", "avg_sm_mhz", "min_sm_mhz", "seconds"])
    duration = 3.0 if quick else 8.0

    def sustained(case, run, model="", phase="", b=0, s=0):
        r = sustain(nvml, h, run, duration)
        w.row(case=case, model=model, phase=phase, batch=b, seq_len=s, **r)
        print(f"  power {case}: {r['avg_power_w']} W, SM {r['avg_sm_mhz']} MHz", flush=True)

    time.sleep(1.0)
    sustained("idle", lambda: time.sleep(0.05))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    bm = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    _, _, run = timed(lambda: torch.mm(a, bm))
    sustained("gemm_8192_bf16", run)
    del a, bm
    spec, model = _model("llama-3.1-8b")
    for phase, b, s in (("prefill", 1, 8192), ("prefill", 4, 2048), ("prefill", 1, 512), ("decode", 1, 2048),
                        ("decode", 32, 2048), ("decode", 128, 1024), ("decode", 256, 2048)):
        step = Step(phase, b, s, 0) if phase == "prefill" else Step(phase, b, 1, s)
        if not _fits(spec, 0, b, s + 1):
            continue
        _, _, run = timed(step_runner(model, step))
        sustained("step", run, "llama-3.1-8b", phase, b, s)
        torch.cuda.empty_cache()


def environment(out):
    props = torch.cuda.get_device_properties(0)
    env = {"date": datetime.date.today().isoformat(), "device": props.name, "sms": props.multi_processor_count,
           "memory_bytes": props.total_memory, "l2_bytes": props.L2_cache_size, "torch": torch.__version__,
           "cuda": torch.version.cuda, "script": "benchmarks/gpu/measure.py",
           "window_attention": "sdpa-mask", "token_ids": TOKEN_IDS}
    try:
        import pynvml as nvml
        nvml.nvmlInit()
        h = nvml.nvmlDeviceGetHandleByIndex(0)
        env.update(driver=nvml.nvmlSystemGetDriverVersion(),
                   power_limit_w=nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3,
                   max_sm_mhz=nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM),
                   max_mem_mhz=nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_MEM))
    except Exception as exc:  # NVML missing: timings still valid
        env["nvml_error"] = str(exc)
    with open(os.path.join(out, "env.json"), "w") as f:
        json.dump(env, f, indent=2)
    print(json.dumps(env))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="a few points of each part (smoke test)")
    parser.add_argument("--parts", default="gemm,attention,elementwise,steps,power")
    parser.add_argument("--models", help="comma-separated models for the steps part (default: all)")
    parser.add_argument("--token-ids", choices=("zeros", "random"), default="zeros",
                        help="token ids of the steps and power parts: zeros (every activation row alike; the "
                             "2026-11-24 data) or random (GEMMs draw more power, as with real text)")
    parser.add_argument("--phases", default="prefill,decode", help="phases of the steps part")
    parser.add_argument("--min-window-cases", action="store_true",
                        help="steps part: only the cases whose prompt is longer than a sliding window")
    args = parser.parse_args()
    global TOKEN_IDS, PHASES
    TOKEN_IDS, PHASES = args.token_ids, tuple(args.phases.split(","))
    os.makedirs(args.out, exist_ok=True)
    environment(args.out)
    parts = {"gemm": measure_gemm, "attention": measure_attention, "elementwise": measure_elementwise,
             "steps": measure_steps, "power": measure_power}
    for name in args.parts.split(","):
        t = time.perf_counter()
        if name == "steps":
            measure_steps(args.out, args.quick, args.models.split(",") if args.models else None, args.min_window_cases)
        else:
            parts[name](args.out, args.quick)
        print(f"{name}: {time.perf_counter() - t:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
