"""Fit and check the serving-stack kernel parameters of the GPU model on benchmarks/gpu/measure_stack.py data.

Each kernel family is split into a calibration set (shapes the parameters are fitted on) and a held-out set
(other models' shapes), fixed here so that the held-out error is never fitted to itself:
  GEMMs        calibration: llama8b.*, llama70b.*, mixtral.*  held out: llama70b-tp8.*, llama13b.*, qwen7b.*
               fitted: mm_eff_fp8 (per-tensor), fp8_row_us (per-row scaling epilogue), at the SM clock NVML read
               during the timing where there is one (large shapes), else with the power cap in the loop
  decode attn  calibration: (hq, hkv) in (32, 8), (32, 32), (8, 1)  held out: (64, 8), (28, 4), (32, 1)
               fitted: decode_bw_eff (flash), paged_bw_eff (paged split-K, bf16 KV), paged_fp8_bw_eff (the same
               kernel on FP8 KV: it dequantizes in registers and reads FP8 bytes at well under half the bf16 rate),
               decode_attn_floor_us
  prefill attn held out entirely against the cost model (attn_eff, attn_floor_us come from benchmarks/gpu/fit.py);
               a candidate shape model (prefill_candidate: each causal query tile computes its diagonal key tile in
               full, own efficiency and floor) is fitted on (hq, hkv) in (32, 8), (32, 32), (8, 1) and reported on
               (64, 8), (28, 4); wired into hw_models/gpu.py (and gpu_table.py) as attn_causal_tile / attn_causal_eff /
               attn_causal_floor_us (kernel_floor_us + attn_causal_floor_us = the candidate's floor), written by hand
               to the H200 preset; prefill_errors prices the rows with the preset's model
  MoE          calibration: mixtral-8x7b  held out: qwen1.5-moe, deepseek-v2-lite (every routing and token count)
               hwsim's layer (hw_models/moe.py: router, permutation, experts, un-permutation) per implementation
               (loop, grouped) with each row's expert counts, regenerated from measure_stack.py's seeded routing
               (checked against the CSV's active-expert and max-rows columns); fitted: moe_topk_us (the router's
               top-k kernel), grouped_mm_eff / grouped_bw_eff / grouped_sm_gbps / grouped_tile_us (the grouped GEMM);
               the per-expert loop is the plain GEMM model and kernel floors (nothing fitted)
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
        # at the clock NVML saw during the timing (the large shapes: a run of tens of ms is not yet at the
        # sustained clock the power model solves for); shapes without a reading under the power cap
        got = model.cost(op, float(r["sm_mhz"])).time_s if r.get("sm_mhz") else _solve(model, power, op)
        out.append((r["variant"], (got - t) / t, r))
    return out


def decode_op(r, kv_bytes_per_el):
    b, hq, hkv, ctx, d = (int(r[k]) for k in ("b", "hq", "hkv", "ctx", "d"))
    kv = 2 * b * hkv * ctx * d * kv_bytes_per_el
    act = 2 * b * hq * d * 2
    return Op(0, "attn", "attention", None, 1, (), (), "bf16", 4 * b * hq * ctx * d,
              {"kv_cache": kv, "activation": act}, reads={"kv_cache": kv, "activation": act / 2},
              attrs=dict(b=b, hq=hq, hkv=hkv, sq=1, sk=ctx, d=d, dv=d, causal=True, window=0,
                         kv_bits=8 * kv_bytes_per_el))


def decode_errors(device, rows, params, which, kernel):
    """kernel: sdpa (contiguous flash) or paged (the split-K Triton kernel, bf16 or fp8 KV)."""
    name = "fused" if kernel == "sdpa" else "vllm"
    model = GPUModel(device, profile=name, params=params)
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


def moe_counts(rows):
    """{(config, routing, tokens): [rows per expert]}: measure_stack.py's routing replayed in its order from its seed
    (torch's CPU generator); each checked against the row's active_experts and max_tokens_per_expert."""
    import torch
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
    from measure_stack import MOE_CONFIGS, MOE_TOKENS, routing
    gen = torch.Generator().manual_seed(0)
    out = {}
    for cname, (E, K, _, _) in MOE_CONFIGS.items():
        for T in MOE_TOKENS:
            for rkind in ("uniform", "random", "skewed", "identical"):
                out[(cname, rkind, T)] = torch.bincount(routing(rkind, T, E, K, gen).flatten(), minlength=E).tolist()
    for r in rows:
        if r["impl"] == "router":
            continue
        c = out[(r["config"], r["routing"], int(r["tokens"]))]
        if (sum(1 for x in c if x), max(c)) != (int(r["active_experts"]), int(r["max_tokens_per_expert"])):
            raise SystemExit(f"moe.csv routing not reproduced for {r['config']} {r['routing']} T={r['tokens']}")
    return out


def moe_errors(device, rows, counts, params, which, impl, rule="tiles"):
    """impl: router (the router alone), loop or grouped (permutation + experts + un-permutation, as measured:
    the router is its own row) or layer-loop / layer-grouped (router row + implementation row, the whole layer)."""
    from hw_models.moe import MoELayer, kernels, layer_time
    model = GPUModel(device, profile="eager", params=params)
    router = {(r["config"], r["tokens"]): float(r["seconds"]) for r in rows if r["impl"] == "router"}
    base = impl.replace("layer-", "")
    out = []
    for r in rows:
        if r["impl"] != base or ((which == "calibration") != r["config"].startswith(MOE_CAL)):
            continue
        T, E = int(r["tokens"]), int(r["experts"])
        c = [0] * E if base == "router" else counts[(r["config"], r["routing"], T)]
        layer = MoELayer(T, int(r["hidden"]), int(r["ffn"]), int(r["top_k"]), tuple(c))
        t = layer_time(kernels(model, layer, "loop" if base == "router" else base, float(r["sm_mhz"] or 1980), rule))
        got = t["router"] if base == "router" else t["total"] - t["router"]
        meas = float(r["seconds"])
        if impl.startswith("layer-"):
            got, meas = t["total"], meas + router[(r["config"], r["tokens"])]
        out.append((impl, (got - meas) / meas, r))
    return out


def fit_moe(device, rows, counts, params):
    """Mixtral rows only: the router's top-k cost, then the grouped GEMM's four numbers by coordinate search."""
    params = search(lambda p: mape(moe_errors(device, rows, counts, p, "calibration", "router")), params,
                    "moe_topk_us", [x / 2 for x in range(0, 41)])
    grids = {"grouped_mm_eff": [x / 100 for x in range(50, 96, 5)], "grouped_bw_eff": [x / 100 for x in range(30, 96, 5)],
             "grouped_sm_gbps": [0.0] + [float(x) for x in range(20, 201, 20)],
             "grouped_tile_us": [x / 2 for x in range(0, 25)]}
    for _ in range(3):
        for name, grid in grids.items():
            params = search(lambda p: mape(moe_errors(device, rows, counts, p, "calibration", "grouped")), params,
                            name, grid)
    return params


PREFILL_CAL = {(32, 8), (32, 32), (8, 1)}


def prefill_candidate(rows, eff, floor_us, tile):
    """[(which, relative error, row)] of the candidate: time = floor + causal tile work / (clock-scaled bf16 peak x
    eff), where query tile i of n = ceil(s / tile) computes i + 1 key tiles (the diagonal one in full): at s = tile
    the whole square, 2x the causal FLOPs."""
    import math
    out = []
    for r in rows:
        b, hq, s, d = (int(r[k]) for k in ("b", "hq", "s", "d"))
        peak = 132 * 4096 * float(r["sm_mhz"] or 1980) * 1e6     # H200 preset: 132 SMs x 4096 bf16 FLOP/clock
        n = math.ceil(s / tile)
        got = floor_us * 1e-6 + b * hq * n * (n + 1) / 2 * tile * tile * d * 4 / (peak * eff)
        t = float(r["seconds"])
        which = "calibration" if (int(r["hq"]), int(r["hkv"])) in PREFILL_CAL else "held-out"
        out.append((which, (got - t) / t, r))
    return out


def prefill_report(rows):
    def cal_mape(p):
        return mape([e for e in prefill_candidate(rows, *p) if e[0] == "calibration"])
    grid = [(eff / 100, fl, tile) for eff in range(40, 81) for fl in range(0, 21) for tile in (1, 64, 128)]
    best = min(grid, key=cal_mape)
    no_tile = min((g for g in grid if g[2] == 1), key=cal_mape)
    for name, p in (("diagonal tiles", best), ("no tile waste", no_tile)):
        errs = prefill_candidate(rows, *p)
        cal = [e for e in errs if e[0] == "calibration"]
        held = [e for e in errs if e[0] == "held-out"]
        print(f"  prefill candidate ({name}: eff {p[0]:.2f}, floor {p[1]} us, tile {p[2]}): calibration "
              f"{mape(cal):.1f}% (max {100 * max(abs(e) for _, e, _ in cal):.0f}%), held out {mape(held):.1f}% "
              f"(max {100 * max(abs(e) for _, e, _ in held):.0f}%)")


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
    bf16 = [r for r in big_dec if r["kv_dtype"] == "bf16"]
    params = search(lambda p: mape(decode_errors(device, bf16, p, "calibration", "paged")), params,
                    "paged_bw_eff", [x / 100 for x in range(40, 101)])
    # FP8 KV: the Triton split-K kernel dequantizes in registers and reads FP8 bytes at well under half the rate of
    # bf16 ones (its time is 1.1-1.4x the bf16 kernel's on half the bytes): its own attained bandwidth
    fp8 = [r for r in big_dec if r["kv_dtype"] == "fp8"]
    params = search(lambda p: mape(decode_errors(device, fp8, p, "calibration", "paged")), params,
                    "paged_fp8_bw_eff", [x / 100 for x in range(20, 101)])
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


# parameters written where they lower their kernels' held-out error. decode_bw_eff / decode_attn_floor_us are fitted
# and reported but not written: they are PyTorch SDPA's decode (no split-K: 2.1-4.4 TB/s), which no serving stack
# runs; the `fused` profile's flash-decoding kernel is closer to the split-K kernel (paged_bw_eff)
FAMILY = {"mm_eff_fp8": ("gemm fp8_tensor", "gemm fp8_tensor_fastacc"), "fp8_row_us": ("gemm fp8_row",),
          "paged_bw_eff": ("decode paged/bf16",), "paged_fp8_bw_eff": ("decode paged/fp8",),
          "moe_topk_us": ("moe router",), "grouped_mm_eff": ("moe grouped",), "grouped_bw_eff": ("moe grouped",),
          "grouped_sm_gbps": ("moe grouped",), "grouped_tile_us": ("moe grouped",)}


def groups(device, gemm, dec, pre, params, moe=(), counts=None):
    """{(calibration|held-out, kernel family): [|relative error|]} with the preset's calibration plus `params`."""
    out = {}
    for which in ("calibration", "held-out"):
        for kind, e, _ in gemm_errors(device, gemm, params, which):
            out.setdefault((which, f"gemm {kind}"), []).append(abs(e))
        for kernel in ("sdpa", "paged"):
            for kind, e, _ in decode_errors(device, dec, params, which, kernel):
                out.setdefault((which, f"decode {kind}"), []).append(abs(e))
    for kind, e, _ in prefill_errors(device, pre, params):
        out.setdefault(("held-out", "prefill attention"), []).append(abs(e))
    for which in ("calibration", "held-out") if moe else ():
        for impl in ("router", "loop", "grouped", "layer-loop", "layer-grouped"):
            for kind, e, _ in moe_errors(device, moe, counts, params, which, impl):
                out.setdefault((which, f"moe {kind}"), []).append(abs(e))
    return out


def improved(before, after):
    """The fitted parameters whose kernel families' held-out MAPE went down (the others are not written)."""
    keep = []
    for name, fams in FAMILY.items():
        b = [statistics.mean(before[("held-out", f)]) for f in fams if ("held-out", f) in before]
        a = [statistics.mean(after[("held-out", f)]) for f in fams if ("held-out", f) in after]
        if a and b and sum(a) < sum(b):
            keep.append(name)
    return keep


def moe_notes(device, rows, counts, params):
    """The load-imbalance hypotheses on the grouped GEMM, and the loop's host cost (modelled, not measured here)."""
    from hw_models.host import HostModel, default_host
    from hw_models.moe import MoELayer, kernels, layer_time
    for rule in ("tiles", "max"):
        cal = mape(moe_errors(device, rows, counts, params, "calibration", "grouped", rule))
        held = mape(moe_errors(device, rows, counts, params, "held-out", "grouped", rule))
        print(f"  grouped GEMM imbalance rule {rule:5s}: calibration {cal:.1f}%  held out {held:.1f}%"
              + ("  (each expert's own tiles)" if rule == "tiles" else "  (every expert padded to the most loaded)"))
    model, host = GPUModel(device, profile="eager", params=params), HostModel(default_host(device))
    print("  MoE layer, CUDA graph vs host-issued (one sync for the counts + per-kernel launches; modelled, the "
          "measured runs are graphs):")
    cfg = {r["config"]: r for r in rows if r["impl"] == "loop"}
    for name, r in cfg.items():
        for T in (1, 128):
            c = counts[(name, "uniform", T)]
            layer = MoELayer(T, int(r["hidden"]), int(r["ffn"]), int(r["top_k"]), tuple(c))
            g = {impl: layer_time(kernels(model, layer, impl, 1980)) for impl in ("loop", "grouped")}
            h = {impl: layer_time(kernels(model, layer, impl, 1980), host) for impl in ("loop", "grouped")}
            print(f"    {name:17s} T={T:<4d} loop {g['loop']['total'] * 1e6:7.0f} -> {h['loop']['total'] * 1e6:7.0f} us"
                  f"   grouped {g['grouped']['total'] * 1e6:6.0f} -> {h['grouped']['total'] * 1e6:6.0f} us")


def write_params(device, params, folder, env):
    """Write kernel parameters into the preset's calibration params, with a comment naming the data."""
    from hw_models.presets import alias_table
    path = alias_table()[device.id]
    head, sep, block = path.read_text().partition("\n  params:\n")
    def stale(ln):   # a source comment of an earlier write whose parameters are all rewritten now
        head = ln.strip()
        if not head.startswith("# stack kernels:"):
            return False
        names = head[len("# stack kernels:"):].split(" measured here")[0]
        return all(n.strip() in params for n in names.split(","))
    lines = [ln for ln in block.splitlines() if ln.split(":")[0].strip() not in params and not stale(ln)]
    lines += [f"    # stack kernels: {', '.join(params)} measured here, benchmarks/gpu/fit_stack.py on "
              f"benchmarks/gpu/data/{folder.name} ({env['device']}, {env['date'][:10]})"]
    lines += [f"    {k}: {v}" for k, v in params.items()]
    path.write_text(head + sep + "\n".join(lines) + "\n")
    print(f"  wrote {', '.join(params)} to {path}")


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
        print(f"\n{folder.name}: {env['device']} on {env.get('hostname', '?')} ({env.get('cpu', '?')}), "
              f"{env['date']}, torch {env['torch']}")
        print("  fitted:", {k: round(v, 3) for k, v in params.items()})
        gemm = read(folder, "gemm.csv")
        dec = read(folder, "attn_decode.csv")
        pre = read(folder, "attn_prefill.csv")
        moe = read(folder, "moe.csv")
        counts = moe_counts(moe) if moe else None
        if moe:
            params = fit_moe(device, moe, counts, params)
            print("  fitted (MoE):", {k: params[k] for k in params if k.startswith(("moe_", "grouped_"))})
        before = groups(device, gemm, dec, pre, {}, moe, counts)
        after = groups(device, gemm, dec, pre, params, moe, counts)
        print(f"  {'':11s} {'kernel':22s} {'n':>4s}   {'preset MAPE':>11s}   {'fitted MAPE':>11s}  (max)")
        for key in sorted(after):
            b, a = before.get(key, [float("nan")]), after[key]
            summary[(folder.name,) + key] = (100 * statistics.mean(b), 100 * statistics.mean(a), len(a))
            print(f"  {key[0]:11s} {key[1]:22s} {len(a):4d}   {100 * statistics.mean(b):10.1f}%   "
                  f"{100 * statistics.mean(a):10.1f}%  ({100 * max(a):.0f}%)")
        if moe:
            moe_notes(device, moe, counts, params)
        if pre and preset == "h200":
            prefill_report(pre)
        better = improved(before, after)
        print("  fitted parameters that lower the held-out error of their kernels:",
              {k: params[k] for k in better} or "none")
        if write and better:
            write_params(device, {k: params[k] for k in better}, folder, env)
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
