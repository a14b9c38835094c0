"""`hwsim predict`: latency, energy and power of one step on one device, or of a CSV of cases."""
from __future__ import annotations

import csv
import io
import sys
import time
from types import SimpleNamespace

from hw_models import load_device
from hw_models.stacks import STACK_HELP, STACKS
from workloads.errors import HwsimError

from ..predict import predict
from .output import command, document, emit_json, human, write_atomic
from .workload_args import (add_host_args, add_workload_args, check_model_args, host_options, workload_from_args,
                            workload_inputs)

EXAMPLES = """examples:
  hwsim predict --model llama-3.1-8b --hardware h100 --phase decode --batch 32 --seq-len 2048
  hwsim predict --model llama-3.1-70b --hardware h100 --phase prefill --seq-len 4096 --quant fp8 --json
  hwsim predict --cases cases.csv --out results.csv
  hwsim predict --module tests/data/vit.py:build --hardware h100     # any torch module: FUNC() -> (module, args)

--cases: a CSV with columns model,hardware,phase,batch,seq_len,dtype (optional: quant, and impl to override
--impl per row; extra columns are passed through);
the output adds latency_s, energy_j, avg_power_w, peak_power_w, clock_mhz, bound, fits and status.
seq_len is the prompt for prefill and the cached context for decode (one new token per sequence).
"""
CASE_COLUMNS = ("model", "hardware", "phase", "batch", "seq_len", "dtype")
OUT_COLUMNS = ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "bound", "fits", "status")


def register(sub):
    p = command(sub, "predict", "predict latency, energy and power of a step on a device",
                "Predict one traced step (or every case of a CSV) on a device preset.", EXAMPLES)
    add_workload_args(p, model_required=False)
    p.add_argument("--hardware", help="device preset id or alias (see `hwsim hardware`) or a preset .yaml path")
    p.add_argument("--profile", default="eager", choices=list(STACKS), help=STACK_HELP)
    p.add_argument("--cases", metavar="CSV", help="batch mode: one case per row")
    p.add_argument("--out", metavar="FILE", help="batch mode: output CSV (default: stdout); single case: JSON file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_host_args(p)
    p.set_defaults(run=run)


def run(args):
    if args.cases:
        return run_cases(args)
    if not (args.model or args.module) or not args.hardware:
        raise HwsimError("predict needs --model (or --module) and --hardware (or --cases CSV)")
    check_model_args(args, "predict")
    device = load_device(args.hardware)
    hosting = host_options(args)
    graph = workload_from_args(args)
    p = predict(graph, device, args.profile, **hosting)
    if not p.fits:
        raise HwsimError(f"{p.model} {p.phase} needs {human(p.memory_needed_bytes, 'B')} of memory but {device.id} has "
                         f"{human(p.memory_capacity_bytes, 'B')}; use a larger device, --quant, or a smaller batch/context")
    if args.json or args.out:
        emit_json(document("predict", {**workload_inputs(args), "hardware": args.hardware, "profile": args.profile,
                                       **hosting},
                           result=p.summary(), ops=p.ops), args.out)
        return 0
    if graph.meta.get("traced_from") == "torch-module":
        print(f"{p.model} forward on {device.name} (batch {graph.meta['batch']}, {graph.meta['dtype']}, "
              f"{human(graph.meta['params'])} parameters)")
        print(f"  latency     {p.latency_s * 1e3:.3f} ms   ({graph.meta['batch'] / p.latency_s:,.0f} items/s)")
    else:
        print(f"{p.model} {p.phase} on {device.name} (batch {graph.meta['batch']}, seq-len {graph.meta['seq_len']}, "
              f"{graph.meta['dtype']}{', ' + graph.meta.get('quant') if graph.meta.get('quant', 'none') != 'none' else ''})")
        print(f"  latency     {p.latency_s * 1e3:.3f} ms   "
              f"({graph.meta['batch'] * graph.meta['new_tokens'] / p.latency_s:,.0f} tokens/s)")
    print(f"  energy      {p.energy_j:.3f} J")
    print(f"  power       {p.avg_power_w:.0f} W average, {p.peak_power_w:.0f} W peak op; clock {p.clock_mhz:.0f} MHz"
          f"{' (held down by the ' + format(device.power.tdp_w, '.0f') + ' W cap)' if p.power_capped else ''}")
    print(f"  bound       {p.bound}  ({human(p.flops)}FLOP, {human(p.bytes, 'B')} moved)")
    if p.host:
        print(f"  host        {p.host}: {p.host_busy_s * 1e3:.3f} ms issuing; the GPU waits "
              f"{p.device_idle_s * 1e3:.3f} ms ({100 * p.device_idle_s / p.latency_s:.0f}% of the step)")
    print(f"  memory      {human(p.memory_needed_bytes, 'B')} of {human(p.memory_capacity_bytes, 'B')}")
    return 0


def _case(row, n, impl="hwsim"):
    missing = [c for c in CASE_COLUMNS if c not in row]
    if missing:
        raise HwsimError(f"cases file lacks column(s) {', '.join(missing)}; it needs {','.join(CASE_COLUMNS)}")
    try:
        batch, seq_len = int(row["batch"]), int(row["seq_len"])
    except ValueError:
        raise HwsimError(f"cases row {n}: batch and seq_len must be integers") from None
    return SimpleNamespace(model=row["model"], phase=row["phase"], batch=batch, seq_len=seq_len, context=0,
                           dtype=row["dtype"] or "bf16", quant=row.get("quant") or "none", kv_dtype=None,
                           group_size=None, sparsity=None, drop_layers="", drop_attention="", shared_prefix=None,
                           expert_tokens="", impl=(row.get("impl") or impl).strip(), module=None)


def _sweep(cases, device, profile, hosting=None):
    """Predict many cases of one model/phase/device through its graph template at once; returns
    {case index: result dict} for the cases it could take (the rest go through `predict` one by one)."""
    from workloads import capture
    from workloads.capture import Phase, load_spec

    from ..sweep import predict_many
    first = cases[0][1]
    spec = load_spec(first.model, first.impl)
    if spec.moe is not None:
        return {}
    windows = [k.window for k in spec.layer_kinds if k.window]
    steps = {}
    for i, case in cases:
        try:
            ph = Phase(case.phase, case.batch, case.seq_len, 0)
        except HwsimError:
            continue
        if ph.positions > spec.max_positions or (windows and ph.positions > min(windows)):
            continue
        step = ph.step()
        steps[i] = (step.batch, step.new_tokens, step.cached)
    tpl = capture._template(spec, first.phase, first.impl) if steps else None
    if tpl is None:
        return {}
    out, by_regime = {}, {}
    for i, (b, n, c) in steps.items():
        if tpl.covers(b, n):
            by_regime.setdefault((b > 1, n > 1), []).append(i)
    for idx in by_regime.values():
        graph = tpl.instantiate_many(*zip(*(steps[i] for i in idx)))
        r = predict_many(graph, device, profile, **(hosting or {}))
        for j, i in enumerate(idx):
            out[i] = {"latency_s": f"{r['latency_s'][j]:.6g}", "energy_j": f"{r['energy_j'][j]:.6g}",
                      "avg_power_w": f"{r['avg_power_w'][j]:.1f}", "peak_power_w": f"{r['peak_power_w'][j]:.1f}",
                      "clock_mhz": f"{r['clock_mhz'][j]:.0f}", "bound": str(r["bound"][j]), "fits": bool(r["fits"][j])}
    return out


def run_cases(args):
    try:
        text = open(args.cases, encoding="utf-8").read()
    except OSError as exc:
        raise HwsimError(f"cannot read cases file {args.cases}: {exc.strerror}") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise HwsimError(f"cases file {args.cases} has no rows")
    start = time.perf_counter()
    hosting = host_options(args)
    cases = [(n, _case(row, n, args.impl)) for n, row in enumerate(rows, 1)]
    devices, results, groups = {}, {}, {}
    for n, case in cases:
        if case.dtype == "bf16" and case.quant == "none":
            groups.setdefault((case.model, case.phase, rows[n - 1]["hardware"], case.impl), []).append((n, case))
    for (model, phase, hardware, impl), members in groups.items():
        try:
            device = devices.get(hardware) or devices.setdefault(hardware, load_device(hardware))
            if device.device_class == "gpu":
                results.update(_sweep(members, device, args.profile, hosting))
        except HwsimError:
            pass            # the one-by-one path below reports the error on each row
    out_rows, graphs, predictions = [], {}, {}
    for (n, case), row in zip(cases, rows):
        status, result = "ok", results.get(n)
        if result is None:
            result = {}
            try:
                device = devices.get(row["hardware"]) or devices.setdefault(row["hardware"], load_device(row["hardware"]))
                key = (case.model, case.phase, case.batch, case.seq_len, case.dtype, case.quant, case.impl)
                graph = graphs.get(key) or graphs.setdefault(key, workload_from_args(case))
                pkey = key + (device.id,)
                p = predictions.get(pkey) or predictions.setdefault(pkey, predict(graph, device, args.profile, **hosting))
                result = {"latency_s": f"{p.latency_s:.6g}", "energy_j": f"{p.energy_j:.6g}",
                          "avg_power_w": f"{p.avg_power_w:.1f}", "peak_power_w": f"{p.peak_power_w:.1f}",
                          "clock_mhz": f"{p.clock_mhz:.0f}", "bound": p.bound, "fits": p.fits}
            except HwsimError as exc:
                status = f"error: {exc}"
        if result and not result["fits"]:
            status = "does not fit in device memory"
        out_rows.append({**row, **{c: result.get(c, "") for c in OUT_COLUMNS}, "status": status})
    fields = list(rows[0].keys()) + [c for c in OUT_COLUMNS if c not in rows[0]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(out_rows)
    if args.out:
        write_atomic(args.out, buf.getvalue())
        rate = len(rows) / (time.perf_counter() - start)
        print(f"{len(rows)} cases -> {args.out} ({rate:,.0f} cases/s)", file=sys.stderr)
    else:
        sys.stdout.write(buf.getvalue())
    return 0
