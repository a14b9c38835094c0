"""Fit the GPU power model at the cap (static W, pJ per FLOP, pJ per 8-bit FLOP, pJ per byte, gamma) and check it.

The data are NVML energy over sustained runs (power.csv of benchmarks/gpu/measure.py and measure_stack.py,
power_shard.csv of measure_power_shard.py): each row a run's time per step, average power and SM clock.
Split, fixed here so that the held-out error is never fitted to itself:
  calibration  the sustained GEMMs (at the cap, 1340-1480 MHz) and the steps of benchmarks/gpu/fit.py's training
               models (llama-3.1-8b, qwen2.5-7b, llama-2-13b: decode at the top clock, prefill at the cap)
  held out     the steps of every other model (phi-3-mini, qwen3-14b on the H200) and, on the H100, every run of
               the Llama-3-70B TP4 shard (decode at batch 64-512 and prefill)
The model: P = static + e_flop (f/f_max)^gamma (bf16 FLOPs + e_fp8_rel x 8-bit FLOPs + e_attn_rel x attention's
executed FLOPs) / t + e_byte bytes / t, with
static the idle power at the top clock read in the same power.csv (a busy GPU draws at least that; left free, the
least squares trade static against e_byte and gamma: 290-560 W of "static" with negative pJ/byte). For each gamma
of a grid e_flop, e_fp8_rel, e_attn_rel and e_byte are least squares at the measured clock and time; gamma is picked by the
calibration runs' error of the full prediction (clock solved under the cap: time, power and clock MAPE summed),
then the held-out runs are printed. GEMM runs are predicted at the efficiency they attained at their measured
clock (as fit.py fits mm_eff: at the cap, efficiency and clock cannot be told apart from times alone).
usage: python3 benchmarks/gpu/fit_power.py [--device h100|h200 ...] [--write]
"""
from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

from hw_models import load_device  # noqa: E402
from hw_models.gpu import GPUModel  # noqa: E402
from hw_models.power import PowerModel  # noqa: E402
from sim.predict import op_arrays, predict  # noqa: E402
from workloads import trace  # noqa: E402
from workloads.graph import Op  # noqa: E402

DATA = ROOT / "benchmarks" / "gpu" / "data"
SETS = {"h200": (("h200-2026-11-24", "power.csv"), ("h200-2026-12-06-stack", "power.csv")),
        "h100": (("h100-sxm-2026-11-24", "power.csv"), ("h100-sxm-2026-11-24-power-shard", "power_shard.csv"),
                 ("h100-2026-12-08-lease28-fp8-power", "power.csv"))}
# the sustained runs on random token ids (measure.py --token-ids random), each in place of its device's first set
RANDOM_IDS = {"h100": "h100-2026-12-06-random-ids", "h200": "h200-2026-12-07-lease16-random-ids"}
GAMMAS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
POWER_KEYS = ("static_w", "e_flop_pj", "e_fp8_rel", "e_attn_rel", "e_byte_pj", "gamma")
COST_KEYS = ("e_fp8_rel", "e_attn_rel")          # read by the cost model (GPUModel.energy_flops), not PowerModel


def _gemm(case):
    """(dtype, m, n, k) of a power.csv GEMM case: gemm_8192_bf16 (measure.py) or gemm_fp8_2048x8192x8192."""
    parts = case.split("_")
    if parts[1] == "8192":
        return parts[2], 8192, 8192, 8192
    m, n, k = (int(x) for x in parts[2].split("x"))
    return parts[1], m, n, k


def gemm_op(dtype, m, n, k):
    eb = 1 if dtype == "fp8" else 2
    return Op(0, "mm", "matmul", None, 1, (), (), dtype, 2 * m * n * k,
              {"weight": n * k * eb, "activation": m * k * eb + m * n * 2}, attrs=dict(m=m, n=n, k=k, batch=1))


def runs(key, sets=None):
    """Every sustained run of the device's power files (or of `sets`, (folder, file) pairs): dicts with the measured
    t, P, f and what to predict."""
    from measure_launch import shard_config
    out, idle = [], None
    for folder, name in sets or SETS[key]:
        for r in csv.DictReader(open(DATA / folder / name)):
            t, watts = float(r["step_seconds"]), float(r["avg_power_w"])
            clock = float(r.get("steady_sm_mhz") or r["avg_sm_mhz"])
            row = {"set": folder, "t": t, "P": watts, "f": clock}
            if r["case"] == "idle":
                idle = watts if idle is None else min(idle, watts)
                continue
            if r["case"].startswith("gemm"):
                dtype, m, n, k = _gemm(r["case"])
                out.append({**row, "name": f"gemm {dtype} {m}x{n}x{k}", "kind": "gemm", "op": gemm_op(dtype, m, n, k)})
                continue
            shard = name == "power_shard.csv"
            model = shard_config("llama-3-70b", 4) if shard else r["model"]
            label = "llama-3-70b/tp4" if shard else r["model"]
            g = trace(model, r["phase"], int(r["batch"]), int(r["seq_len"]))
            out.append({**row, "name": f"{label} {r['phase']} {r['batch']}x{r['seq_len']}", "kind": "step",
                        "phase": r["phase"], "shard": shard, "graph": g})
    return out, idle


TRAINING_MODELS = ("llama-3.1-8b", "qwen2.5-7b", "llama-2-13b")    # benchmarks/gpu/fit.py's


def calibrates(row) -> bool:
    return row["kind"] == "gemm" or (not row["shard"] and row["name"].split()[0] in TRAINING_MODELS)


def work(device, row, cost=None):
    """(bf16-class FLOPs, 8-bit FLOPs, bytes, attention FLOPs) of one run as the power model counts them (`cost`:
    cost-model parameters over the preset's, e.g. energy_kernel_bytes); attention's are the FLOPs its kernels
    execute (GPUModel.energy_flops: a causal prefill's half), apart from the others."""
    model = GPUModel(device, params={**(cost or {}), "e_fp8_rel": 1.0, "e_attn_rel": 1.0})   # split below
    if row["kind"] == "gemm":
        op = row["op"]
        ops, reps = [op], [1]
    else:
        ops, reps = row["graph"].ops, [op.repeat for op in row["graph"].ops]
    eight = ("fp8", "int8", "ternary")
    f16 = sum(model.energy_flops(op) * r for op, r in zip(ops, reps)
              if not (op.kind == "matmul" and op.dtype in eight) and op.kind != "attention")
    attn = sum(model.energy_flops(op) * r for op, r in zip(ops, reps) if op.kind == "attention")
    f8 = sum(model.energy_flops(op) * r for op, r in zip(ops, reps) if op.kind == "matmul" and op.dtype in eight)
    if row["kind"] == "gemm":
        nbytes = sum(row["op"].bytes.values())
    else:
        _, _, _, a = op_arrays(row["graph"], device, params=cost)
        nbytes = float((a["nbytes"][:, 0] * a["reps"]).sum())
    return f16, f8, nbytes, attn


def regress(device, cal, gamma, idle, attn=True):
    """e_flop, e_fp8_rel, e_byte and (with `attn`) e_attn_rel by least squares at the measured clock, static =
    `idle` (idle at the top clock); without `attn` attention's executed FLOPs cost a bf16 FLOP (e_attn_rel 1)."""
    f_max = PowerModel(device).f_max
    cols, y = [], []
    for r in cal:
        f16, f8, nbytes, fa = r["work"]
        s = (r["f"] / f_max) ** gamma
        if not attn:
            f16, fa = f16 + fa, 0.0
        cols.append([s * f16 / r["t"] * 1e-12, s * f8 / r["t"] * 1e-12, nbytes / r["t"] * 1e-12,
                     s * fa / r["t"] * 1e-12])
        y.append(r["P"] - idle)
    x, y = np.array(cols), np.array(y)
    use = [0, 1, 2] if np.any(x[:, 1] > 0) else [0, 2]      # no 8-bit runs: e_fp8_rel stays the rate ratio
    if attn:
        use.append(3)
    sol = dict(zip([i + 1 for i in use], np.linalg.lstsq(x[:, use], y, rcond=None)[0]))
    sol[0] = idle
    out = {"static_w": round(float(sol[0]), 1), "e_flop_pj": round(float(sol[1]), 4),
           "e_byte_pj": round(float(sol[3]), 2), "gamma": gamma}
    if 2 in sol:
        out["e_fp8_rel"] = round(float(sol[2] / sol[1]), 3)
    out["e_attn_rel"] = round(float(sol[4] / sol[1]), 3) if attn else 1.0
    return out


def gemm_efficiency(device, rows):
    """mm_eff / mm_eff_fp8 as the sustained 8192^3 GEMMs attained them at the clock NVML measured (as
    benchmarks/gpu/fit.py fits mm_eff: at the cap, efficiency and clock cannot be told apart from times alone)."""
    out = {}
    for r in rows:
        op = r.get("op")
        if op is not None and op.attrs["m"] == 8192 and op.attrs["k"] == 8192:
            rate = op.flops / r["t"]
            out["mm_eff_fp8" if op.dtype == "fp8" else "mm_eff"] = round(
                rate / device.engine_for("matrix").peak(op.dtype, r["f"]), 3)
    return out


def predicted(device, row, power, gemm_eff=None, cost=None):
    """(time, power, clock) hwsim predicts for a run with power parameters `power` (GEMM runs: with the
    efficiencies `gemm_eff`; `cost`: cost-model parameters over the preset's)."""
    params = {**(cost or {}), **{k: power[k] for k in COST_KEYS if k in power}}
    pp = {k: v for k, v in power.items() if k not in COST_KEYS}
    if row["kind"] == "gemm":
        model, pm = GPUModel(device, params={**params, **(gemm_eff or {})}), PowerModel(device, pp)
        op = row["op"]
        pt = pm.solve(lambda f: (model.cost(op, f).time_s, model.energy_flops(op), model.cost(op, f).bytes))
        return pt.time_s, pt.avg_power_w, pt.clock_mhz
    p = predict(row["graph"], device, params=params, power_params=pp)
    return p.latency_s, p.avg_power_w, p.clock_mhz


def errors(device, rows, power, gemm_eff=None, cost=None):
    out = []
    for r in rows:
        t, w, f = predicted(device, r, power, gemm_eff, cost)
        out.append((r, t, w, f, (t - r["t"]) / r["t"], (w - r["P"]) / r["P"], (f - r["f"]) / r["f"]))
    return out


def mapes(errs):
    if not errs:
        return (float("nan"),) * 3
    return tuple(100 * statistics.mean(abs(e[i]) for e in errs) for i in (4, 5, 6))


def fit(key, verbose=True, kernel_bytes=None, attn=True):
    """`kernel_bytes`: energy_kernel_bytes for the fit and its check (None: the preset's; hw_models/gpu.py);
    `attn`: fit e_attn_rel (else attention's executed FLOPs cost a bf16 FLOP)."""
    device = load_device(key)
    cost = None if kernel_bytes is None else {"energy_kernel_bytes": kernel_bytes}
    rows, idle = runs(key)
    for r in rows:
        r["work"] = work(device, r, cost)
    cal = [r for r in rows if calibrates(r)]
    held = [r for r in rows if not calibrates(r)]
    before = {k: v for k, v in device.calibration.params.items() if k in POWER_KEYS}
    eff = gemm_efficiency(device, rows)
    best, table = None, []
    for gamma in GAMMAS:
        power = regress(device, cal, gamma, idle, attn)
        c, h = mapes(errors(device, cal, power, eff, cost)), mapes(errors(device, held, power, eff, cost))
        table.append((gamma, power, c, h))
        if best is None or sum(c) < sum(best[2]):
            best = (gamma, power, c, h)
    if verbose:
        print(f"\n{key}: {len(cal)} calibration runs (sustained GEMMs, training models' steps), {len(held)} held "
              f"out (other models' steps{', the 70B TP4 shard' if key == 'h100' else ''}); idle at the top clock "
              f"{idle:.0f} W; GEMM runs at the efficiency they attained at the measured clock: {eff}")
        print("  gamma  fitted                                                      calibration t/P/f MAPE   "
              "held-out t/P/f MAPE")
        for gamma, power, c, h in table:
            mark = "*" if gamma == best[0] else " "
            print(f" {mark}{gamma:4.2f}  {str({k: v for k, v in power.items() if k != 'gamma'}):60s} "
                  f"{c[0]:5.1f} {c[1]:5.1f} {c[2]:5.1f}%      {h[0]:5.1f} {h[1]:5.1f} {h[2]:5.1f}%")
        for label, power in (("before (preset)", before), ("after (fit *)", best[1])):
            print(f"  {label}: {power}")
            print(f"    {'run':34s} {'set':24s} {'ms':>8s} {'hwsim':>8s} {'err':>6s} {'W':>5s} {'hwsim':>5s} "
                  f"{'err':>6s} {'MHz':>5s} {'hwsim':>5s} {'err':>6s}")
            for which, rs in (("calibration", cal), ("held out", held)):
                errs = errors(device, rs, power, eff if label.startswith("after") else None,
                              cost if label.startswith("after") else None)
                for r, t, w, f, et, ew, ef in errs:
                    print(f"    {r['name']:34s} {r['set']:24s} {r['t'] * 1e3:8.2f} {t * 1e3:8.2f} {100 * et:+5.1f}% "
                          f"{r['P']:5.0f} {w:5.0f} {100 * ew:+5.1f}% {r['f']:5.0f} {f:5.0f} {100 * ef:+5.1f}%")
                m = mapes(errs)
                print(f"    {which}: MAPE time {m[0]:.1f}%, power {m[1]:.1f}%, clock {m[2]:.1f}% (n={len(errs)})")
    return device, best, before


def write(device, best, sets, flags=""):
    """Write the fitted power terms into the preset's calibration params (the other parameters kept), under a
    comment that says which runs calibrated them, which were held out, and both MAPEs (`best`: fit()'s (gamma,
    power, calibration t/P/f MAPE, held-out t/P/f MAPE))."""
    from hw_models.presets import alias_table
    gamma, power, cal, held = best
    path = alias_table()[device.id]
    text = path.read_text()
    head, sep, params = text.partition("\n  params:\n")
    lines = [ln for ln in params.splitlines() if ln.split(":")[0].strip() not in POWER_KEYS
             and not ln.strip().startswith("# power:")]
    shard = [f for f in sets if "shard" in f]
    note = (f"    # power: {', '.join(k for k in POWER_KEYS if k in power)} fitted by benchmarks/gpu/fit_power.py"
            f"{flags} on the sustained GEMM runs and {', '.join(TRAINING_MODELS)}'s steps of "
            f"{' and '.join(f for f in sets if f not in shard)} (NVML energy of sustained runs); held out: the other "
            f"models' steps{' and the 70B TP4 shard runs of ' + ' and '.join(shard) if shard else ''}; gamma "
            f"{gamma} picked by the calibration runs (time/power/clock MAPE {cal[0]:.1f}/{cal[1]:.1f}/{cal[2]:.1f}%), "
            f"held out {held[0]:.1f}/{held[1]:.1f}/{held[2]:.1f}%; docs/stack-accuracy.md")
    lines += [note] + [f"    {k}: {power[k]}" for k in POWER_KEYS if k in power]
    path.write_text(head + sep + "\n".join(lines) + "\n")
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", action="append", choices=sorted(SETS))
    ap.add_argument("--write", action="store_true", help="write the fitted power terms into the preset")
    ap.add_argument("--random-ids", action="store_true",
                    help="the sustained runs on random token ids (RANDOM_IDS: measure.py --token-ids random, "
                         "real-text-like activations) in place of the 2026-11-24 power.csv, whose steps ran on "
                         "all-zero token ids (less GEMM power)")
    ap.add_argument("--kernel-bytes", type=float, default=None,
                    help="energy_kernel_bytes for the fit (0-1: the share of eager kernels' extra bytes charged "
                         "e_byte; default: the preset's); shown, not written")
    ap.add_argument("--no-attn", action="store_true",
                    help="attention's executed FLOPs at the energy of a bf16 GEMM FLOP (e_attn_rel 1, not fitted)")
    args = ap.parse_args(argv)
    if args.random_ids:
        for key, folder in RANDOM_IDS.items():
            SETS[key] = ((folder, "power.csv"),) + SETS[key][1:]
    for key in args.device or sorted(SETS):
        device, best, _ = fit(key, kernel_bytes=args.kernel_bytes, attn=not args.no_attn)
        if args.write:
            write(device, best, [f for f, _ in SETS[key]], " --random-ids" if args.random_ids else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
