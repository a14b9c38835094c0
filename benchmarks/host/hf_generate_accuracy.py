"""hwsim against measured Hugging Face generate() (issue 18): per-case errors of `--impl hf` with each profile.

Data: benchmarks/gpu/data/*-hf-generate/generate.csv (benchmarks/gpu/measure_hf_generate.py; one row per
model x batch x prompt; every step's duration in steps.jsonl). For each case hwsim predicts, on the GPU named in the
folder's env.json and its lent-host preset for HF code (H200: h200-lent-host-hf, whose launch cost --fit-launch
fitted on the calibration set; H100: h100-lent-host-hf, every cost probed on that host, nothing fitted; or --host
FILE, e.g. a `hwsim probe-host` file of that machine):
  forward   the plain prefill forward (CUDA events from the first issue to the last kernel): `eager-launch`
  prefill   generate()'s first step (prefill + sampling + stopping check): `hf-generate`, prefill
  tpot      the median decode step (context = prompt + new_tokens / 2, or what generate() really keeps: Phi-3 drops
            its cache every step once the ids pass original_max_position_embeddings, workloads/hf.py
            generate_cached_lengths): `hf-generate`, decode; beside it the same stack on hwsim's own modules of
            the config (`--impl hwsim`)
  power     mean NVML power over the decode steps: `hf-generate` decode average power (where a data set has
            settled readings, measure_hf_generate.py --settle, the decode energy by conservation: the boundary
            readings of the other sets carry the preceding prefill's energy)
`eager` (GPU time alone) is printed beside, as the floor a host-blind model gives.
The decode steps of one case can run in two regimes (see the data folder's README); `--steps first3|rest|all`
picks which steps' median is the measured TPOT (default all: what generate.csv's tpot_median_s holds).
first3 is the warm process (lengths the case's warm-up ran) and is predicted warm. all and rest are the process's
first pass over the case's later lengths: predicted as a first pass (`predict(..., first_pass=True)`: torch's cuDNN
SDPA builds a graph per new attention shape, hw_models/host.py `cudnn_new_shape`) where no earlier case of the same
process ran the step's cuDNN shapes (same batch, heads, head dims and KV length: the cache lives as long as the
process; the cases run in generate.csv's order, one process per measure_hf_generate.py call, PROCESSES below), else
warm. `--warm` predicts every mode warm (what this script did before the first pass was modelled).

Calibration and held-out architectures (issue 18's acceptance: fit on half, report the other half):
  calibration  llama-3.1-8b, qwen2.5-7b, phi-3-mini, qwen1.5-moe-a2.7b, qwen3-14b, llama-2-7b (H100 set only)
  held out     mistral-7b, falcon-7b, gemma-2-9b, deepseek-v2-lite, qwen1.5-1.8b, mixtral-8x7b (and opt-6.7b)
`--fit-launch` fits the host's kernel-launch cost (a library call costs launch + the development probe's extra,
as benchmarks/host/fit_lent_hosts.py does) to the calibration cases' TPOT only, then reports both sets with it;
the sets' MAPEs are printed separately.

hwsim traces the transformers installed where it runs; the data names the version it was measured with. They
should match (HF's attention code changed between 5.17 and 5.25: Falcon's multi-query call reaches torch's math
path in 5.17 only). For the 2026-12-06 data: `pip install transformers==5.17.0` in a virtual environment, or put an
unpacked 5.17.0 wheel first on PYTHONPATH.

usage: python3 benchmarks/host/hf_generate_accuracy.py [--data FOLDER] [--host FILE|own] [--steps all|first3|rest]
                                                      [--fit-launch] [--warm]
(issue 18's table, every set from its own probe: `--steps first3 --host own`, transformers 5.17.0 first on PYTHONPATH)
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import warnings

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from hw_models.host import HostModel, HostSpec, load_host  # noqa: E402
from sim.probe_host import batch_spread  # noqa: E402
from hw_models.stacks import STACKS, op_scale_for  # noqa: E402
from sim import api  # noqa: E402
from workloads.errors import HwsimError  # noqa: E402

DATA = os.path.join(ROOT, "benchmarks", "gpu", "data")
PRESET = {"H200": ("h200", "h200-lent-host-hf"), "H100": ("h100", "h100-lent-host-hf")}
CALIBRATION = ("llama-3.1-8b", "qwen2.5-7b", "phi-3-mini", "qwen1.5-moe-a2.7b", "qwen3-14b", "llama-2-7b")
MOE = "moe|mixtral|deepseek"
DEV = os.path.join(ROOT, "benchmarks", "host", "data", "dev-cpu-2core.yaml")
# folder -> the configs whose first case began a new process (a further measure_hf_generate.py call), from the
# folders' READMEs; every other folder's top-level cases ran in one process
PROCESSES = {"h100-2026-12-06-hf-generate": ("llama-2-7b.json",),          # hf-grid-a, then hf-fill-a
             "h100-2026-12-06-lease2-hf-generate": ("llama-2-7b.json",),   # hf-grid-a, then hf-fill-a
             "h100-2026-12-06-lease8-hf-generate": ("deepseek-v2-lite.json",),   # s7a.sh, then s7b.sh (5 archs)
             "h100-2026-12-06-lease10-hf-generate": ("deepseek-v2-lite.json",),  # s8a.sh, then s8b.sh (7 archs)
             "h100-2026-12-06-lease12-hf-generate": (),                          # call B alone: one process
             "h100-2026-12-06-lease13-hf-generate": ("gemma-2-9b.json",),        # s10a.sh, then s10b.sh
             # s14.sh, then two calls on the warm machine (qwen1.5-1.8b again, then lease14's six architectures)
             "h200-2026-12-07-lease16-hf-generate": ("qwen1.5-1.8b.json", "mistral-7b.json")}


def with_launch(host, launch_us: float) -> HostSpec:
    """`host` with its launch cost set (library = launch + the development probe's library-over-launch extra; the
    sync's return is issued like a launch), as benchmarks/host/fit_lent_hosts.py fits it."""
    dev = load_host(DEV).costs_us
    costs = dict(host.costs_us, launch=launch_us, library=launch_us + dev["library"] - dev["launch"], sync=launch_us)
    # a launch fitted to whole steps already holds what the stack's host_op_scale adds to a probed one
    provenance = dict(host.provenance, **{"costs_us.launch": "fitted by hf_generate_accuracy.py --fit-launch"})
    return HostSpec(f"{host.id}-fit", host.name, costs, provenance, host.speed, host.machine)


def fit_launch(df, device, host):
    """The launch cost (0.5 us grid, 5-40 us) with the least mean |error| of TPOT over the calibration rows."""
    rows = [r for r in df.itertuples() if r.config.removesuffix(".json") in CALIBRATION]
    best = None
    for half in range(10, 81):
        h = with_launch(host, half / 2)
        errs = []
        for r in rows:
            model = r.config.removesuffix(".json")
            ctx = int(r.prompt) + int(r.new_tokens) // 2
            p = api.predict(model, device, "decode", int(r.batch), ctx, profile="hf-generate", impl="hf", host=h)
            errs.append(abs(p.latency_s / r.tpot_median_s - 1))
        score = statistics.mean(errs)
        if best is None or score < best[0]:
            best = (score, half / 2)
    return best[1], best[0], len(rows)


def folders():
    """Every generate() set: `*-hf-generate` and its variants (`-b32`, `-p4096`) that kept their steps."""
    return sorted(os.path.join(DATA, d) for d in os.listdir(DATA)
                  if "-hf-generate" in d and os.path.exists(os.path.join(DATA, d, "steps.jsonl")))


def measured(folder, steps_mode):
    df = pd.read_csv(os.path.join(folder, "generate.csv"))
    df = df[df.status == "ok"].copy()
    per, flat = {}, {}
    steps_file = os.path.join(folder, "steps.jsonl")
    if not os.path.isfile(steps_file):
        if steps_mode != "all":
            raise SystemExit(f"{folder} has no steps.jsonl (its README says why): use --steps all, which reads "
                             "generate.csv's median over every decode step")
        steps_file = os.devnull
    for line in open(steps_file):
        d = json.loads(line)
        dec = d["steps_s"][1:]
        part = dec[:3] if steps_mode == "first3" else dec[3:] if steps_mode == "rest" else dec
        key = (d["config"], d["batch"], d["prompt"])
        per[key] = statistics.median(part)
        # the steps after the first three within 10% of them: the power reading (first decode step to the end)
        # then describes the same steps as the TPOT compared (see the data folder's README, first-seen lengths)
        flat[key] = len(dec) > 4 and statistics.median(dec[4:]) < 1.1 * statistics.median(dec[:3])
    keys = list(zip(df.config, df.batch, df.prompt))
    if steps_mode != "all":
        df["tpot_median_s"] = [per[k] for k in keys]
    df["flat"] = [flat.get(k, False) for k in keys]
    if "settled_decode_power_w" in df and df.settled_decode_power_w.notna().any():
        # decode energy by conservation (measure_hf_generate.py --settle): the counter read with the GPU idle
        # before and after, prefill-only energy subtracted, over warm steps: the ground truth for decode power where
        # a data set has it (the boundary readings carry the preceding prefill: 857 W on a 700 W board)
        settled = df.settled_decode_power_w.notna()
        df.loc[settled, "decode_power_w"] = df.loc[settled, "settled_decode_power_w"]
        df.loc[settled, "flat"] = True
    return df


# a data set whose own runs disagree by more than this (mean over cases of |first half / second half - 1| of the
# warm decode steps) was measured on a host whose speed moved during the runs: no prediction of one number per case
# can be held to 10% on it (docs/tracing-and-host.md, "Tenth session")
UNSTEADY_HALVES = 0.03


def case_halves(folder) -> dict:
    """(config, batch, prompt) -> (|median of the first half / median of the second - 1|, p90 / p10) of the case's
    warm decode steps (the fifth on, in time order); cases with fewer than 20 such steps are left out."""
    path = os.path.join(folder, "steps.jsonl")
    out = {}
    for line in open(path) if os.path.isfile(path) else ():
        d = json.loads(line)
        dec = d["steps_s"][4:]
        if len(dec) < 20:
            continue
        n = len(dec) // 2
        out[(d["config"], d["batch"], d["prompt"])] = (
            abs(statistics.median(dec[:n]) / statistics.median(dec[n:]) - 1), batch_spread(dec))
    return out


def run_steadiness(folder) -> dict:
    """How steady the host was during a data set's own runs, from steps.jsonl alone (no model): per case, the warm
    decode steps (the fifth on) split in two halves in time order; `halves` = mean over cases of |median of the first
    half / median of the second - 1|, `halves_max` its largest, `spread` = the median over cases of p90 / p10 of
    those steps. A steady lease reads ~1% and ~1.03; a host shared with other work 6-17% and 1.2-1.7."""
    per = case_halves(folder)
    halves, spreads = [h for h, _ in per.values()], [s for _, s in per.values()]
    if not halves:
        return {"cases": 0}
    return {"cases": len(halves), "halves": statistics.mean(halves), "halves_max": max(halves),
            "moved": sum(h > UNSTEADY_HALVES for h in halves) / len(halves),
            "spread": statistics.median(spreads), "steady": statistics.mean(halves) <= UNSTEADY_HALVES}


def by_set(table, column="set"):
    """(label, rows) for the calibration and held-out architectures of a per-case table with a `set` column, each
    only where it has rows (across_hosts.py and sidecar_speed.py print one summary line per set)."""
    for label in ("calibration", "held-out"):
        rows = table[table[column] == label]
        if not rows.empty:
            yield label, rows


def steadiness_line(folder) -> str:
    st = run_steadiness(folder)
    if not st["cases"]:
        return "run steadiness: no steps.jsonl (not judged)"
    return (f"run steadiness: {'steady' if st['steady'] else 'UNSTEADY'} host (halves of one run differ "
            f"{st['halves']:.1%} on average, at most {st['halves_max']:.0%}, by more than {UNSTEADY_HALVES:.0%} in "
            f"{st['moved']:.0%} of cases; step spread p90/p10 {st['spread']:.2f}; {st['cases']} cases)")


def cudnn_shapes(r, ctx) -> frozenset:
    """The cuDNN SDPA shape keys (hw_models/host.py cudnn_key) of the case's traced decode step at context `ctx`."""
    from hw_models.host import cudnn_key
    model = r.config.removesuffix(".json")
    g = api.workload(model, "decode", int(r.batch), ctx, impl="hf", **_drop(r, model))
    return frozenset(cudnn_key(op.attrs) for op in g.ops if op.attrs.get("cudnn"))


def first_passes(df, folder) -> list:
    """Per case (df's order, the run order): whether its median decode step is a first pass, i.e. some cuDNN SDPA
    shape of it was run neither by an earlier case of the same process nor by the case's own 4-token warm-up (its
    first decode step's shapes: the median step's too where a sliding-window cache holds the KV length)."""
    starts = PROCESSES.get(os.path.basename(os.path.normpath(folder)), ())
    seen, out, began = set(), [], set()
    for r in df.itertuples():
        if r.config in starts and r.config not in began:
            began.add(r.config)
            seen = set()                     # a new process: an empty cuDNN graph cache
        try:
            warm_up = cudnn_shapes(r, max(decode_contexts(r)[0], 1))
            keys = cudnn_shapes(r, decode_context(r))
        except HwsimError:
            warm_up = keys = frozenset()
        seen |= warm_up
        out.append(bool(keys - seen))
        seen |= keys
    return out


def decode_contexts(r) -> tuple:
    """The KV length each decode step of the case attends to from generate()'s cache (workloads/hf.py
    generate_cached_lengths: 0 where generate() dropped its cache, e.g. Phi-3 at a 4,096-token prompt)."""
    from workloads.hf import generate_cached_lengths
    path = Path(ROOT) / "workloads" / "zoo" / r.config
    if not path.exists():                          # not a zoo config: the plain lengths
        return tuple(range(int(r.prompt), int(r.prompt) + int(r.new_tokens) - 1))
    return generate_cached_lengths(path.read_text(), r.config.removesuffix(".json"), int(r.prompt), int(r.new_tokens))


def decode_context(r) -> int:
    """The median decode step's context (prompt + new_tokens / 2 where generate() keeps its cache; 1 where it
    restarts it every step: the step's token and one cached, within a token of the real cache-less step)."""
    return max(decode_contexts(r)[int(r.new_tokens) // 2], 1)


def _drop(r, model) -> dict:
    total = _layers(model)
    if int(r.layers) < total:        # the measured model kept its first N layers (":N" in measure_hf_generate.py)
        return {"drop_layer_ids": tuple(range(int(r.layers), total))}
    return {}


def predict_row(r, device, host, first_pass=False):
    model = r.config.removesuffix(".json")
    kw = dict(impl="hf", host=host, **_drop(r, model))
    ctx = decode_context(r)
    out = {}
    out["forward_s"] = api.predict(model, device, "prefill", int(r.batch), int(r.prompt), profile="eager-launch",
                                   **kw).latency_s
    out["prefill_s"] = api.predict(model, device, "prefill", int(r.batch), int(r.prompt), profile="hf-generate",
                                   **kw).latency_s
    d = api.predict(model, device, "decode", int(r.batch), ctx, profile="hf-generate", **kw)
    if first_pass:
        c = api.predict(model, device, "decode", int(r.batch), ctx, profile="hf-generate", first_pass=True, **kw)
        out["tpot_s"] = c.latency_s      # power stays the warm step's (the settled runs read warm steps)
    else:
        out["tpot_s"] = d.latency_s
    out["power_w"] = d.avg_power_w
    out["energy_j"], out["wait_s"] = d.energy_j, d.device_idle_s
    gpu_only = {k: v for k, v in kw.items() if k != "host"}     # eager replays CUDA graphs: no host to name
    out["tpot_gpu_s"] = api.predict(model, device, "decode", int(r.batch), ctx, profile="eager", **gpu_only).latency_s
    own = dict(kw, impl="hwsim")       # hwsim's own modules for the same config, same host and stack
    out["tpot_hwsim_s"] = api.predict(model, device, "decode", int(r.batch), ctx, profile="hf-generate",
                                      first_pass=first_pass, **own).latency_s
    out["forward_gpu_s"] = api.predict(model, device, "prefill", int(r.batch), int(r.prompt), profile="eager",
                                       **gpu_only).latency_s
    return out


def power_at(p, r, wait_w):
    """hwsim's decode power at the measured step time (the settled run's where the set has one, else the measured
    TPOT): the predicted kernels' energy plus the GPU's wait for the host (host_wait_w) over the rest of the measured
    step. Separates the power model from the timing model: on a lease whose host runs slower than its probe says,
    the predicted power is too high because the predicted step is too short."""
    t = r.tpot_median_s
    settled = getattr(r, "settled_generate_s", None)
    if settled is not None and settled == settled:          # present and not NaN
        t = (r.settled_generate_s - r.settled_prefill_s) / max(int(r.new_tokens) - 1, 1)
    kernels = p["energy_j"] - wait_w * p["wait_s"]
    busy = p["tpot_s"] - p["wait_s"]
    return (kernels + wait_w * max(t - busy, 0.0)) / t


def _layers(model):
    from workloads import load_spec
    spec = load_spec(model, "hf")
    return next(getattr(spec, a) for a in ("n_layers", "num_layers", "layers") if hasattr(spec, a))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", help="a *-hf-generate folder (default: all of them)")
    ap.add_argument("--host", help="host preset or `hwsim probe-host` file (default: the GPU's lent-host preset); "
                                   "`own`: each folder's own host-before.yaml (the probe before its run)")
    ap.add_argument("--steps", choices=("all", "first3", "rest"), default="all")
    ap.add_argument("--csv", help="also write the per-case table here")
    ap.add_argument("--fit-launch", action="store_true", help="fit the host's launch cost on the calibration TPOT")
    ap.add_argument("--warm", action="store_true",
                    help="predict every case as a warm process, also for --steps all|rest (no first-pass cost)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    tables = []
    from workloads.hf import transformers_version
    for folder in args.data or folders():
        env = json.load(open(os.path.join(folder, "env.json")))
        device, host = next(v for k, v in PRESET.items() if k in env["gpu"])
        own = os.path.join(folder, "host-before.yaml")
        if args.host == "own" and not os.path.exists(own):
            print(f"{os.path.basename(folder)}: no host-before.yaml; predicted with the preset host {host}")
        host = load_host(own if args.host == "own" and os.path.exists(own) else
                         host if args.host in (None, "own") else args.host)
        from hw_models import load_device
        from hw_models.power import PowerModel, host_wait_w
        wait_w = host_wait_w(PowerModel(load_device(device)))
        df = measured(folder, args.steps)
        traced = transformers_version()
        if traced != env["transformers"]:
            print(f"warning: tracing with transformers {traced}, measured with {env['transformers']}: HF code that "
                  f"changed between them is costed as the installed version runs it")
        if args.fit_launch:
            launch, score, n = fit_launch(df, device, host)
            print(f"fitted launch {launch:.1f} us on {n} calibration cases' TPOT (mean |error| {score:.1%}); "
                  f"was {host.costs_us['launch']:.1f} us in {host.id}")
            host = with_launch(host, launch)
        rows, skipped = [], {}
        cold = [False] * len(df) if args.warm or args.steps == "first3" else first_passes(df, folder)
        halves = case_halves(folder)
        for r, first in zip(df.itertuples(), cold):
            try:
                p = predict_row(r, device, host, first)
            except HwsimError as exc:
                skipped[r.config.removesuffix(".json")] = str(exc)
                continue
            rows.append({"data": os.path.basename(folder), "model": r.config.removesuffix(".json"), "batch": r.batch,
                         "prompt": r.prompt,
                         "forward_ms": r.prefill_forward_s * 1e3, "forward_err": p["forward_s"] / r.prefill_forward_s - 1,
                         "forward_gpu_err": p["forward_gpu_s"] / r.prefill_forward_s - 1,
                         "prefill_ms": r.prefill_step_s * 1e3, "prefill_err": p["prefill_s"] / r.prefill_step_s - 1,
                         "tpot_ms": r.tpot_median_s * 1e3, "tpot_err": p["tpot_s"] / r.tpot_median_s - 1,
                         "tpot_gpu_err": p["tpot_gpu_s"] / r.tpot_median_s - 1,
                         "tpot_hwsim_err": p["tpot_hwsim_s"] / r.tpot_median_s - 1,
                         "power_w": r.decode_power_w, "power_err": p["power_w"] / r.decode_power_w - 1,
                         "power_at_t_err": power_at(p, r, wait_w) / r.decode_power_w - 1,
                         "flat": bool(r.flat), "first_pass": first,
                         "moved": halves.get((r.config, r.batch, r.prompt), (0.0, 1.0))[0] > UNSTEADY_HALVES})
        t = pd.DataFrame(rows)
        tables.append(t)
        hm = HostModel(host, op_scale_for("hf-generate", host), per_call=True)
        how = ("py_call not in this host file: py_op x 38 / 22, the probe's Llama layer (a probe written before "
               "py_call)" if hm.py_call_derived else "as probed" if "py_call" in host.costs_us else
               "py_op not in this host file either: 0")
        print(f"\n{os.path.basename(folder)}: {env['gpu']}, transformers {env['transformers']} (traced with {traced}), "
              f"torch {env['torch']}, host model {host.id} (launch {host.costs_us['launch']:.1f} us; HF code per "
              f"model-code Python call: py_call {hm.s['py_call'] * 1e6:.2f} us, {how}" +
              (f"; model-code costs x{hm.op_scale:.2f} (host_op_scale)" if hm.op_scale != 1 else "") +
              f"), measured TPOT = median of {args.steps} decode steps; predicted "
              f"{'warm' if args.warm or args.steps == 'first3' else 'as a first pass in the cases marked first_pass'}")
        print("  " + steadiness_line(folder))
        for model, why in skipped.items():
            print(f"  {model}: not predicted ({why[:160]})")
        with pd.option_context("display.width", 200, "display.max_rows", 200):
            show = t.drop(columns=["data"]).copy()
            for c in show.columns:
                if c.endswith("_err"):
                    show[c] = (show[c] * 100).map("{:+.0f}%".format)
            print(show.round(1).to_string(index=False))
        cal = t.model.isin(CALIBRATION)
        for label, sel in (("calibration", cal), ("held-out", ~cal),
                           ("held-out dense", ~cal & ~t.model.str.contains(MOE)),
                           ("held-out MoE", ~cal & t.model.str.contains(MOE)),
                           # the cases the host held steady through (their own halves within 3%): what the model
                           # says where the measurement agrees with itself (a filter on the data alone)
                           ("held-out steady", ~cal & ~t.moved)):
            s = t[sel]
            if len(s):
                print(f"  {label:14s} n={len(s):2d}  MAPE forward {s.forward_err.abs().mean():.0%} "
                      f"(GPU time alone {s.forward_gpu_err.abs().mean():.0%}), prefill step {s.prefill_err.abs().mean():.0%}, "
                      f"TPOT {s.tpot_err.abs().mean():.0%} (GPU time alone {s.tpot_gpu_err.abs().mean():.0%}, "
                      f"--impl hwsim {s.tpot_hwsim_err.abs().mean():.0%}), "
                      f"decode power {s.power_err.abs().mean():.0%} (flat steps only: "
                      f"{s[s.flat].power_err.abs().mean() if s.flat.any() else float('nan'):.0%}, n={int(s.flat.sum())}; "
                      f"at the measured step time {s.power_at_t_err.abs().mean():.0%})")
    if args.csv:
        pd.concat(tables).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
