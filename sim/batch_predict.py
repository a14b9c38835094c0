"""Predict every row of a cases table; a bad row gets an error status and never costs the other rows.

Rows of one dense model, phase and implementation (bf16, no quantization, on GPUs) run together through the
model's graph template as arrays (sim.sweep): each regime's steps instantiated once, costed once per GPU; every other row, and any the array path cannot take, runs one by one.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from hw_models import load_device
from hw_models.stacks import require_host_issued
from workloads.errors import HwsimError, HwsimWarning, check_switches
from workloads.recipe import build_workload

from .cases import ERROR, RESULTS, WHERE, parse_case
from .predict import predict


def _preload():
    """Import the array path's modules with this module (as pandas is), not on the first row group: they are
    start-up, paid once per process whatever the rows, and the command's cases/s would otherwise count them."""
    import hw_models.moe, hw_models.power_solve  # noqa: F401,E401 - the power solve, MoE-aware op classes
    import importlib.metadata  # noqa: F401 - transformers' version in HF template keys (the CLI has it already)
    import workloads.capture, workloads.hf, workloads.template  # noqa: F401,E401 - template keys and loading

    from . import sweep  # noqa: F401


_preload()


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


def _sweep(cases: list, devices: dict, profile: str, hosting: dict = None) -> dict:
    """{row index: result} for the rows of one model/phase/impl the graph template covers, on any GPUs: each
    regime's steps are instantiated once for all the rows and costed as arrays on each GPU the rows name.
    `devices`: row index -> its GPU."""
    from workloads import capture
    from workloads.capture import Phase, load_spec

    from .sweep import predict_many
    first = cases[0][1]
    spec = load_spec(first.model, first.impl)
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
    tpl = capture._template(spec, first.phase, first.impl) if steps else None
    if tpl is None:
        return {}
    out, by_regime = {}, {}
    for i, (b, n, c) in steps.items():
        if tpl.covers(b, n):
            by_regime.setdefault((b > 1, n > 1), []).append(i)
    for idx in by_regime.values():
        graph = tpl.instantiate_many(*zip(*(steps[i] for i in idx)))
        on = {}
        for j, i in enumerate(idx):
            on.setdefault(id(devices[i]), (devices[i], []))[1].append(j)
        for device, cols in on.values():
            try:
                r = predict_many(graph, device, profile, **(hosting or {}))
            except Exception:       # noqa: BLE001 - the one-by-one path reports each row's own error
                continue
            cols = np.asarray(cols)
            lat, en, avg, peak, clock, bound, fits, needed = (
                np.asarray(r[k])[cols].tolist() for k in ("latency_s", "energy_j", "avg_power_w", "peak_power_w",
                                                         "clock_mhz", "bound", "fits", "memory_needed_bytes"))
            for k, j in enumerate(cols.tolist()):
                b, n, _ = steps[idx[j]]
                out[idx[j]] = _row(float(lat[k]), float(en[k]), float(avg[k]), float(peak[k]), float(clock[k]),
                                   str(bound[k]), bool(fits[k]), b * n, float(needed[k]))
    return out


def _one(case, device, graphs: dict, hosting: dict = None) -> dict:
    profile = case.profile
    if case.first_pass:
        require_host_issued(profile)
    key = (case.model, case.phase, case.batch, case.seq_len, case.context, case.dtype, case.quant, case.kv_dtype,
           case.group_size, case.impl)
    if key not in graphs:
        with warnings.catch_warnings(record=True) as seen:       # a warning names the row it is about
            warnings.simplefilter("always", HwsimWarning)
            graphs[key] = build_workload(case.model, case.phase, case.batch, case.seq_len, case.context, case.dtype,
                                         case.quant, case.kv_dtype, case.group_size, impl=case.impl)
        for w in seen:
            if issubclass(w.category, HwsimWarning):
                warnings.warn(w.category(f"{case.where}: {w.message}"), stacklevel=2)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    graph = graphs[key]
    p = predict(graph, device, profile, **(hosting or {}), **({"first_pass": True} if case.first_pass else {}))
    return _row(p.latency_s, p.energy_j, p.avg_power_w, p.peak_power_w, p.clock_mhz, p.bound, p.fits,
                graph.meta["batch"] * graph.meta["new_tokens"], p.memory_needed_bytes)


def predict_cases(frame: pd.DataFrame, profile: str = "eager", impl: str = "hwsim", host=None,
                  host_speed: float = None, first_pass: bool = False) -> pd.DataFrame:
    """The input columns (result columns of an earlier run replaced) followed by RESULTS, one row per case.
    `profile`, `impl`, `first_pass`: the defaults of rows with no profile / impl / first_pass cell; `host`/`host_speed`:
    for host-issued profiles. First-pass rows run one by one (the array path prices warm steps). The output names
    each row's profile (a `profile` column is added where the input has none)."""
    check_switches(first_pass=first_pass)
    hosting = {k: v for k, v in (("host", host), ("host_speed", host_speed)) if v is not None}
    columns = list(frame.columns)
    records = [dict(zip(columns, values)) for values in zip(*(frame[c].tolist() for c in columns))]
    cases, status, results, devices = {}, {}, {}, {}
    for i, row in enumerate(records):
        if row[ERROR]:
            status[i] = f"error: {row[WHERE]}: {row[ERROR]}"
            continue
        try:
            cases[i] = parse_case(row, impl, first_pass, profile)
        except HwsimError as exc:
            status[i] = f"error: {row[WHERE]}: {exc}"
    groups, on = {}, {}
    for i, case in cases.items():
        if case.dtype == "bf16" and case.quant == "none" and case.kv_dtype in (None, "bf16") \
                and case.group_size is None and not case.first_pass:
            try:
                device = _device(devices, case.hardware)
            except HwsimError:
                continue            # reported row by row below
            if device.device_class == "gpu":
                on[i] = device
                groups.setdefault((case.model, case.phase, case.impl, case.profile), []).append((i, case))
    for (_, _, _, group_profile), members in groups.items():
        try:
            results.update(_sweep(members, on, group_profile, hosting))
        except Exception:           # noqa: BLE001 - the one-by-one path below reports each row's own error
            pass
    graphs = {}
    for i, case in cases.items():
        if i in results:
            continue
        try:
            results[i] = _one(case, _device(devices, case.hardware), graphs, hosting)
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
    given = frame[inputs].reset_index(drop=True)
    if "profile" not in inputs:         # say which stack every row was priced with (a blank cell: --profile's)
        given["profile"] = profile
    else:
        given["profile"] = [p if str(p).strip() else profile for p in given["profile"].tolist()]
    out = pd.concat([given, pd.DataFrame(rows, columns=list(RESULTS))], axis=1)
    return out
