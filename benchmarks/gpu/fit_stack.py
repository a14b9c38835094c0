"""Fit and check the serving-stack kernel parameters of the GPU model on benchmarks/gpu/measure_stack.py data.

Each kernel family is split into a calibration set (shapes the parameters are fitted on) and a held-out set
(other models' shapes), fixed here so that the held-out error is never fitted to itself:
  GEMMs        calibration: llama8b.*, llama70b.*, mixtral.*  held out: llama70b-tp8.*, llama13b.*, qwen7b.*
               fitted: mm_eff_fp8 (per-tensor), fp8_row_us (per-row scaling epilogue), with the power cap in
               the loop as benchmarks/gpu/fit.py does
  decode attn  calibration: (hq, hkv) in (32, 8), (32, 32), (8, 1)  held out: (64, 8), (28, 4), (32, 1)
               fitted: decode_bw_eff (flash), paged_bw_eff (paged split-K), decode_attn_floor_us
  prefill attn held out entirely (attn_eff, attn_floor_us come from benchmarks/gpu/fit.py)
  MoE          calibration: mixtral-8x7b  held out: qwen1.5-moe, deepseek-v2-lite
usage: python3 benchmarks/gpu/fit_stack.py [--data DIR ...] [--write]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hw_models import load_device  # noqa: E402
from hw_models.gpu import GPUModel  # noqa: E402
from hw_models.power import PowerModel  # noqa: E402
from workloads.graph import Op  # noqa: E402

DATA = ROOT / "benchmarks" / "gpu" / "data"
GEMM_CAL = ("llama8b.", "llama70b.", "mixtral.")
DECODE_CAL = {(32, 8), (32, 32), (8, 1)}
MOE_CAL = ("mixtral-8x7b",)


def datasets():
    """[(folder, preset)] of the stack measurements, by the GPU named in env.json."""
    out = []
    for env in sorted(DATA.glob("*-stack/env.json")):
        name = json.loads(env.read_text())["device"]
        out.append((env.parent, "h200" if "H200" in name else "h100"))
    return out


def read(folder, name):
    path = Path(folder) / name
    return list(csv.DictReader(open(path))) if path.is_file() else []


def gemm_op(m, n, k, variant):
    fp8 = variant.startswith("fp8")
    eb = 1 if fp8 else 2
    return Op(0, "mm", "matmul", None, 1, (), (), "fp8" if fp8 else "bf16", 2 * m * n * k,
              {"weight": n * k * eb, "activation": m * k * eb + m * n * 2},
              attrs=dict(m=m, n=n, k=k, batch=1, scaling="row" if variant == "fp8_row" else "tensor"))


def _solve(model, power, op):
    """Time of one op under the power cap (a lone kernel run back to back: the cap holds on its own)."""
    pt = power.solve(lambda f: (model.cost(op, f).time_s, model.energy_flops(op), model.cost(op, f).bytes))
    return pt.time_s


def gemm_errors(device, rows, params, which):
    model, power = GPUModel(device, profile="fused", params=params), PowerModel(device)
    out = []
    for r in rows:
        cal = r["shape"].startswith(GEMM_CAL)
        if (which == "calibration") != cal:
            continue
        op = gemm_op(int(r["m"]), int(r["n"]), int(r["k"]), r["variant"])
        t = float(r["seconds"])
        out.append((r["variant"], (_solve(model, power, op) - t) / t, r))
    return out


def decode_op(r, kv_bytes_per_el):
    b, hq, hkv, ctx, d = (int(r[k]) for k in ("b", "hq", "hkv", "ctx", "d"))
    kv = 2 * b * hkv * ctx * d * kv_bytes_per_el
    act = 2 * b * hq * d * 2
    return Op(0, "attn", "attention", None, 1, (), (), "bf16", 4 * b * hq * ctx * d,
              {"kv_cache": kv, "activation": act}, reads={"kv_cache": kv, "activation": act / 2},
              attrs=dict(b=b, hq=hq, hkv=hkv, sq=1, sk=ctx, d=d, dv=d, causal=True, window=0))


def decode_errors(device, rows, params, which, kernel):
    """kernel: sdpa (contiguous flash) or paged (the split-K Triton kernel, bf16 or fp8 KV)."""
    from hw_models.stacks import STACKS
    name = "fused" if kernel == "sdpa" else "vllm"
    model = GPUModel(device, profile=name, params=params)
    if kernel == "paged":
        model.stack = STACKS["vllm"].__class__(**{**STACKS["vllm"].__dict__,
                                                  "decode_attn_bw_eff": params.get("paged_bw_eff", 0.0)})
    out = []
    for r in rows:
        if (kernel == "sdpa") != r["kernel"].startswith("sdpa"):
            continue
        cal = (int(r["hq"]), int(r["hkv"])) in DECODE_CAL
        if (which == "calibration") != cal:
            continue
        op = decode_op(r, 1 if r["kv_dtype"] == "fp8" else 2)
        t = float(r["seconds"])
        out.append((f"{kernel}/{r['kv_dtype']}", (model.cost(op, 1980).time_s - t) / t, r))
    return out


def prefill_errors(device, rows, params):
    from workloads.modules.attention_op import attention_flops
    model = GPUModel(device, profile="fused", params=params)
    out = []
    for r in rows:
        b, hq, hkv, s, d = (int(r[k]) for k in ("b", "hq", "hkv", "s", "d"))
        flops = attention_flops((b, hq, s, d), (b, hkv, s, d), d)
        op = Op(0, "attn", "attention", None, 1, (), (), "bf16", flops,
                {"activation": 2 * (2 * b * hq * s * d) + 2 * 2 * b * hkv * s * d},
                attrs=dict(b=b, hq=hq, hkv=hkv, sq=s, sk=s, d=d, dv=d, causal=True, window=0))
        t = float(r["seconds"])
        out.append(("prefill", (model.cost(op, float(r["sm_mhz"] or 1980)).time_s - t) / t, r))
    return out


def search(obj, params, name, grid):
    params[name] = min(grid, key=lambda v: obj({**params, name: v}))
    return params


def mape(errs):
    return 100 * statistics.mean(abs(e) for _, e, _ in errs) if errs else float("nan")


def fit(device, folder, verbose=True):
    params = {}
    gemm = read(folder, "gemm.csv")
    fp8 = [r for r in gemm if r["variant"] == "fp8_tensor"]
    big = lambda rows: [r for r in rows if int(r["m"]) >= 1024]   # noqa: E731
    params = search(lambda p: mape(gemm_errors(device, big(fp8), p, "calibration")), params, "mm_eff_fp8",
                    [x / 100 for x in range(50, 101, 2)])
    row = [r for r in gemm if r["variant"] == "fp8_row"]
    params = search(lambda p: mape(gemm_errors(device, row, p, "calibration")), params, "fp8_row_us",
                    [x / 2 for x in range(0, 21)])
    dec = read(folder, "attn_decode.csv")
    big_dec = [r for r in dec if int(r["kv_bytes"]) >= 64e6]
    params = search(lambda p: mape(decode_errors(device, big_dec, p, "calibration", "sdpa")), params,
                    "decode_bw_eff", [x / 100 for x in range(60, 101)])
    params = search(lambda p: mape(decode_errors(device, big_dec, p, "calibration", "paged")), params,
                    "paged_bw_eff", [x / 100 for x in range(40, 101)])
    params = search(lambda p: mape(decode_errors(device, dec, p, "calibration", "sdpa")), params,
                    "decode_attn_floor_us", [x / 2 for x in range(0, 31)])
    return params


def power_report(folder, preset, power_params=None):
    """Sustained steps and GEMMs (power.csv): measured step time, power and SM clock beside hwsim's prediction
    (eager stack, the preset's power model or `power_params`)."""
    from sim.predict import predict
    from workloads import trace
    device = load_device(preset)
    rows = read(folder, "power.csv")
    out = []
    for r in rows:
        if r["case"] != "step":
            continue
        g = trace(r["model"], r["phase"], int(r["batch"]), int(r["seq_len"]))
        p = predict(g, device, power_params=power_params)
        t = float(r["step_seconds"])
        out.append((r["model"], r["phase"], r["batch"], r["seq_len"], t, float(r["first_seconds"]), p.latency_s,
                    float(r["avg_power_w"]), p.avg_power_w, float(r["steady_sm_mhz"]), p.clock_mhz))
    return out


def kernel_report(write=False):
    print("Kernels measured here (benchmarks/gpu/measure_stack.py) against hwsim's cost of the same op")
    sets = datasets()
    if not sets:
        print("  no data/*-stack folders yet")
        return {}
    summary = {}
    for folder, preset in sets:
        env = json.loads((folder / "env.json").read_text())
        device = load_device(preset)
        params = fit(device, folder)
        base = {k: v for k, v in (device.calibration.params if device.calibration else {}).items()}
        print(f"\n{folder.name}: {env['device']} on {env.get('hostname', '?')} ({env.get('cpu', '?')}), "
              f"{env['date']}, torch {env['torch']}")
        print("  fitted:", {k: round(v, 3) for k, v in params.items()})
        gemm = read(folder, "gemm.csv")
        dec = read(folder, "attn_decode.csv")
        for which in ("calibration", "held-out"):
            groups = {}
            for kind, e, _ in gemm_errors(device, gemm, params, which):
                groups.setdefault(f"gemm {kind}", []).append(abs(e))
            for kernel in ("sdpa", "paged"):
                for kind, e, _ in decode_errors(device, dec, params, which, kernel):
                    groups.setdefault(f"decode {kind}", []).append(abs(e))
            if which == "held-out":
                for kind, e, _ in prefill_errors(device, read(folder, "attn_prefill.csv"), params):
                    groups.setdefault("prefill attention", []).append(abs(e))
            for k, v in sorted(groups.items()):
                summary[(folder.name, which, k)] = (100 * statistics.mean(v), 100 * max(v), len(v))
                print(f"  {which:11s} {k:22s} n={len(v):4d}  MAPE {100 * statistics.mean(v):5.1f}%  "
                      f"max {100 * max(v):5.1f}%")
        # the earlier calibration's numbers on the same rows (what hwsim predicted before this fit)
        old = [abs(e) for _, e, _ in gemm_errors(device, [r for r in gemm if r["variant"].startswith("fp8")],
                                                  base, "held-out")]
        if old:
            print(f"  before (preset calibration) fp8 GEMMs held out: MAPE {100 * statistics.mean(old):.1f}%")
        steps = power_report(folder, preset)
        if steps:
            print("  sustained steps (eager stack): measured vs hwsim")
            print(f"  {'model':14s} {'phase':7s} {'b':>3s} {'s':>5s} {'first ms':>8s} {'sust ms':>8s} {'hwsim':>7s} "
                  f"{'err':>5s} {'W':>4s} {'hwsim W':>7s} {'MHz':>5s} {'hwsim':>5s}")
            for m, ph, b, s, t, first, pt, w, pw, f, pf in steps:
                print(f"  {m:14s} {ph:7s} {b:>3s} {s:>5s} {first * 1e3:8.1f} {t * 1e3:8.1f} {pt * 1e3:7.1f} "
                      f"{100 * (pt - t) / t:+4.0f}% {w:4.0f} {pw:7.0f} {f:5.0f} {pf:5.0f}")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    kernel_report(args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
