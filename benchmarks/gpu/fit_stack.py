"""Fit and check the serving-stack kernel parameters of the GPU model on benchmarks/gpu/measure_stack.py data.

Each kernel family is split into a calibration set (shapes the parameters are fitted on) and a held-out set
(other models' shapes), fixed here so that the held-out error is never fitted to itself:
  GEMMs        calibration: llama8b.*, llama70b.*, mixtral.*  held out: llama70b-tp8.*, llama13b.*, qwen7b.*
               fitted: mm_even_waves (the wave rule, hw_models/gpu.py gemm_time: whole waves after split-K or the
               tiles spread evenly over the SMs; the better on the bf16 calibration rows), then under it
               mm_eff_fp8 (per-tensor); per-row scales: fp8_row_eff, fp8_row_sm_gbps, fp8_row_tile_us, fp8_row_us
               (torch's rowwise kernel, no split-K: hw_models/gpu.py row_scaled_gemm), at the SM clock NVML read
               during the timing where there is one (large shapes), else with the power cap in the loop
  decode attn  calibration: (hq, hkv) in (32, 8), (32, 32), (8, 1)  held out: (64, 8), (28, 4), (32, 1)
               fitted: decode_bw_eff (flash), paged_bw_eff (paged split-K, bf16 KV), paged_fp8_bw_eff (the same
               kernel on FP8 KV: it dequantizes in registers and reads FP8 bytes at well under half the bf16 rate),
               decode_attn_floor_us; paged_tile_eff, paged_row_ns (the split-K kernel's query tiles, hw_models/gpu.py
               splitk_tile_s) where calibration rows run tiles of more than 16 rows: the H100's come from the extra
               paged calibration rows of EXTRA_DECODE_CAL (data/h100-2026-12-06-lease8-kernels: (64, 2), (128, 4),
               (16, 1), (64, 4)); the held-out layouts stay those above
  prefill attn head_dim 128: calibration (hq, hkv) in (32, 8), (32, 32), (8, 1)  held out (64, 8), (28, 4)
               (attn_eff, attn_floor_us come from benchmarks/gpu/fit.py); the causal-tile model (each causal query
               tile computes its diagonal key tile in full, own efficiency and floor, a cost per wave of its CTAs,
               a share of its longest CTA beyond the SMs' share of the work; hw_models/gpu.py attn_causal_tile /
               attn_causal_eff / attn_causal_floor_us / attn_causal_wave_us / attn_causal_tail, mirrored in
               gpu_table.py) fitted through the GPU model (fit_prefill: the efficiency and floor at each cost per
               wave and tail of a grid, the best on the calibration rows); prefill_errors prices the rows
  head sizes   d = 64, 96, 256 (attn_prefill.csv where measured, H100 2026-12-06): calibration (hq, hkv) = (32, 8)
               held out (32, 32) and every row of attn_prefill-headdims-repeat.csv (the same shapes in a later
               lease); fitted: attn_rel_d64 / attn_rel_d96 / attn_rel_d256 (hw_models/gpu.py head_dim_factor: the
               kernel's rate relative to d = 128), one at a time on the d = 128 fit; written where the held-out
               error at that head size drops against the same model without the factor
  MoE          calibration: mixtral-8x7b  held out: qwen1.5-moe, deepseek-v2-lite (every routing and token count)
               hwsim's layer (hw_models/moe.py: router, permutation, experts, un-permutation) per implementation
               (loop, grouped) with each row's expert counts, regenerated from measure_stack.py's seeded routing
               (checked against the CSV's active-expert and max-rows columns); fitted: moe_topk_us, moe_topk_row_ns
               (the router's top-k kernel: fixed cost and cost per token row), grouped_mm_eff / grouped_bw_eff / grouped_sm_gbps / grouped_tile_us (the grouped GEMM);
               the per-expert loop is the plain GEMM model and kernel floors (nothing fitted)
  MoE grouped  where the GPU has a moe grid (below) its grouped rows join Mixtral's grouped rows as the grouped GEMM's
               calibration set (one MAPE over both), and so do a wide grid's (data/*-moe-grid-wide/moegrid-wide.csv:
               measure_stack.py --parts moegrid-wide, 512-2,048 rows per expert and groups with no rows; its loop
               rows join the loop's calibration); the held-out rows stay qwen1.5-moe's and deepseek-v2-lite's. The
               coordinate search runs from the preset's numbers and from the other Hopper preset's; the fit of the
               lower calibration MAPE is kept (fit_moe). The
               grid alone (every model's rows held out, as for the loop) was tried on 2026-12-07 and not taken: its
               small experts (up to 4096x3584) want grouped_mm_eff 0.50-0.55 and price Mixtral's 4096x14336 experts 15-20%
               too slow (held-out over all three models H200 11.0 -> 11.6%, H100 7.9 -> 9.8%; docs/stack-accuracy.md)
  MoE loop     where the GPU has a loop grid (data/*-moe-grid/moegrid.csv: measure_stack.py --parts moegrid, the
               per-expert loop alone over small expert FFNs, 1/4/16 experts x 1-256 rows each) the loop's numbers
               are fitted on the grid alone and every real model's loop and layer-loop row in moe.csv is held out
               (Mixtral's too): its in-graph kernel floor (moe_loop_floor_us; held where the preset has one, the
               H100's measured by measure_replay.py), its GEMMs' weight stream (moe_loop_bw_eff) and their cost per
               row beyond the first up to cuBLAS's small-M limit (moe_loop_small_m, moe_loop_row_us: the H100 grid's
               loop rises 1.0-1.3 us per row per expert from 1 to 16 rows and falls back at 32; dense decode GEMMs
               show no such rise) (hw_models/moe.py loop_floor_us, _loop_gemm_s, _loop_rows_s); else nothing is
               fitted for the loop
  MoE router   where the GPU has a router grid (data/*-router-grid/router.csv: measure_stack.py --parts router, the
               router alone over 8-160 experts, top-1..8, 1-4096 tokens) the router's numbers are fitted on the grid
               (calibration; moe_topk_sort, moe_topk_warp_us, moe_topk_warp_ns too: hw_models/moe.py topk_s) and
               every real model's router row in moe.csv (Mixtral's too) is held out; else on Mixtral as above
--write writes a fitted parameter into the preset only where its kernels' held-out error drops, and then only if
  the independent checks where they exist do not get worse: the prefill-attention groups (causal tiles, head sizes)
  on `hwsim validate`'s whole prefill steps of that GPU (step_gate), the other kernel numbers on the published
  TensorRT-LLM rows of benchmarks/stack_accuracy.py (published_gate: H100, A100). Each group goes under its own
  source comment (data folder, GPU, date); groups other fits wrote are kept (fit.py's convention).
  Which published rows gate: the v0.6.1 rows were measured with TensorRT-LLM v0.6.1, which hwsim models as the
  `trtllm-0.6` stack profile; a kernel number is gated on that profile's mean error over them (PUBLISHED_GATE).
  The `trtllm` (today's TensorRT-LLM: XQA decode that shares KV heads, which v0.6 did not) and `fused` profiles are
  other stacks: their error on rows published with v0.6.1 is what those stacks do differently (their 70B TP2/TP4
  rows are 17-112% too fast whatever the GEMM numbers), not evidence about a kernel, so they are printed beside the
  gate for information only (until 2026-12-06 the gate was the mean over all three, which refused H100 mm_eff_fp8
  for the other stacks' rows while the trtllm-0.6 rows barely moved).
usage: python3 benchmarks/gpu/fit_stack.py [--data DIR ...] [--device PRESET] [--check | --write] [--head-dims-from DIR]
       (default: every benchmarks/gpu/data/*-stack folder, the preset by the GPU env.json names: h100 or h200)
       H100: --data benchmarks/gpu/data/h100-2026-12-06-stack --write
       H200: --data benchmarks/gpu/data/h200-2026-12-06-stack --head-dims-from benchmarks/gpu/data/h100-2026-12-06-stack
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
from hw_models.gpu import GPUModel, sdpa_flash_decode  # noqa: E402
from hw_models.power import PowerModel  # noqa: E402
from workloads.graph import Op  # noqa: E402

DATA = ROOT / "benchmarks" / "gpu" / "data"
GEMM_CAL = ("llama8b.", "llama70b.", "mixtral.")
DECODE_CAL = {(32, 8), (32, 32), (8, 1)}
DECODE_HELD = {(64, 8), (28, 4), (32, 1)}
# further paged-decode rows measured for calibration only, per preset (folders under data/ that do not end in
# -stack): their paged split-K rows join the calibration set of that GPU's paged kernel (their SDPA rows do not:
# the folder was measured for the paged kernel's query tiles, and the SDPA fits set decode_attn_floor_us, which
# every decode kernel pays); a row of a held-out layout there would be dropped (none is). H100: (64, 2), (128, 4)
# (32-row query tiles), (16, 1), (64, 4) (16 rows), bf16 and FP8 KV
EXTRA_DECODE_CAL = {"h100": ("h100-2026-12-06-lease8-kernels",)}
MOE_CAL = ("mixtral-8x7b",)


def datasets(folders=None, preset=None):
    """[(folder, preset)] of the stack measurements (`folders`, default every data/*-stack folder), each with
    `preset` or the one the GPU named in its env.json calls for (h200, else h100). With `preset` and no `folders`,
    only the folders measured on that preset's GPU: another GPU's rows priced with this preset would propose (and
    --write would write) numbers fitted to the other GPU; name such a folder with --data to transfer on purpose."""
    out = []
    envs = [Path(f) / "env.json" for f in folders] if folders else sorted(DATA.glob("*-stack/env.json"))
    for env in envs:
        if not env.is_file():
            raise SystemExit(f"fit_stack.py: no env.json in {env.parent}")
        name = json.loads(env.read_text())["device"]
        own = "h200" if "H200" in name else "h100"
        if preset and not folders and load_device(preset).id != load_device(own).id:
            continue
        out.append((env.parent.resolve(), preset or own))
    return out


def read(folder, name):
    path = Path(folder) / name
    return list(csv.DictReader(open(path))) if path.is_file() else []


def read_decode(folder, preset):
    """attn_decode.csv of the stack folder plus the preset's extra paged calibration rows (EXTRA_DECODE_CAL, marked
    `extra`; SDPA rows and rows of a held-out layout left out)."""
    rows = read(folder, "attn_decode.csv")
    for name in EXTRA_DECODE_CAL.get(preset, ()):
        extra = read(DATA / name, "attn_decode.csv")
        if not extra:
            raise SystemExit(f"fit_stack.py: no attn_decode.csv in {DATA / name}")
        rows += [{**r, "extra": name} for r in extra
                 if not r["kernel"].startswith("sdpa") and (int(r["hq"]), int(r["hkv"])) not in DECODE_HELD]
    return rows


def tile_rows(r):
    """The split-K kernel's query-tile rows of a decode row: its KV group rounded up to a power of two, >= 16."""
    g = -(-int(r["hq"]) // int(r["hkv"]))
    return max(16, 1 << (g - 1).bit_length())


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
    name = "fused" if kernel == "sdpa" else "triton-splitk"
    model = GPUModel(device, profile=name, params=params)
    out = []
    for r in rows:
        if (kernel == "sdpa") != r["kernel"].startswith("sdpa"):
            continue
        cal = (int(r["hq"]), int(r["hkv"])) in DECODE_CAL or bool(r.get("extra"))
        if (which == "calibration") != cal:
            continue
        t = float(r["seconds"])
        if kernel == "sdpa" and model.p.get("sdpa_tile_eff", 0) > 0:
            # torch SDPA's flash backend, as the rows ran it (hw_models/gpu.py sdpa_flash_decode)
            c, m, o = sdpa_flash_decode(model, *(int(r[k]) for k in ("b", "hq", "hkv", "ctx", "d")),
                                        float(r["sm_mhz"] or 1980))
            out.append((f"{kernel}/{r['kv_dtype']}", (max(c, m) + o - t) / t, r))
            continue
        op = decode_op(r, 1 if r["kv_dtype"] == "fp8" else 2)
        out.append((f"{kernel}/{r['kv_dtype']}", (model.cost(op, 1980).time_s - t) / t, r))
    return out


def prefill_errors(device, rows, params, which=None):
    """[(family, relative error, row)] of causal prefill rows through the GPU model (fused profile, each row at its
    NVML clock). family: "prefill attention" (d = 128), "prefill d=D" (other head sizes), "prefill d=D repeat"
    (rows of the repeat file, marked `repeat`); `which`: calibration or held-out rows only (prefill_split)."""
    from workloads.modules.attention_op import attention_flops
    model = GPUModel(device, profile="fused", params=params)
    out = []
    for r in rows:
        if which is not None and prefill_split(r) != which:
            continue
        b, hq, hkv, s, d = (int(r[k]) for k in ("b", "hq", "hkv", "s", "d"))
        flops = attention_flops((b, hq, s, d), (b, hkv, s, d), d)
        op = Op(0, "attn", "attention", None, 1, (), (), "bf16", flops,
                {"activation": 2 * (2 * b * hq * s * d) + 2 * 2 * b * hkv * s * d},
                attrs=dict(b=b, hq=hq, hkv=hkv, sq=s, sk=s, d=d, dv=d, causal=True, window=0))
        t = float(r["seconds"])
        fam = "prefill attention" if d == 128 else f"prefill d={d}" + (" repeat" if r.get("repeat") else "")
        out.append((fam, (model.cost(op, float(r["sm_mhz"] or 1980)).time_s - t) / t, r))
    return out


def prefill_split(r):
    """calibration or held-out: d = 128 by head layout (PREFILL_CAL), other head sizes (32, 8) against (32, 32),
    the repeat file's rows all held out."""
    layout = (int(r["hq"]), int(r["hkv"]))
    if r.get("repeat"):
        return "held-out"
    if int(r["d"]) == 128:
        return "calibration" if layout in PREFILL_CAL else "held-out"
    return "calibration" if layout == HEAD_DIM_CAL else "held-out"


def read_prefill(folder):
    """attn_prefill.csv, then the repeat file's rows (attn_prefill-headdims-repeat.csv, marked `repeat`)."""
    return read(folder, "attn_prefill.csv") + [dict(r, repeat="1")
                                               for r in read(folder, "attn_prefill-headdims-repeat.csv")]


HEAD_DIMS = (64, 96, 256)
# the causal-tile model's tail (gpu.py causal_tail_s): the share of the longest CTA's time beyond the SMs' share of
# the work; 0 is the model every preset was fitted with before it (2026-12-07)
TAILS = (0.0, 0.25, 0.5, 0.75, 1.0)


def fit_prefill(device, rows, params):
    """The causal-tile model on the d = 128 calibration rows (coordinate search through the GPU model), then each
    head size's efficiency relative to d = 128 on its (32, 8) rows (one number per head size)."""
    rows128 = [r for r in rows if int(r["d"]) == 128 and not r.get("repeat")]
    if rows128:
        def obj(p):
            return mape(prefill_errors(device, rows128, p, "calibration"))
        best = None
        # the cost per wave and the longest CTA's tail trade against the floor and the efficiency: each pair of
        # their grids, the efficiency and floor fitted at it
        for tile in (64, 128):
            for wave in [x / 2 for x in range(0, 7)]:
                for tail in TAILS:
                    p = {**params, "attn_causal_tile": tile, "attn_causal_eff": 0.6, "attn_causal_floor_us": 10.0,
                         "attn_causal_wave_us": wave, "attn_causal_tail": tail}
                    for _ in range(3):
                        last = dict(p)
                        p = search(obj, p, "attn_causal_eff", [x / 100 for x in range(40, 91)])
                        p = search(obj, p, "attn_causal_floor_us", [x / 2 for x in range(0, 41)])
                        if p == last:          # a pass that moved nothing: the next would not either
                            break
                    if best is None or obj(p) < obj(best):
                        best = p
        params = best
    for d in HEAD_DIMS:
        cal = [r for r in rows if int(r["d"]) == d and prefill_split(r) == "calibration"]
        if cal:
            params = search(lambda p: mape(prefill_errors(device, cal, p)), params, f"attn_rel_d{d}",
                            [x / 100 for x in range(30, 151)])
    return params


def head_dim_report(device, rows, params):
    """Per head size: MAPE of the preset, the fitted d = 128 model without the head-size factor, and with it; and
    the preset's own d = 128 model with the factor only (what a preset that keeps its attention gets)."""
    hd = {k: v for k, v in params.items() if k.startswith("attn_rel_d")}
    base = {k: v for k, v in params.items() if k not in hd}
    print("  prefill attention by head size (MAPE: preset | fitted d=128 model | + head-size factor || preset + "
          "head-size factor only):")
    for d in (128,) + HEAD_DIMS:
        for which, rep in (("calibration", False), ("held-out", False), ("held-out", True)):
            sel = [r for r in rows if int(r["d"]) == d and prefill_split(r) == which and bool(r.get("repeat")) == rep]
            if not sel:
                continue
            e = [mape(prefill_errors(device, sel, p)) for p in ({}, base, params, hd)]
            label = which + (" (repeat file)" if rep else "")
            print(f"    d={d:<4d} {label:26s} n={len(sel):3d}   {e[0]:5.1f}% | {e[1]:5.1f}% | {e[2]:5.1f}% || "
                  f"{e[3]:5.1f}%"
                  + (f"   attn_rel_d{d} {params[f'attn_rel_d{d}']}" if f"attn_rel_d{d}" in params else ""))


def instep_attention_runs(prefix, trace_fn=None):
    """[(folder, (config, impl, batch, prompt), attention op, NVML mean SM clock MHz, seconds per call)]: the prefill
    attention kernel inside whole steps, from the profiled runs of data/PREFIX-*/kernels.csv with a runs.csv beside
    them (benchmarks/gpu/prefill_clock_probe.py: per model, implementation and shape, the attention kernels' device
    time and calls), each with the traced step's attention op (`trace_fn`, default workloads.trace)."""
    if trace_fn is None:
        from workloads import trace as trace_fn
    out = []
    for runs_file in sorted(DATA.glob(f"{prefix}-*/runs.csv")):
        kern = read(runs_file.parent, "kernels.csv")
        if not kern or "class" not in kern[0]:
            continue
        clock = {(r["config"], r["impl"], r["batch"], r["prompt"]): float(r["avg_sm_mhz"]) for r in read(runs_file.parent,
                                                                                                        "runs.csv")}
        per = {}
        for r in kern:
            if r["class"] == "attention":
                key = (r["config"], r["impl"], r["batch"], r["prompt"])
                us, calls = per.get(key, (0.0, 0))
                per[key] = (us + float(r["us"]), calls + int(r["calls"]))
        for key, (us, calls) in per.items():
            op = next(o for o in trace_fn(key[0], "prefill", int(key[2]), int(key[3])).ops if o.kind == "attention")
            out.append((runs_file.parent.name, key, op, clock[key], us * 1e-6 / calls))
    return out


def instep_attention(device, params, prefix):
    """[(relative error, run)] of the prefill attention kernel inside whole steps (`instep_attention_runs`), each
    against the traced step's attention op through the GPU model (eager profile, at the run's clock). An independent
    check of the prefill-attention groups on the kernel the steps themselves run (device time: without the launch
    gap)."""
    model = GPUModel(device, params=params)
    return [((model.cost(op, f).time_s - t) / t, (folder,) + key)
            for folder, key, op, f, t in instep_attention_runs(prefix)]


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


_GRIDS = {}


def _grid_rows(device, suffix, csv_name):
    """The rows of every data/*-SUFFIX/CSV_NAME measured on `device`'s GPU (read from env.json), [] where none is."""
    key = (device.id, suffix)
    if key not in _GRIDS:
        rows = []
        for env in sorted(DATA.glob(f"*-{suffix}/env.json")):
            name = json.loads(env.read_text())["device"]
            if load_device("h200" if "H200" in name else "h100").id == device.id:
                rows += read(env.parent, csv_name)
        _GRIDS[key] = rows
    return _GRIDS[key]


def router_grid(device):
    """The router grid rows (measure_stack.py --parts router: data/*-router-grid/router.csv) measured on `device`'s
    GPU, [] where none is: the router's calibration set where there is one (then every real model's router row in
    moe.csv is held out)."""
    return _grid_rows(device, "router-grid", "router.csv")


def loop_grid(device):
    """The MoE loop grid rows (measure_stack.py --parts moegrid: data/*-moe-grid/moegrid.csv, the per-expert loop
    and the grouped GEMM of small expert FFNs at 1-16 experts x 1-256 rows each; and --parts moegrid-wide:
    data/*-moe-grid-wide/moegrid-wide.csv, 512-2048 rows per expert and grouped GEMMs with empty groups, column
    groups) measured on `device`'s GPU, []
    where none is: the loop's calibration set where there is one (then every real model's loop row in moe.csv is
    held out, Mixtral's too)."""
    return _grid_rows(device, "moe-grid", "moegrid.csv") + _grid_rows(device, "moe-grid-wide", "moegrid-wide.csv")


def loop_grid_errors(device, grid, params, impl="loop"):
    """[("loop grid" | "grouped grid", relative error, row)] of the loop grid's rows of `impl` (every active expert
    the same rows; the measured rows have no router, so hwsim's layer without its router part)."""
    from hw_models.moe import MoELayer, kernels, layer_time
    model = GPUModel(device, profile="eager", params=params)
    out = []
    for r in grid:
        if r["impl"] != impl:
            continue
        empty = int(r.get("groups") or r["experts"]) - int(r["experts"])     # moegrid-wide: groups with no rows
        layer = MoELayer(int(r["tokens"]), int(r["hidden"]), int(r["ffn"]), int(r["top_k"]),
                         (int(r["rows_per_expert"]),) * int(r["experts"]) + (0,) * empty)
        t = layer_time(kernels(model, layer, impl, float(r["sm_mhz"] or 1980)))
        meas = float(r["seconds"])
        out.append((f"{impl} grid", (t["total"] - t["router"] - meas) / meas, r))
    return out


def router_s(model, tokens, experts, top_k, hidden, clock_mhz):
    """hwsim's router (GEMM, fp32 copy, softmax, top-k: hw_models/moe.py kernels) of one layer, seconds."""
    from hw_models.moe import MoELayer, kernels, layer_time
    layer = MoELayer(tokens, hidden, 1, top_k, (0,) * experts)
    return layer_time([k for k in kernels(model, layer, "loop", clock_mhz) if k.part == "router"])["router"]


def grid_errors(device, grid, params):
    """[("router grid", relative error, row)] of the router grid rows (`router_grid`)."""
    model = GPUModel(device, profile="eager", params=params)
    out = []
    for r in grid:
        got = router_s(model, int(r["tokens"]), int(r["experts"]), int(r["top_k"]), int(r["hidden"]),
                       float(r["sm_mhz"] or 1980))
        out.append(("router grid", (got - float(r["seconds"])) / float(r["seconds"]), r))
    return out


def moe_errors(device, rows, counts, params, which, impl, rule="tiles"):
    """impl: router (the router alone), loop or grouped (permutation + experts + un-permutation, as measured:
    the router is its own row) or layer-loop / layer-grouped (router row + implementation row, the whole layer).
    The router where the device has a router grid (`router_grid`): calibration the grid's rows, held out every real
    model's router row (Mixtral's too); the loop likewise where it has a loop grid (`loop_grid`): calibration the
    grid's loop rows (the whole layer, router + loop, has none), held out every real model's loop and layer-loop
    rows; the grouped GEMM's calibration is Mixtral's grouped rows plus the grouped rows of a moe grid where the
    device has one ("grouped grid"; its held-out rows stay the other models')."""
    from hw_models.moe import MoELayer, kernels, layer_time
    model = GPUModel(device, profile="eager", params=params)
    router = {(r["config"], r["tokens"]): float(r["seconds"]) for r in rows if r["impl"] == "router"}
    base = impl.replace("layer-", "")
    grid = router_grid(device) if impl == "router" else loop_grid(device) if base == "loop" else []
    if grid and which == "calibration":
        if impl == "router":
            return grid_errors(device, grid, params)
        return loop_grid_errors(device, grid, params) if impl == "loop" else []
    # the grouped GEMM: a moe grid's grouped rows join Mixtral's as calibration (the held-out rows are unchanged)
    out = loop_grid_errors(device, loop_grid(device), params, "grouped") \
        if impl == "grouped" and which == "calibration" else []
    for r in rows:
        if r["impl"] != base or (not grid and (which == "calibration") != r["config"].startswith(MOE_CAL)):
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
    """Calibration rows only: the router's top-k cost (on the device's router grid where it has one, else on
    Mixtral's router rows), then the grouped GEMM's four numbers by coordinate search (Mixtral's rows and a moe
    grid's grouped rows where the device has one)."""
    # the top-k's fixed cost and its cost per row (torch's top-k over many short rows); on a router grid (several
    # expert counts and top-k) also its cost per warp of its block, per call and per row, and the sort of the k
    # results as its own kernel (hw_models/moe.py topk_s): Mixtral's rows (8 experts: one warp, top-2) identify
    # neither
    grids = {"moe_topk_us": [x / 2 for x in range(0, 41)], "moe_topk_row_ns": [x / 2 for x in range(0, 21)]}
    if router_grid(device):
        grids = {"moe_topk_sort": [0, 1], **grids, "moe_topk_warp_us": [x / 4 for x in range(0, 41)],
                 "moe_topk_warp_ns": [x / 4 for x in range(0, 41)], "moe_sort_us": [x / 4 for x in range(0, 25)],
                 "moe_router_unaligned_gbps": [0.0] + [float(x) for x in range(500, 10001, 500)]}
    for _ in range(3):
        for name, grid in grids.items():
            params = search(lambda p: mape(moe_errors(device, rows, counts, p, "calibration", "router")), params,
                            name, grid)
    grids = {"grouped_mm_eff": [x / 100 for x in range(50, 96, 5)], "grouped_bw_eff": [x / 100 for x in range(30, 96, 5)],
             "grouped_sm_gbps": [0.0] + [float(x) for x in range(20, 201, 20)],
             "grouped_tile_us": [x / 2 for x in range(0, 25)]}
    # the search is start-dependent (the H200's grid + Mixtral rows have two optima, a tile cost of 2.0 and 3.5 us):
    # it runs from the preset's numbers and from the other Hopper preset's (the same SM runs the same CUTLASS grouped
    # kernel), and the fit of the lower calibration MAPE is kept (the preset's start where equal)
    def obj(p):
        return mape(moe_errors(device, rows, counts, p, "calibration", "grouped"))
    starts = [params]
    for other in (load_device(name) for name in ("h100", "h200")):
        if other.id != device.id:
            op = GPUModel(other).p
            starts.append({**params, **{k: op[k] for k in grids if k in op}})
    fits = []
    for start in starts:
        for _ in range(3):
            for name, grid in grids.items():
                start = search(obj, start, name, grid)
        fits.append(start)
    params = min(fits, key=obj)
    if loop_grid(device):
        params = fit_loop(device, params)
    return params


# the per-expert loop's numbers (hw_models/moe.py loop_floor_us, _loop_gemm_s, _loop_rows_s), fitted on a loop grid
# only: the in-graph floor of each of the loop's kernels, the weight stream of its few-row GEMMs and their cost per
# row beyond the first up to a small-M limit (the limit one of the grid's row counts; 0: no such cost). The GEMMs'
# own fixed cost beyond the floor (mm_floor_us, fit.py's) is not refitted: every expert runs 5 elementwise and 3 GEMM
# kernels, so the grid sees 8 x floor + 3 x GEMM cost per expert and the floor alone once per layer (its zeros), which
# does not separate the two; for that reason a floor the preset already carries (the H100's, measured directly by
# measure_replay.py: a tiny kernel's time per call in a CUDA graph) is held, not refitted (LOOP_HELD)
LOOP_GRIDS = {"moe_loop_floor_us": [x / 20 for x in range(0, 61)],
              "moe_loop_bw_eff": [None] + [x / 100 for x in range(30, 101, 5)],
              "moe_loop_small_m": [0, 4, 8, 16, 32, 64],
              "moe_loop_row_us": [x / 50 for x in range(0, 51)]}
LOOP_HELD = ("moe_loop_floor_us",)


def fit_loop(device, params):
    """The loop's numbers of LOOP_GRIDS on the loop grid's rows alone (`loop_grid`; every real model's loop row is
    held out), every combination of the grids (LOOP_HELD numbers the device's preset has: that value alone). A row's
    time is linear in the floor (its kernel count times it) and in the per-row cost (its GEMMs' rows beyond the first
    at or under the limit), so each bandwidth and limit prices the grid with these at 0 and 1 and the rest is
    arithmetic. A bandwidth of None (the plain GEMM's bw_eff) is not written (absent from the result), nor the
    per-row numbers where the best limit or cost is 0."""
    import numpy as np
    grid = [r for r in loop_grid(device) if r["impl"] == "loop"]
    meas = np.array([float(r["seconds"]) for r in grid])
    preset = GPUModel(device).p
    grids = {k: ([preset[k]] if k in LOOP_HELD and preset.get(k) is not None else v) for k, v in LOOP_GRIDS.items()}
    floors = np.array(grids["moe_loop_floor_us"]) * 1e-6
    row_us = np.array(grids["moe_loop_row_us"]) * 1e-6
    def priced(p):
        return np.array([meas[i] * (1 + e) for i, (_, e, _) in enumerate(loop_grid_errors(device, grid, p))])
    rows0 = {**params, "moe_loop_small_m": 0, "moe_loop_row_us": 0.0}
    # each row's kernel count (the zeros, then 8 per expert): its time per us of floor
    n = np.rint((priced({**rows0, "moe_loop_floor_us": 1.0}) - priced({**rows0, "moe_loop_floor_us": 0.0})) * 1e6)
    # per limit: each row's GEMM rows beyond the first at or under it, its time per us of per-row cost
    per_limit = {}
    for lim in grids["moe_loop_small_m"]:
        base = {**rows0, "moe_loop_floor_us": 0.0, "moe_loop_small_m": lim}
        per_limit[lim] = np.rint((priced({**base, "moe_loop_row_us": 1.0}) - priced(base)) * 1e6)
    best = (float("inf"),)
    for eff in grids["moe_loop_bw_eff"]:
        t0 = priced({**rows0, "moe_loop_floor_us": 0.0, "moe_loop_bw_eff": eff})
        tf = t0[None, :] + floors[:, None] * n[None, :]                       # [floor, grid row]
        for lim, r in per_limit.items():
            err = np.abs((tf[:, None, :] + row_us[None, :, None] * r) / meas - 1).mean(axis=-1)
            i, j = np.unravel_index(int(np.argmin(err)), err.shape)
            if err[i, j] < best[0]:
                best = (err[i, j], grids["moe_loop_floor_us"][i], eff, lim, grids["moe_loop_row_us"][j])
    _, floor, eff, lim, rus = best
    out = {**params, "moe_loop_floor_us": floor}
    if eff is not None:
        out["moe_loop_bw_eff"] = eff
    if lim and rus:
        out.update(moe_loop_small_m=lim, moe_loop_row_us=rus)
    return out


PREFILL_CAL = {(32, 8), (32, 32), (8, 1)}
HEAD_DIM_CAL = (32, 8)


def prefill_candidate(rows, eff, floor_us, tile):
    """[(which, relative error, row)] of the candidate: time = floor + causal tile work / (clock-scaled bf16 peak x
    eff), where query tile i of n = ceil(s / tile) computes i + 1 key tiles (the diagonal one in full): at s = tile
    the whole square, 2x the causal FLOPs."""
    import math
    out = []
    for r in rows:
        b, hq, s, d = (int(r[k]) for k in ("b", "hq", "s", "d"))
        peak = 132 * 4096 * float(r["sm_mhz"] or 1980) * 1e6     # H100/H200 presets: 132 SMs x 4096 bf16 FLOP/clock
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


def fit(device, folder, verbose=True, dec=None):
    """`dec`: the decode rows (read_decode: the folder's plus the GPU's extra calibration rows; default the
    folder's attn_decode.csv alone)."""
    params = {}
    gemm = read(folder, "gemm.csv")
    # the GEMM wave rule (hw_models/gpu.py gemm_time: whole waves after split-K, or the tiles spread evenly over the
    # SMs), the one of the two with the lower bf16 calibration error at the preset's mm_eff (fit.py's number)
    b16 = [r for r in gemm if r["variant"] == "bf16"]
    params = search(lambda p: mape(gemm_errors(device, b16, p, "calibration")), params, "mm_even_waves",
                    [0, 1])
    fp8 = [r for r in gemm if r["variant"] == "fp8_tensor"]
    big = lambda rows: [r for r in rows if int(r["m"]) >= 1024]   # noqa: E731
    # the 8-bit GEMM's rate and the share of its output stored after its K loop (hw_models/gpu.py
    # gemm_epilogue_s) on the large calibration shapes: at each share of a grid, the rate fitted; the best pair
    def at_share(rel):
        return search(lambda p: mape(gemm_errors(device, big(fp8), p, "calibration")), {**params, "mm_epilogue_fp8": rel},
                      "mm_eff_fp8", [x / 100 for x in range(50, 101, 2)])
    params = min((at_share(x / 10) for x in range(0, 11)),
                 key=lambda p: mape(gemm_errors(device, big(fp8), p, "calibration")))
    # FP8 with per-row scales: torch's rowwise kernel (no split-K; hw_models/gpu.py row_scaled_gemm), its own
    # rate, per-SM operand stream, cost per wave and fixed epilogue cost, by coordinate search
    row = [r for r in gemm if r["variant"] == "fp8_row"]
    params.update({"fp8_row_eff": 0.86, "fp8_row_sm_gbps": 0.0, "fp8_row_us": 2.5, "fp8_row_tile_us": 0.0})
    grids = {"fp8_row_eff": [x / 100 for x in range(60, 101, 2)],
             "fp8_row_sm_gbps": [0.0] + [float(x) for x in range(20, 201, 10)],
             "fp8_row_us": [x / 2 for x in range(0, 17)], "fp8_row_tile_us": [x / 4 for x in range(0, 25)]}
    for _ in range(3):
        for name, grid in grids.items():
            params = search(lambda p: mape(gemm_errors(device, row, p, "calibration")), params, name, grid)
    dec = read(folder, "attn_decode.csv") if dec is None else dec
    big_dec = [r for r in dec if int(r["kv_bytes"]) >= 64e6]
    # decode_bw_eff and decode_attn_floor_us are fitted on the SDPA rows priced as the fused profile's decode (bytes
    # over the bandwidth plus the floor: sdpa_tile_eff 0), as before sdpa_flash_decode; the SDPA backend's own
    # numbers after them
    params["sdpa_tile_eff"] = 0.0
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
    # the split-K kernel's query tiles (hw_models/gpu.py splitk_tile_s: padded tile FLOPs at paged_tile_eff of the
    # bf16 peak, one CTA's key blocks x rows x paged_row_ns), identified only where calibration rows run 32-row
    # tiles (at 16 rows both bounds stay under the KV stream); fitted with the two KV rates again under them, on
    # every paged calibration row (bf16 and FP8 KV) for the tile numbers
    paged = [r for r in dec if not r["kernel"].startswith("sdpa")]
    if any(tile_rows(r) > 16 for r in paged if (int(r["hq"]), int(r["hkv"])) in DECODE_CAL or r.get("extra")):
        params.update({"paged_tile_eff": 0.08, "paged_row_ns": 50.0})
        both = lambda p: mape(decode_errors(device, paged, p, "calibration", "paged"))   # noqa: E731
        for _ in range(3):
            params = search(both, params, "paged_tile_eff", [x / 1000 for x in range(40, 201, 2)])
            params = search(both, params, "paged_row_ns", [float(x) for x in range(0, 201, 5)])
            params = search(lambda p: mape(decode_errors(device, bf16, p, "calibration", "paged")), params,
                            "paged_bw_eff", [x / 100 for x in range(40, 101)])
            params = search(lambda p: mape(decode_errors(device, fp8, p, "calibration", "paged")), params,
                            "paged_fp8_bw_eff", [x / 100 for x in range(20, 101)])
    # torch SDPA's flash decode as the rows ran it (hw_models/gpu.py sdpa_flash_decode: split-KV heuristic, padded
    # query tiles, combine kernel), under the floor just fitted: its bandwidth fraction, tile rate, combine rate
    params.update({"sdpa_tile_eff": 0.35, "sdpa_bw_eff": 0.9, "sdpa_combine_gbps": 10.0})
    grids = {"sdpa_bw_eff": [x / 100 for x in range(60, 101)], "sdpa_tile_eff": [x / 100 for x in range(15, 71)],
             "sdpa_combine_gbps": [float(x) for x in range(2, 41)]}
    for _ in range(3):
        for name, grid in grids.items():
            params = search(lambda p: mape(decode_errors(device, dec, p, "calibration", "sdpa")), params, name, grid)
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


# parameters written where they lower their kernels' held-out error. decode_bw_eff is fitted and reported but not
# written: it is PyTorch SDPA's decode (no split-K: 2.1-4.4 TB/s), which no serving stack runs; the `fused` profile's
# flash-decoding kernel is closer to the split-K kernel (paged_bw_eff). decode_attn_floor_us (fitted on the SDPA rows)
# is every serving decode kernel's fixed cost, the paged ones' too: judged on those (without it the fused profile
# falls back to attn_floor_us, fit.py's prefill number: 10 us on the H200, 1.5 us on the H100)
FAMILY = {"mm_even_waves": ("gemm bf16", "gemm fp8_tensor", "gemm fp8_tensor_fastacc"),
          "mm_eff_fp8": ("gemm fp8_tensor", "gemm fp8_tensor_fastacc"),
          "mm_epilogue_fp8": ("gemm fp8_tensor", "gemm fp8_tensor_fastacc"), "fp8_row_us": ("gemm fp8_row",),
          "fp8_row_eff": ("gemm fp8_row",), "fp8_row_sm_gbps": ("gemm fp8_row",), "fp8_row_tile_us": ("gemm fp8_row",),
          "paged_bw_eff": ("decode paged/bf16",), "paged_fp8_bw_eff": ("decode paged/fp8",),
          "paged_tile_eff": ("decode paged/bf16", "decode paged/fp8"),
          "paged_row_ns": ("decode paged/bf16", "decode paged/fp8"),
          "decode_attn_floor_us": ("decode paged/bf16", "decode paged/fp8"),
          "sdpa_tile_eff": ("decode sdpa/bf16",), "sdpa_bw_eff": ("decode sdpa/bf16",),
          "sdpa_combine_gbps": ("decode sdpa/bf16",),
          "moe_topk_us": ("moe router",), "moe_topk_row_ns": ("moe router",), "moe_topk_sort": ("moe router",),
          "moe_topk_warp_us": ("moe router",), "moe_topk_warp_ns": ("moe router",), "moe_sort_us": ("moe router",),
          "moe_router_unaligned_gbps": ("moe router",), "grouped_mm_eff": ("moe grouped",),
          "grouped_bw_eff": ("moe grouped",),
          "grouped_sm_gbps": ("moe grouped",), "grouped_tile_us": ("moe grouped",),
          "moe_loop_floor_us": ("moe loop", "moe layer-loop"), "moe_loop_bw_eff": ("moe loop", "moe layer-loop"),
          "moe_loop_small_m": ("moe loop", "moe layer-loop"), "moe_loop_row_us": ("moe loop", "moe layer-loop"),
          "attn_causal_tile": ("prefill attention",), "attn_causal_eff": ("prefill attention",),
          "attn_causal_floor_us": ("prefill attention",), "attn_causal_wave_us": ("prefill attention",),
          "attn_causal_tail": ("prefill attention",)}
# families that must not get worse either: the router's numbers also price the whole-layer rows (router row +
# implementation row), so a router fit is written only where neither whole layer's held-out error rises
GUARD = {name: ("moe layer-loop", "moe layer-grouped") for name, fams in FAMILY.items() if fams == ("moe router",)}
# head sizes: judged against the same fit without the factor (head_dim_kept), on that head size's held-out rows
FAMILY.update({f"attn_rel_d{d}": (f"prefill d={d}", f"prefill d={d} repeat") for d in HEAD_DIMS})
# the preset groups written, each under its own source comment: (label, parameters)
GROUPS = (("stack kernels", ("mm_eff_fp8", "mm_epilogue_fp8", "fp8_row_us", "fp8_row_eff", "fp8_row_sm_gbps", "fp8_row_tile_us",
                             "decode_attn_floor_us", "paged_bw_eff", "paged_fp8_bw_eff", "paged_tile_eff",
                             "paged_row_ns",
                             "grouped_mm_eff", "grouped_bw_eff", "grouped_sm_gbps",
                             "grouped_tile_us", "sdpa_tile_eff", "sdpa_bw_eff", "sdpa_combine_gbps")),
          ("MoE router", ("moe_topk_us", "moe_topk_row_ns", "moe_topk_sort", "moe_sort_us", "moe_topk_warp_us",
                          "moe_topk_warp_ns", "moe_router_unaligned_gbps")),
          ("MoE loop", ("moe_loop_floor_us", "moe_loop_bw_eff", "moe_loop_small_m", "moe_loop_row_us")),
          ("GEMM waves", ("mm_even_waves",)),
          ("prefill attention", ("attn_causal_tile", "attn_causal_eff", "attn_causal_floor_us", "attn_causal_wave_us",
                                 "attn_causal_tail")),
          ("prefill attention head size", tuple(f"attn_rel_d{d}" for d in HEAD_DIMS)))


def groups(device, gemm, dec, pre, params, moe=(), counts=None):
    """{(calibration|held-out, kernel family): [|relative error|]} with the preset's calibration plus `params`."""
    out = {}
    for which in ("calibration", "held-out"):
        for kind, e, _ in gemm_errors(device, gemm, params, which):
            out.setdefault((which, f"gemm {kind}"), []).append(abs(e))
        for kernel in ("sdpa", "paged"):
            for kind, e, _ in decode_errors(device, dec, params, which, kernel):
                out.setdefault((which, f"decode {kind}"), []).append(abs(e))
    for which in ("calibration", "held-out"):
        for kind, e, _ in prefill_errors(device, pre, params, which):
            out.setdefault((which, kind), []).append(abs(e))
    for which in ("calibration", "held-out") if moe else ():
        for impl in ("router", "loop", "grouped", "layer-loop", "layer-grouped"):
            for kind, e, _ in moe_errors(device, moe, counts, params, which, impl):
                out.setdefault((which, f"moe {kind}"), []).append(abs(e))
    return out


def improved(before, after, head_dim_base=None):
    """The fitted parameters whose kernel families' held-out MAPE went down (the others are not written). The
    head-size factors are judged against `head_dim_base` (the groups of the fit without them), not the preset."""
    keep = []
    for name, fams in FAMILY.items():
        if name.startswith("attn_rel_d"):
            if head_dim_base is not None and name in head_dim_base[1]:
                b = [statistics.mean(head_dim_base[0][("held-out", f)]) for f in fams
                     if ("held-out", f) in head_dim_base[0]]
                a = [statistics.mean(after[("held-out", f)]) for f in fams if ("held-out", f) in after]
                if a and b and sum(a) < sum(b):
                    keep.append(name)
            continue
        b = [statistics.mean(before[("held-out", f)]) for f in fams if ("held-out", f) in before]
        a = [statistics.mean(after[("held-out", f)]) for f in fams if ("held-out", f) in after]
        worse = [f for f in GUARD.get(name, ()) if ("held-out", f) in after and ("held-out", f) in before
                 and statistics.mean(after[("held-out", f)]) > statistics.mean(before[("held-out", f)])]
        if a and b and sum(a) < sum(b) and not worse:
            keep.append(name)
    return keep


def grid_parts(device, grid, params):
    """Report only: the router grid's parts timed alone (the router GEMM; top-k over the softmax output, each one
    graph replay) against hwsim's GEMM and top-k kernels, by expert count and top-k (mean signed error)."""
    from hw_models.moe import _gemm_s, sort_s, topk_s
    model = GPUModel(device, profile="eager", params=params)
    for name, col, cost in (("router GEMM alone", "gemm_seconds",
                             lambda r, f: _gemm_s(model, int(r["tokens"]), int(r["experts"]), int(r["hidden"]), f)),
                            ("top-k alone", "topk_seconds",
                             lambda r, f: topk_s(model, int(r["tokens"]), int(r["experts"]), int(r["top_k"]))
                             + (sort_s(model, int(r["tokens"]), int(r["top_k"])) or 0.0))):
        errs = {}
        for r in grid:
            if r.get(col):
                t = float(r[col])
                errs.setdefault((int(r["experts"]), int(r["top_k"])), []).append(
                    (cost(r, float(r["sm_mhz"] or 1980)) - t) / t)
        if errs:
            every = [e for v in errs.values() for e in v]
            print(f"  router grid, {name}: MAPE {100 * statistics.mean(abs(e) for e in every):.1f}%; mean error by "
                  "(experts, top-k): " + " ".join(f"{e}/{k} {100 * statistics.mean(v):+.0f}%"
                                                  for (e, k), v in sorted(errs.items())))


def moe_notes(device, rows, counts, params):
    """The load-imbalance hypotheses on the grouped GEMM, and the loop's host cost (modelled, not measured here)."""
    from hw_models.host import HostModel, default_host
    from hw_models.moe import MoELayer, kernels, layer_time
    for rule in ("tiles", "max"):
        cal = mape(moe_errors(device, rows, counts, params, "calibration", "grouped", rule))
        held = mape(moe_errors(device, rows, counts, params, "held-out", "grouped", rule))
        print(f"  grouped GEMM imbalance rule {rule:5s}: calibration {cal:.1f}%  held out {held:.1f}%"
              + ("  (each expert's own tiles)" if rule == "tiles" else "  (every expert padded to the most loaded)"))
    grid = router_grid(device)
    if grid:
        held = moe_errors(device, rows, counts, params, "held-out", "router")
        by = {c: mape([e for e in held if e[2]["config"] == c]) for c in dict.fromkeys(r[2]["config"] for r in held)}
        print(f"  router: calibration the router grid ({len(grid)} rows, {mape(grid_errors(device, grid, params)):.1f}%"
              f"), held out every model's router rows: " + ", ".join(f"{c} {v:.1f}%" for c, v in by.items()))
        grid_parts(device, grid, params)
    lgrid = loop_grid(device)
    if lgrid:
        for impl in ("loop", "layer-loop"):
            held = moe_errors(device, rows, counts, params, "held-out", impl)
            by = {c: mape([e for e in held if e[2]["config"] == c]) for c in dict.fromkeys(r[2]["config"] for r in held)}
            print(f"  {impl}: calibration the loop grid ({sum(1 for r in lgrid if r['impl'] == 'loop')} rows, "
                  f"{mape(loop_grid_errors(device, lgrid, params)):.1f}%), held out every model's rows: "
                  + ", ".join(f"{c} {v:.1f}%" for c, v in by.items()))
        by = {}
        for _, e, r in loop_grid_errors(device, lgrid, params):
            by.setdefault((int(r["hidden"]), int(r["ffn"]), int(r["experts"])), []).append(e)
        print("  loop grid, mean error by (hidden, ffn, experts): " + " ".join(
            f"{h}x{f}/{n} {100 * statistics.mean(v):+.0f}%" for (h, f, n), v in sorted(by.items())))
        g = loop_grid_errors(device, lgrid, params, "grouped")
        if g:
            print(f"  grouped GEMM layer on the loop grid (calibration, with Mixtral's grouped rows): "
                  f"MAPE {mape(g):.1f}% (mean {100 * statistics.mean(e for _, e, _ in g):+.1f}%, n={len(g)})")
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


STEP_HELD_OUT = ("mistral-7b", "phi-3-mini", "qwen3-14b")     # fit.py's held-out models (not its TRAINING_MODELS)


def step_check(device, params, traces={}):     # traces: the traced steps, kept between calls
    """The whole-step check of a prefill-attention group: `hwsim validate`'s prefill steps measured on this device
    (benchmarks/gpu/data/*/steps.csv; windowed sets only where measured with the mask, as validate does) through
    predict with the preset plus `params`: {set: MAPE} for every step, fit.py's held-out models and phi-3-mini
    (head_dim 96), each as (MAPE %, n)."""
    from sim import validation
    from sim.predict import predict
    from workloads import trace
    errs = []
    for folder, env, dev_id in validation.datasets(validation.DATA_DIR):
        if dev_id != device.id:
            continue
        windows_ok = env.get("window_attention") == "sdpa-mask"
        for r in validation._cases(folder / "steps.csv"):
            if r["phase"] != "prefill":
                continue
            key = (r["model"], r["batch"], r["seq_len"])
            if key not in traces:
                traces[key] = trace(r["model"], "prefill", r["batch"], r["seq_len"])
            if validation._windowed_prefill(traces[key]) and not windows_ok:
                continue
            t = r["seconds"]
            errs.append((r["model"], (predict(traces[key], device, params=params).latency_s - t) / t))
    out = {}
    for name, keep in (("all", lambda m: True), ("held-out models", lambda m: m in STEP_HELD_OUT),
                       ("phi-3-mini", lambda m: m == "phi-3-mini")):
        e = [abs(x) for m, x in errs if keep(m)]
        if e:
            out[name] = (100 * statistics.mean(e), len(e))
    return out


def on_steps(name):
    """A parameter on the traced bf16 steps' path: the prefill-attention groups and the GEMM wave rule (the others,
    FP8 and MoE kernel numbers, are not: hwsim validate's steps are bf16 dense models)."""
    return name.startswith("attn_") or name == "mm_even_waves"


def step_gate(device, params, better):
    """The groups on the steps' path (the GEMM wave rule, the causal-tile model, the head-size factors) are written
    only where the whole steps do not get worse on average (every step and fit.py's held-out models): each group is
    added in turn to what is kept; the others (stack kernels) are not on the steps' path."""
    kept = {k: v for k, v in params.items() if k in better and not on_steps(k)}
    base = step_check(device, kept)
    if not base:
        print("  whole steps: no steps.csv measured on this device; step-path groups judged on kernels only")
        return better
    out = [k for k in better if not on_steps(k)]
    print("  whole steps (hwsim validate's prefill steps on this device; MAPE all | held-out models | phi-3-mini):")
    show = lambda c: " | ".join(f"{c[k][0]:.2f}% (n={c[k][1]})" for k in c)   # noqa: E731
    print(f"    {'without the step-path groups':40s} {show(base)}")
    for label, names in GROUPS[1:]:
        group = {k: params[k] for k in names if k in better}
        if not group:
            continue
        trial = step_check(device, {**kept, **group})
        ok = all(trial[k][0] <= base[k][0] + 1e-9 for k in ("all", "held-out models") if k in base)
        print(f"    {'+ ' + label:40s} {show(trial)}  -> {'kept' if ok else 'not written (whole steps worse)'}")
        if ok:
            kept.update(group)
            base = trial
            out += list(group)
    return out


PUBLISHED_PROFILES = ("trtllm-0.6", "trtllm", "fused")
# The gate: the stack the published rows were measured with. The v0.6.1 rows (THROUGHPUT / FIRST_TOKEN of
# benchmarks/stack_accuracy.py) are TensorRT-LLM v0.6.1 runs, which hwsim models as the `trtllm-0.6` profile; `trtllm`
# (today's TensorRT-LLM: XQA decode sharing KV heads across query heads, other launch costs) and `fused` are other
# stacks, whose error on these rows is mostly what those stacks do differently from v0.6.1 (their 70B TP2/TP4 rows
# are 17-112% too fast with any GEMM number), so a kernel number is judged on trtllm-0.6 only; the other profiles
# are printed beside it for information.
PUBLISHED_GATE = "trtllm-0.6"


def published_check(device, text):
    """{profile: (mean |relative error|, row count)} of benchmarks/stack_accuracy.py's published TensorRT-LLM rows on
    this GPU (throughput and first-token latency, each stack of PUBLISHED_PROFILES) with the preset file's text
    `text`; None where the table has no rows for this GPU. Run in a subprocess whose presets are a copy of
    hw_models/presets with this device's file replaced by `text` (the preset files are not touched)."""
    import shutil
    import subprocess
    import tempfile
    from hw_models.presets import PRESET_DIR, alias_table
    # run in a subprocess (it also keeps this script from importing stack_accuracy.py, which imports this one)
    with tempfile.TemporaryDirectory() as top:
        tmp = str(Path(top) / "presets")
        shutil.copytree(PRESET_DIR, tmp)
        (Path(tmp) / alias_table()[device.id].name).write_text(text)
        code = ("import contextlib, io, json, sys; from pathlib import Path; import hw_models.presets as P\n"
                f"P.PRESET_DIR = Path({tmp!r}); sys.path.insert(0, 'benchmarks'); import stack_accuracy as s\n"
                f"gpus = [g for g, name in s.DEVICES.items() if P.load_device(name).id == {device.id!r}]\n"
                "if not gpus:\n    print('null'); sys.exit(0)\n"
                "with contextlib.redirect_stdout(io.StringIO()):\n"
                f"    e = s.published({list(PUBLISHED_PROFILES)!r}, moe=False)\n"  # MoE rows: held out
                "out = {}\n"
                "for k, v in e.items():\n"
                "    if k[1] == gpus[0] and k[0] != 'roofline':\n"
                "        out.setdefault(k[0], []).extend(v)\n"
                "print(json.dumps(out))")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    errs = json.loads(out.stdout)
    if not errs:
        return None
    return {p: (100 * statistics.mean(v), len(v)) for p, v in errs.items() if v}


def _show_published(c):
    return " | ".join(f"{p} {c[p][0]:.2f}%" for p in PUBLISHED_PROFILES if p in c) + (
        f"  (all three {statistics.mean(c[p][0] for p in c):.2f}%)" if len(c) > 1 else "")


def published_gate(device, params, better, folder, env):
    """The stack-kernel parameters are kernels' numbers; the published TensorRT-LLM rows (another held-out set:
    whole generate runs of another stack) check them on the GPUs the table has (H100, A100). Each parameter is
    added in turn to what is kept and kept where the rows' mean error under PUBLISHED_GATE (the stack the rows were
    published with) does not go up; the other profiles are printed, not gated on."""
    from hw_models.presets import alias_table
    text = alias_table()[device.id].read_text()
    names = [k for k in better if not k.startswith("attn_")]
    names = sorted(names, key=lambda k: k != "mm_even_waves")    # the rule first: mm_eff_fp8 was fitted under it
    base = published_check(device, text)
    if base is None or not names:
        return better
    print(f"  published TensorRT-LLM rows on this GPU (n={base[PUBLISHED_GATE][1]} per stack), mean error; gated on "
          f"{PUBLISHED_GATE} (the stack the rows were published with), the others for information:")
    print(f"    {'preset':28s} {_show_published(base)}")
    kept = {}
    for k in names:
        trial = published_check(device, preset_text(text, {**kept, k: params[k]}, folder, env))
        ok = trial[PUBLISHED_GATE][0] <= base[PUBLISHED_GATE][0] + 1e-9
        print(f"    {'+ ' + k + ' ' + str(params[k]):28s} {_show_published(trial)}  -> "
              f"{'kept' if ok else 'not written (' + PUBLISHED_GATE + ' rows worse)'}")
        if ok:
            kept[k] = params[k]
            base = trial
    return [k for k in better if k.startswith("attn_") or k in kept]


def preset_text(text, params, folder, env, label="stack kernels", note="", script="benchmarks/gpu/fit_stack.py"):
    """The preset text with `params` written into its calibration params (write_params)."""
    head, sep, block = text.partition("\n  params:\n")

    def source(ln):  # "# LABEL: a, b measured here ..." or "# LABEL: a, b transferred ...": (label, names, tail)
        text = ln.strip()
        if not text.startswith("#") or ":" not in text:
            return None
        label, rest = ln.split(":", 1)
        for word in (" measured here", " transferred"):
            if word in rest:
                names, tail = rest.split(word, 1)
                return label, [n.strip() for n in names.split(",")], word + tail
        return None

    def stale(ln):   # a source comment of an earlier write whose parameters are all rewritten now
        src = source(ln)
        return src is not None and all(n in params for n in src[1])

    def renamed(ln):  # an earlier source comment naming some of the rewritten parameters: those names go from it
        src = source(ln)
        if src is None or not any(n in params for n in src[1]):
            return ln           # a comment naming none of them (or prose before the word) stays as it is
        label, names, tail = src
        return f"{label}: {', '.join(n for n in names if n not in params)}{tail}"
    lines = [renamed(ln) for ln in block.splitlines() if ln.split(":")[0].strip() not in params and not stale(ln)]
    lines += [f"    # {label}: {', '.join(params)} measured here, {script} on "
              f"benchmarks/gpu/data/{folder.name} ({env['device']}, {env['date'][:10]}){note}"]
    lines += [f"    {k}: {v}" for k, v in params.items()]
    return head + sep + "\n".join(lines) + "\n"


def write_params(device, params, folder, env, label="stack kernels", note="", script="benchmarks/gpu/fit_stack.py"):
    """Write kernel parameters into the preset's calibration params under a source comment ("# LABEL: names
    measured here, ... on DATA (GPU, date)NOTE"); parameters written before are replaced, and an earlier source
    comment ("# ...: names measured here" or "... transferred") whose parameters are all rewritten goes with them
    (fit.py's rule)."""
    from hw_models.presets import alias_table
    path = alias_table()[device.id]
    path.write_text(preset_text(path.read_text(), params, folder, env, label, note, script))
    print(f"  wrote {', '.join(params)} to {path}")


def transferred_head_dims(source):
    """The head-size factors fitted on another stack folder (its own preset, by its env.json): for a GPU measured at
    d = 128 only, whose SDPA kernels are the same (H100 -> H200: one SM design, the same torch and cuDNN)."""
    (folder, preset), = datasets([source])
    fitted = fit_prefill(load_device(preset), read_prefill(folder), {})
    return {k: v for k, v in fitted.items() if k.startswith("attn_rel_d")}, folder


def kernel_report(write=False, folders=None, preset=None, head_dims_from=None, check=False):
    print("Kernels measured here (benchmarks/gpu/measure_stack.py) against hwsim's cost of the same op")
    sets = datasets(folders, preset)
    if not sets:
        print("  no data/*-stack folders yet")
        return {}
    summary = {}
    for folder, preset in sets:
        env = json.loads((folder / "env.json").read_text())
        device = load_device(preset)
        dec = read_decode(folder, preset)
        params = fit(device, folder, dec=dec)
        print(f"\n{folder.name}: {env['device']} on {env.get('hostname', '?')} ({env.get('cpu', '?')}), "
              f"{env['date']}, torch {env['torch']}")
        print("  fitted:", {k: round(v, 3) for k, v in params.items()})
        if EXTRA_DECODE_CAL.get(preset):
            print(f"  paged decode calibration rows also from: {', '.join(EXTRA_DECODE_CAL[preset])} "
                  f"({sum(1 for r in dec if r.get('extra'))} rows)")
        gemm = read(folder, "gemm.csv")
        pre = read_prefill(folder)
        moe = read(folder, "moe.csv")
        counts = moe_counts(moe) if moe else None
        if moe:
            params = fit_moe(device, moe, counts, params)
            print("  fitted (MoE):", {k: params[k] for k in params if k.startswith(("moe_", "grouped_"))})
        if pre:
            params = fit_prefill(device, pre, params)
            print("  fitted (prefill attention):", {k: params[k] for k in params if k.startswith("attn_")})
        before = groups(device, gemm, dec, pre, {}, moe, counts)
        after = groups(device, gemm, dec, pre, params, moe, counts)
        hd = [k for k in params if k.startswith("attn_rel_d")]
        hd_base = (groups(device, (), (), pre, {k: v for k, v in params.items() if k not in hd}), hd)
        print(f"  {'':11s} {'kernel':22s} {'n':>4s}   {'preset MAPE':>11s}   {'fitted MAPE':>11s}  (max)")
        for key in sorted(after):
            b, a = before.get(key, [float("nan")]), after[key]
            summary[(folder.name,) + key] = (100 * statistics.mean(b), 100 * statistics.mean(a), len(a))
            print(f"  {key[0]:11s} {key[1]:22s} {len(a):4d}   {100 * statistics.mean(b):10.1f}%   "
                  f"{100 * statistics.mean(a):10.1f}%  ({100 * max(a):.0f}%)")
        if moe:
            moe_notes(device, moe, counts, params)
        if pre:
            head_dim_report(device, pre, params)
            prefill_report([r for r in pre if int(r["d"]) == 128 and not r.get("repeat")])
            prefix = "h200" if preset == "h200" else "h100"
            inside = {label: instep_attention(device, p, prefix) for label, p in
                      (("preset", {}), ("fitted", {k: v for k, v in params.items() if k.startswith("attn_")}))}
            if inside["preset"]:
                print(f"  prefill attention inside whole steps (profiled kernel per call, {len(inside['preset'])} "
                      f"runs of data/{prefix}-*/kernels.csv; report only): " + ", ".join(
                          f"{label} MAPE {100 * statistics.mean(abs(e) for e, _ in v):.1f}% (mean "
                          f"{100 * statistics.mean(e for e, _ in v):+.1f}%)" for label, v in inside.items()))
        better = improved(before, after, hd_base)
        # a fitted value the preset already has is not a change: not gated, not written again; a number the fit
        # left out (fit_loop: a bandwidth of None, no per-row cost) is not written either
        current = GPUModel(device).p
        better = [k for k in better if k in params and (current[k] != params[k] if k in current else params[k] != 0)]
        source = None
        if head_dims_from and not any(int(r["d"]) != 128 for r in pre):
            moved, source = transferred_head_dims(head_dims_from)
            print(f"  head-size factors from {source.name} (no d != 128 kernels measured on this GPU; judged on whole "
                  f"steps only):", moved)
            params.update(moved)
            better += list(moved)
        if not (write or check):
            print("  held-out kernels better:", {k: params[k] for k in better} or "none",
                  "(--check or --write: the whole-step and published-row checks before writing)")
            better = []
        if any(on_steps(k) for k in better):
            better = step_gate(device, params, better)
        if better:
            better = published_gate(device, params, better, folder, env)
        # mm_eff_fp8 is fitted under the fitted wave rule: where that rule is not written, the number is not either
        preset_rule = GPUModel(device).p.get("mm_even_waves", 0)
        if params.get("mm_even_waves", preset_rule) != preset_rule and "mm_even_waves" not in better \
                and "mm_eff_fp8" in better:
            print(f"  not written: mm_eff_fp8 {params['mm_eff_fp8']} (fitted under mm_even_waves "
                  f"{params['mm_even_waves']}, which is not written; refit under the preset's rule)")
            better = [k for k in better if k != "mm_eff_fp8"]
        # as written: a parameter fitted beside one that is not written (fp8_row_us beside mm_eff_fp8) is checked
        # again on its kernels with only what is written (the head-size factors were judged on the fitted d = 128
        # model and on whole steps)
        if better:
            kept = {k: params[k] for k in better}
            again = improved(before, groups(device, gemm, dec, pre, kept, moe, counts))
            dropped = [k for k in better if not k.startswith("attn_rel_d") and k not in again]
            if dropped:
                print("  not written (held-out kernels no better with only the written parameters):",
                      {k: params[k] for k in dropped})
                better = [k for k in better if k not in dropped]
            print("  to write (held-out kernels better; whole steps and published rows, where checked, not worse):",
                  {k: params[k] for k in better} or "none")
        if write and better:
            for label, names in GROUPS:
                chosen = {k: params[k] for k in names if k in better}
                if not chosen:
                    continue
                if source is not None and label == "prefill attention head size":
                    write_params(device, chosen, source, json.loads((source / "env.json").read_text()), label,
                                 f"; transferred to this GPU (not measured on it at d != 128), kept because its "
                                 f"whole prefill steps do not get worse")
                elif label == "MoE router" and router_grid(device):
                    # fitted on the router grid: its folder is the source (several: the first)
                    gfolder = next(e.parent for e in sorted(DATA.glob("*-router-grid/env.json"))
                                   if load_device("h200" if "H200" in json.loads(e.read_text())["device"]
                                                  else "h100").id == device.id)
                    write_params(device, chosen, gfolder, json.loads((gfolder / "env.json").read_text()), label,
                                 "; every real model's router row (moe.csv) held out")
                elif label == "MoE loop" and loop_grid(device):
                    # fitted on the loop grid: its folder is the source (several: the first)
                    gfolder = next(e.parent for e in sorted(DATA.glob("*-moe-grid/env.json"))
                                   if load_device("h200" if "H200" in json.loads(e.read_text())["device"]
                                                  else "h100").id == device.id)
                    write_params(device, chosen, gfolder, json.loads((gfolder / "env.json").read_text()), label,
                                 "; fitted on this loop grid alone (a floor the preset has held: LOOP_HELD), every "
                                 "real model's loop and layer-loop row (moe.csv) held out")
                else:
                    extra = EXTRA_DECODE_CAL.get(preset) if any(k.startswith("paged_") for k in chosen) else ()
                    note = (f"; paged decode calibration rows also from benchmarks/gpu/data/{', '.join(extra)}"
                            if extra else "")
                    if any(k.startswith("grouped_") for k in chosen) and loop_grid(device):
                        gfolder = next(e.parent for e in sorted(DATA.glob("*-moe-grid/env.json"))
                                       if load_device("h200" if "H200" in json.loads(e.read_text())["device"]
                                                      else "h100").id == device.id)
                        genv = json.loads((gfolder / "env.json").read_text())
                        note += (f"; grouped GEMM calibration rows also from benchmarks/gpu/data/{gfolder.name} "
                                 f"(its grouped rows, {genv['device']}, {genv['date'][:10]}), held out qwen1.5-moe "
                                 f"and deepseek-v2-lite")
                    write_params(device, chosen, folder, env, label, note)
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
    ap.add_argument("--data", action="append", metavar="DIR",
                    help="a measure_stack.py output folder (repeatable; default every data/*-stack folder)")
    ap.add_argument("--device", metavar="PRESET",
                    help="the preset to fit and write (default by env.json's GPU: h200, else h100); without --data, "
                         "only the folders measured on that preset's GPU")
    ap.add_argument("--write", action="store_true",
                    help="write the fitted parameters that lower their kernels' held-out error into the preset")
    ap.add_argument("--head-dims-from", metavar="DIR",
                    help="for a data set without d != 128 prefill rows: take the head-size factors fitted on DIR "
                         "(a GPU with the same kernels) and judge them on this device's whole steps only")
    ap.add_argument("--check", action="store_true",
                    help="run the whole-step and published-row checks --write runs, without writing")
    args = ap.parse_args()
    kernel_report(args.write, args.data, args.device, args.head_dims_from, args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
