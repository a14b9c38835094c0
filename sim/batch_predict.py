"""Predict every row of a cases table; a bad row gets an error status and never costs the other rows.

Rows of one dense model, phase and GPU (bf16, no quantization) run together through the model's graph
template as arrays (sim.sweep); every other row, and any the array path cannot take, runs one by one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hw_models import load_device
from workloads.errors import HwsimError
from workloads.recipe import build_workload

from .cases import ERROR, RESULTS, WHERE, parse_case
from .predict import predict


def _device(cache: dict, name: str):
    """A device by preset name, its loading error kept too (thousands of rows may name the same bad one)."""
    if name not in cache:
        try:
            cache[name] = load_device(name)
        except HwsimError as exc:
            cache[name] = exc
    if isinstance(cache[name], Exception):
        raise cache[name]
    return cache[name]


def _row(latency, energy, avg, peak, clock, bound, fits, tokens, needed) -> dict:
    return {"latency_s": latency, "tokens_per_s": tokens / latency if latency else None, "energy_j": energy,
            "avg_power_w": avg, "peak_power_w": peak, "clock_mhz": clock, "bound": bound, "fits": bool(fits),
            "memory_gb": needed / 1e9}


def _sweep(cases: list, device, profile: str) -> dict:
    """{row index: result} for the rows of one model/phase/GPU the graph template covers."""
    from workloads import capture
    from workloads.capture import Phase, load_spec

    from .sweep import predict_many
    first = cases[0][1]
    spec = load_spec(first.model)
    if spec.moe is not None:
        return {}
    windows = [k.window for k in spec.layer_kinds if k.window]
    if windows and min(windows) < capture._template_reach():     # as in capture.trace
        return {}
    steps = {}
    for i, case in cases:
        try:
            ph = Phase(case.phase, case.batch, case.seq_len, case.context)
        except HwsimError:
            continue
        if ph.positions > spec.max_positions or (windows and ph.positions > min(windows)):
            continue
        step = ph.step()
        steps[i] = (step.batch, step.new_tokens, step.cached)
    tpl = capture._template(spec, first.phase) if steps else None
    if tpl is None:
        return {}
    out, by_regime = {}, {}
    for i, (b, n, c) in steps.items():
        if tpl.covers(b, n):
            by_regime.setdefault((b > 1, n > 1), []).append(i)
    for idx in by_regime.values():
        graph = tpl.instantiate_many(*zip(*(steps[i] for i in idx)))
        r = predict_many(graph, device, profile)
        largest = np.max(np.stack([np.asarray(op.bytes.get("activation", 0.0), dtype=float) * np.ones(len(idx))
                                   for op in graph.ops]), axis=0)
        needed = graph.meta["weight_storage_bytes"] + graph.meta["kv_cache_storage_bytes"] + largest
        for j, i in enumerate(idx):
            b, n, _ = steps[i]
            out[i] = _row(float(r["latency_s"][j]), float(r["energy_j"][j]), float(r["avg_power_w"][j]),
                          float(r["peak_power_w"][j]), float(r["clock_mhz"][j]), str(r["bound"][j]),
                          bool(r["fits"][j]), b * n, float(needed[j]))
    return out


def _one(case, device, profile: str, graphs: dict) -> dict:
    key = (case.model, case.phase, case.batch, case.seq_len, case.context, case.dtype, case.quant, case.kv_dtype,
           case.group_size)
    if key not in graphs:
        graphs[key] = build_workload(case.model, case.phase, case.batch, case.seq_len, case.context, case.dtype,
                                     case.quant, case.kv_dtype, case.group_size)
    graph = graphs[key]
    p = predict(graph, device, profile)
    return _row(p.latency_s, p.energy_j, p.avg_power_w, p.peak_power_w, p.clock_mhz, p.bound, p.fits,
                graph.meta["batch"] * graph.meta["new_tokens"], p.memory_needed_bytes)


def predict_cases(frame: pd.DataFrame, profile: str = "eager") -> pd.DataFrame:
    """The input columns (result columns of an earlier run replaced) followed by RESULTS, one row per case."""
    columns = list(frame.columns)
    records = [dict(zip(columns, values)) for values in zip(*(frame[c].tolist() for c in columns))]
    cases, status, results, devices = {}, {}, {}, {}
    for i, row in enumerate(records):
        if row[ERROR]:
            status[i] = f"error: {row[WHERE]}: {row[ERROR]}"
            continue
        try:
            cases[i] = parse_case(row)
        except HwsimError as exc:
            status[i] = f"error: {row[WHERE]}: {exc}"
    groups = {}
    for i, case in cases.items():
        if case.dtype == "bf16" and case.quant == "none" and case.kv_dtype in (None, "bf16") \
                and case.group_size is None:
            groups.setdefault((case.model, case.phase, case.hardware), []).append((i, case))
    for (_, _, hardware), members in groups.items():
        try:
            device = _device(devices, hardware)
            if device.device_class == "gpu":
                results.update(_sweep(members, device, profile))
        except Exception:           # noqa: BLE001 - the one-by-one path below reports each row's own error
            pass
    graphs = {}
    for i, case in cases.items():
        if i in results:
            continue
        try:
            results[i] = _one(case, _device(devices, case.hardware), profile, graphs)
        except HwsimError as exc:
            status[i] = f"error: {case.where}: {exc}"
        except Exception as exc:    # noqa: BLE001 - one row's defect must not cost the others their results
            status[i] = f"error: {case.where}: internal error ({type(exc).__name__}: {exc}); please report it"
    rows = []
    for i, case in enumerate(records):
        r = results.get(i)
        if r is not None and not r["fits"]:
            device = devices[cases[i].hardware]
            capacity = (device.main_memory.capacity_gb or 0)
            status[i] = (f"does not fit in device memory: needs {r['memory_gb']:.1f} GB, {device.id} has "
                         f"{capacity:.1f} GB")
            r = {"fits": False, "memory_gb": r["memory_gb"]}
        rows.append({**{c: None for c in RESULTS}, **(r or {}), "status": status.get(i, "ok")})
    inputs = [c for c in frame.columns if c not in (WHERE, ERROR) and c not in RESULTS]
    out = pd.concat([frame[inputs].reset_index(drop=True), pd.DataFrame(rows, columns=list(RESULTS))], axis=1)
    return out
