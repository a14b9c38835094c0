"""Fit the GPU cost- and power-model parameters to measurements and write them into a preset.

Fits, in order, each on its own data (so the full-step validation is not fitted to itself):
  power      static W, pJ/FLOP, pJ/byte         <- power.csv (NVML energy of sustained steps, GEMMs)
  GEMMs      attained fraction of peak          <- power.csv (sustained GEMM rate at its measured clock)
             fp8 fraction, floors               <- gemm.csv (with the power cap in the loop)
  bandwidth  achievable fraction, small sizes   <- gemm.csv GEMVs (M <= 16)
  eager      elementwise/reduction bandwidth    <- elementwise.csv (unfused RMSNorm, >= 4M elements; eager_bw_eff,
                                                   left for kernels priced without an access class, hw_models/moe.py)
  eager by   vectorized / not vectorized / cat   <- elementwise.csv (add, mul, silu, copy; unfused RMSNorm) and a
   access                                          kernels.csv of the device's (cats): fit_eager.py
  strided    kernels on gapped operands         <- elementwise.csv silu(gate)*up on halves (any set of the device)
  attention  flash prefill efficiency           <- attention.csv
  steps      per-kernel floor in a CUDA graph   <- steps.csv of the TRAINING models only
  cap window ops long enough to be capped alone <- steps.csv of the TRAINING models only
Then prints the step error for training and held-out models. `hwsim validate` re-prints the table.

usage: python3 benchmarks/gpu/fit.py --device h100 --data benchmarks/gpu/data/h100-sxm-2026-11-24 [--write]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from hw_models import load_device
from hw_models.gpu import GPUModel
from hw_models.power import PowerModel
from sim.predict import predict
from workloads import trace
from workloads.graph import Op

TRAINING_MODELS = ("llama-3.1-8b", "qwen2.5-7b", "llama-2-13b")


def read(data, name):
    return list(csv.DictReader(open(Path(data) / name)))


def fit_power(device, data):
    """P = static + e_flop * (FLOP/s + e_attn_rel * attention FLOP/s) + e_byte * B/s, least squares on sustained
    runs; FLOPs as the power model counts them (GPUModel.energy_flops: attention's executed FLOPs, a causal
    prefill's half, at e_attn_rel of a GEMM FLOP)."""
    model = GPUModel(device, params={"e_attn_rel": 1.0})
    rows, y = [], []
    for r in read(data, "power.csv"):
        if r["case"] == "idle":
            continue
        t = float(r["step_seconds"])
        if r["case"].startswith("gemm_8192"):
            flops, attn, nbytes = 2 * 8192 ** 3, 0.0, 3 * 8192 * 8192 * 2
        else:
            g = trace(r["model"], r["phase"], int(r["batch"]), int(r["seq_len"]))
            attn = sum(model.energy_flops(op) * op.repeat for op in g.ops if op.kind == "attention")
            flops = sum(model.energy_flops(op) * op.repeat for op in g.ops if op.kind != "attention")
            nbytes = sum(sum(op.bytes.values()) * op.repeat for op in g.ops)
        rows.append([1.0, flops / t * 1e-12, nbytes / t * 1e-12, attn / t * 1e-12])
        y.append(float(r["avg_power_w"]))
    x, *_ = np.linalg.lstsq(np.array(rows), np.array(y), rcond=None)
    return {"static_w": round(float(x[0]), 1), "e_flop_pj": round(float(x[1]), 4), "e_byte_pj": round(float(x[2]), 2),
            "gamma": 0.0, "e_attn_rel": round(float(x[3] / x[1]), 3)}


def _gemm_op(m, n, k, dtype):
    eb = 1 if dtype == "fp8" else 2
    return Op(0, "mm", "matmul", None, 1, (), (), dtype, 2 * m * n * k,
              {"weight": n * k * eb, "activation": m * k * eb + m * n * 2}, attrs=dict(m=m, n=n, k=k, batch=1))


def gemm_error(device, data, params, power, which=lambda m: True):
    model = GPUModel(device, params=params)
    pm = PowerModel(device, power)
    errs = []
    for r in read(data, "gemm.csv"):
        m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
        if not which(m):
            continue
        op = _gemm_op(m, n, k, r["dtype"])
        point = pm.solve(lambda f: (model.cost(op, f).time_s, model.energy_flops(op), sum(op.bytes.values())))
        errs.append(abs(point.time_s - float(r["seconds"])) / float(r["seconds"]))
    return statistics.mean(errs), max(errs)


def search(objective, params, name, grid):
    best = min(grid, key=lambda v: objective({**params, name: v}))
    params[name] = best
    return params


_GRAPHS = {}


def step_errors(device, data, params, power, models=None):
    out = {}
    for r in read(data, "steps.csv"):
        if models and r["model"] not in models:
            continue
        key = (r["model"], r["phase"], int(r["batch"]), int(r["seq_len"]))
        if key not in _GRAPHS:
            _GRAPHS[key] = trace(*key)
        g = _GRAPHS[key]
        if any(op.kind == "attention" and op.attrs.get("window") and op.attrs["window"] < op.attrs["sk"]
               and op.attrs["sq"] > 1 for op in g.ops):
            continue   # measured with the math fallback for windowed masks: not a plain SDPA step
        p = predict(g, device, params=params, power_params=power)
        out[key] = (p.latency_s - float(r["seconds"])) / float(r["seconds"])
    return out


def summarize(errs):
    by = {}
    for (model, phase, *_), e in errs.items():
        by.setdefault(phase, []).append(abs(e))
    return {ph: (100 * statistics.mean(v), 100 * max(v), len(v)) for ph, v in by.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--write", action="store_true", help="write the calibration block into the preset file")
    args = ap.parse_args()
    device = load_device(args.device)
    device = device.model_copy(update={"calibration": None})
    power = fit_power(device, args.data)
    print("power:", power)
    params = {"e_attn_rel": power.pop("e_attn_rel")}          # read by the cost model (energy_flops)
    # GEMM efficiency at the clock NVML measured during the sustained 8192^3 GEMM (the power cap and the
    # efficiency cannot be told apart from capped GEMM times alone)
    gemm_row = next(r for r in read(args.data, "power.csv") if r["case"].startswith("gemm_8192"))
    rate = 2 * 8192 ** 3 / float(gemm_row["step_seconds"])
    params["mm_eff"] = round(rate / device.engines["tensor"].peak("bf16", float(gemm_row["avg_sm_mhz"])), 3)
    params = search(lambda p: gemm_error(device, args.data, p, power, lambda m: m >= 1024)[0], params,
                    "mm_eff_fp8", [x / 100 for x in range(60, 101, 2)])
    small = lambda p: gemm_error(device, args.data, p, power, lambda m: m <= 16)[0]
    params = search(small, params, "bw_eff", [x / 100 for x in range(70, 96)])
    params = search(small, params, "mm_floor_us", [x / 2 for x in range(0, 21)])
    params = search(small, params, "small_bw_bytes", [1e6, 2e6, 4e6, 8e6, 16e6, 32e6])
    print("gemm fit: large M>=1024 MAPE %.1f%% max %.0f%%; small M<=16 MAPE %.1f%% max %.0f%%" % (
        *[100 * x for x in gemm_error(device, args.data, params, power, lambda m: m >= 1024)],
        *[100 * x for x in gemm_error(device, args.data, params, power, lambda m: m <= 16)]))
    norms = [r for r in read(args.data, "elementwise.csv") if r["op"] == "rmsnorm_unfused" and int(r["numel"]) >= 4 << 20]
    norm_graphs = {int(r["numel"]): trace("llama-3.1-8b", "prefill", max(1, int(r["numel"]) // 4096 // 1024), 1024)
                   for r in norms}

    def eager_obj(p):
        model = GPUModel(device, params=p)
        errs = []
        for r in norms:
            op = next(o for o in norm_graphs[int(r["numel"])].ops if o.name == "input_norm")
            errs.append(abs(model.cost(op, 1980).time_s - float(r["seconds"])) / float(r["seconds"]))
        return statistics.mean(errs)
    params = search(eager_obj, params, "eager_bw_eff", [x / 100 for x in range(50, 96)])
    # the eager kernels by access class (vectorized, not vectorized, non-contiguous cats): fit_eager.py; cat_bw_eff
    # only where a kernels.csv of the same device sits beside the data (else the preset's is kept)
    from fit_eager import fit_eager
    kernels_dirs = [f for f in sorted(Path(args.data).parent.glob("*")) if (f / "kernels.csv").is_file() and
                    (f / "env.json").is_file() and json.loads((f / "env.json").read_text()).get("device") ==
                    json.loads((Path(args.data) / "env.json").read_text())["device"]]
    preset = load_device(args.device).calibration
    preset_cat = (preset.params or {}).get("cat_bw_eff", 0) if preset else 0
    params = fit_eager(device, args.data, {**params, "cat_bw_eff": preset_cat},
                       kernels_dirs[-1] if kernels_dirs else None)
    strided = []
    for folder in sorted(Path(args.data).parent.glob("*")):
        env_file, ew_file = folder / "env.json", folder / "elementwise.csv"
        same = env_file.is_file() and json.loads(env_file.read_text()).get("device") == \
            json.loads((Path(args.data) / "env.json").read_text())["device"]
        if same and ew_file.is_file():
            strided += [r for r in read(folder, "elementwise.csv")
                        if r["op"] == "silu_mul_strided" and int(r["numel"]) >= 4 << 20]
    if strided:   # silu(gate) * up on the two halves of one wide tensor: two kernels on gapped operands
        from workloads.graph import Kernel

        def strided_obj(p):
            model = GPUModel(device, params=p)
            errs = []
            for r in strided:
                n = int(r["numel"])
                op = Op(0, "act", "elementwise", None, 1, (), (), "bf16", 0, {"activation": 10 * n},
                        kernels=(Kernel("silu", n, {"activation": 4 * n}, True),
                                 Kernel("mul", n, {"activation": 6 * n}, True)))
                errs.append(abs(model.cost(op, 1980).time_s - float(r["seconds"])) / float(r["seconds"]))
            return statistics.mean(errs)
        params = search(strided_obj, params, "strided_bw_eff", [x / 100 for x in range(30, 96)])
    att = [r for r in read(args.data, "attention.csv") if r["phase"] == "prefill" and int(r["sq"]) >= 2048]
    from workloads.modules.attention_op import attention_flops

    def attn_obj(p):
        # attn_eff is the causal-half model's efficiency: a preset's causal-tile model (attn_causal_tile,
        # fitted by fit_stack.py) would otherwise price these rows and leave attn_eff unconstrained
        model = GPUModel(device, params={**p, "attn_causal_tile": 0})
        errs = []
        for r in att:
            b, hq, hkv, s = int(r["b"]), int(r["hq"]), int(r["hkv"]), int(r["sq"])
            flops = attention_flops((b, hq, s, 128), (b, hkv, s, 128), 128)
            op = Op(0, "attn", "attention", None, 1, (), (), "bf16", flops,
                    {"activation": 2 * (2 * b * hq * s * 128) + 2 * 2 * b * hkv * s * 128},
                    attrs=dict(b=b, hq=hq, hkv=hkv, sq=s, sk=s, d=128, dv=128, causal=True, window=0))
            errs.append(abs(model.cost(op, 1980).time_s - float(r["seconds"])) / float(r["seconds"]))
        return statistics.mean(errs)
    params = search(attn_obj, params, "attn_eff", [x / 100 for x in range(30, 101, 2)])
    train = lambda p: statistics.mean(abs(e) for e in step_errors(device, args.data, p, power, TRAINING_MODELS).values())
    for _ in range(2):
        params = search(train, params, "kernel_floor_us", [x / 4 for x in range(0, 17)])
        params = search(train, params, "attn_floor_us", [x / 2 for x in range(0, 21)])
    # the power controller's averaging window: ops longer than it are capped on their own (long prefill GEMMs)
    # (step times of the training models, plus the clocks NVML saw in the sustained step runs: a window shorter
    # than an op the GPU did not throttle on its own would show up as a clock far below NVML's)
    runs = [r for r in read(args.data, "power.csv") if r["case"] == "step"]

    def window_obj(pw):
        times = statistics.mean(abs(e) for e in step_errors(device, args.data, params, pw, TRAINING_MODELS).values())
        clocks = statistics.mean(
            abs(predict(trace(r["model"], r["phase"], int(r["batch"]), int(r["seq_len"])), device, params=params,
                        power_params=pw).clock_mhz - float(r["avg_sm_mhz"])) / float(r["avg_sm_mhz"]) for r in runs)
        return times + clocks
    power = search(window_obj, power, "cap_window_s", [0.0, 1e-3, 2e-3, 3e-3, 4e-3, 6e-3])
    print("params:", params, "cap_window_s:", power["cap_window_s"])
    errs = step_errors(device, args.data, params, power)
    trained = {k: v for k, v in errs.items() if k[0] in TRAINING_MODELS}
    held = {k: v for k, v in errs.items() if k[0] not in TRAINING_MODELS}
    for label, e in (("training models", trained), ("held-out models", held), ("all", errs)):
        s = summarize(e)
        print(f"{label:16s} " + "  ".join(f"{ph}: MAPE {m:.1f}% max {mx:.0f}% (n={n})" for ph, (m, mx, n) in s.items()))
    for key, e in sorted(errs.items(), key=lambda kv: -abs(kv[1]))[:12]:
        print(f"  worst: {key} {100 * e:+.1f}%")
    if args.write:
        write_calibration(device, args.data, {**params, **power})


def write_calibration(device, data, params):
    from hw_models.presets import alias_table
    path = alias_table()[device.id]
    env = json.loads((Path(data) / "env.json").read_text())
    header = ["calibration:",
              f"  source: \"fitted here by benchmarks/gpu/fit.py on {data} ({env['device']}, {env['date']})\"",
              f"  date: \"{datetime.date.today().isoformat()}\"",
              "  script: benchmarks/gpu/fit.py",
              f"  data: {data}"]
    path.write_text(calibration_text(path.read_text(), header, params))
    print(f"wrote calibration to {path}")


def calibration_text(text: str, header: list, params: dict) -> str:
    """The preset text with its calibration block rewritten: `header`, then `params`, then every parameter of the
    old block that this fit does not write (the power fit's, the stack kernels', each group under its source
    comment; a comment whose parameters are all rewritten goes with them)."""
    head, _, old = text.partition("\ncalibration:")
    kept, group = [], []

    def flush():
        names = [ln.split(":")[0].strip() for ln in group if not ln.strip().startswith("#")]
        rest = [ln for ln in group if ln.strip().startswith("#") or ln.split(":")[0].strip() not in params]
        if any(not ln.strip().startswith("#") for ln in rest) or not names:
            kept.extend(ln for ln in rest if not (ln.strip().startswith("#") and names and
                                                  all(n in params for n in names)))
        group.clear()

    in_params = False
    for ln in old.splitlines():
        if ln.startswith("  params:"):
            in_params = True
            continue
        if in_params and ln.startswith("    "):
            if ln.strip().startswith("#"):
                flush()
            group.append(ln)
        elif in_params and ln.strip():
            break
    flush()
    lines = header + ["  params:"] + [f"    {k}: {v}" for k, v in params.items()] + kept
    return head.rstrip() + "\n\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
