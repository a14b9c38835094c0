"""The one place a design point is evaluated (sweeps, search and sensitivity all come through here).

    evaluate(points: pandas.DataFrame) -> pandas.DataFrame

`points` has one row per design point; columns (missing ones take study.DEFAULTS):
  model, device (preset or PRESET+KEY=VALUE...), hw.KEY (overrides added to the device, or to the system's
  devices and links), phase
  (prefill | decode | chunked_prefill | serve), batch, seq_len, context, output_len, dtype, quant, kv_dtype,
  profile, host and host_speed (host-issued profiles: eager-launch, hf-generate), system, mapping.
It returns a frame with the same index and RESULT_COLUMNS (plus `hardware`, the device text actually used).
Bad points are not exceptions: their `status` says what is wrong (one line) and their numbers are NaN.

What it calls (one function each, so a change of the execution layer is a change to this file only):
  - single-device steps on GPUs: per (model, phase, dtype, quant, kv, profile) group across devices, the linear
    steps of the graph template (workloads.linear_step; dense, or MoE class templates) costed for all points and
    devices at once, device numbers stacked (`sim.linear_sweep.step_points`, from `step_multi`); what they do
    not cover on a GPU (host-issued stacks) per device through the template's array graph and
    `sim.sweep.predict_many` (`_vectorised`);
  - anything else (NPU/PIM/FPGA/CPU devices, steps no template covers, sliding-window contexts):
    `sim.api.predict` per distinct point (`_one`);
  - `system` + `mapping` points: `sim.api.workload` + `sim.api.place`, the fit from the placement's resident
    bytes, then `sim.engine.simulate` (what `sim.api.simulate` runs, without refusing a point that does not fit)
    (`_system_one`);
  - the report's roofline charts of the best designs: `sim.report.roofline.build` (`roofline_png`).
`serve` is one request per sequence: prefill of `seq_len` tokens, then `output_len` decode steps costed at the
mean context (seq_len + output_len / 2) with memory checked at the last one; latency = TTFT + output_len x TPOT.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from workloads.errors import HwsimError

RESULT_COLUMNS = ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "bound", "fits",
                  "ttft_s", "tpot_s", "tokens", "tokens_per_s", "tokens_per_j", "j_per_token", "usd_per_hour",
                  "usd_per_mtoken", "price_basis", "area_mm2", "chip_usd", "devices", "extrapolated", "status")
STEP_FIELDS = ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "bound", "fits")
ECON = ("usd_per_hour", "area_mm2", "chip_usd")
_GRAPHS: OrderedDict = OrderedDict()     # array graphs by workload block (LRU)


def _hosting(profile, host, host_speed) -> dict:
    """host/host_speed of a point: they only exist on the path of host-issued profiles (one line otherwise)."""
    from hw_models.stacks import stack
    host = str(host or "").strip()
    try:
        speed = float(host_speed) if str(host_speed).strip() not in ("", "nan") else 1.0
    except (TypeError, ValueError):
        raise HwsimError(f"host_speed must be a number (2.0: a host twice as fast), got {host_speed!r}") from None
    if not stack(profile).host_queue:
        if host or speed != 1.0:
            raise HwsimError(f"host/host_speed apply to host-issued profiles (eager-launch, hf-generate), not "
                             f"'{profile}'")
        return {}
    return {"host": host or None, "host_speed": speed}


# --- devices and their per-device figures (cached: a sweep touches each device text many times) -----------
@lru_cache(maxsize=4096)
def _device(text: str):
    from hw_models import load_device
    return load_device(text)


@lru_cache(maxsize=1024)
def _system(text: str):
    from hw_models.systems import load_system
    return load_system(text)


@lru_cache(maxsize=4096)
def _device_figures(text: str) -> dict:
    """$/hour, die area, chip cost and the extrapolated flag of a device (hw_models.area)."""
    from hw_models.area import device_economics
    from hw_models.overrides import is_extrapolated
    device = _device(text)
    econ = device_economics(device)
    return {"usd_per_hour": econ.get("usd_per_hour", math.nan), "area_mm2": econ.get("area_mm2", math.nan),
            "chip_usd": econ.get("chip_usd", math.nan), "price_basis": econ.get("price_basis", ""),
            "extrapolated": is_extrapolated(device)}


# --- one step -------------------------------------------------------------------------------------------
def _steps(phase, b, s, c):
    """(batch, new tokens, cached tokens) arrays of a phase."""
    if phase == "prefill":
        return b, s, np.zeros_like(s)
    if phase == "decode":
        return b, np.ones_like(s), s
    return b, s, c


def _nan_result(n, status):
    out = {k: np.full(n, np.nan) for k in STEP_FIELDS}
    out["bound"] = np.full(n, "", dtype=object)
    out["fits"] = np.zeros(n, dtype=bool)
    out["status"] = np.full(n, status, dtype=object)
    return out


def _one(model, device_text, phase, b, s, c, dtype, quant, kv, profile, hosting=None) -> dict:
    from .. import api
    p = api.predict(model, device_text, phase, int(b), int(s), int(c), profile, dtype=dtype, quant=quant,
                    kv_dtype=kv or None, **(hosting or {}))
    return {"latency_s": p.latency_s, "energy_j": p.energy_j, "avg_power_w": p.avg_power_w,
            "peak_power_w": p.peak_power_w, "clock_mhz": p.clock_mhz, "bound": p.bound, "fits": bool(p.fits)}


def _template_for(model, phase):
    """The graph template of (model, phase): dense, or a MoE class template (workloads/moe_template.py); None
    where none fits."""
    from workloads.capture import _template, load_spec, moe_template
    spec = load_spec(model)
    if spec.moe is not None:
        return spec, moe_template(spec, phase)
    return spec, _template(spec, phase)


def _blocks(tpl, b, n, c):
    """Per step, the code of the graph block it instantiates in (-1: the template does not cover it)."""
    if hasattr(tpl, "block"):                     # MoE class template (the traced routing: even)
        return tpl.block(b, n, c)
    code = (b > 1).astype(int) * 2 + (n > 1).astype(int)      # template.regime as a number
    covered = np.array([f"{k // 2}{k % 2}" in tpl.d["strided"] for k in range(4)])
    return np.where(covered[code], code, -1)


def _vectorised(model, device, phase, b, n, c, dtype, quant, kv, profile, out, todo, hosting=None):
    """Fill `out` for the points of `todo` (indices) the template covers; return the indices left over."""
    from workloads.transforms import apply_precision

    from ..sweep import predict_many
    from hw_models.stacks import stack
    spec, tpl = _template_for(model, phase)
    if tpl is None or (hasattr(tpl, "block") and stack(profile).host_queue):   # MoE host queues: per op, traced
        return todo
    windows = [k.window for k in spec.layer_kinds if k.window]
    positions = n + c
    ok = positions <= spec.max_positions
    if windows:
        ok &= positions <= min(windows)
    ok &= (b > 0) & (n > 0)
    rest = list(todo[~ok[todo]])
    todo = todo[ok[todo]]
    code = _blocks(tpl, b[todo], n[todo], c[todo])
    rest.extend(todo[code < 0].tolist())
    for k in np.unique(code[code >= 0]):
        idx = todo[code == k]
        idx = np.asarray(idx)
        key = (model, phase, dtype, quant, kv, b[idx].tobytes(), n[idx].tobytes(), c[idx].tobytes())
        graph = _GRAPHS.get(key)
        if graph is None:              # the same workload block recurs for every device of a sweep: keep a few
            graph = apply_precision(tpl.instantiate_many(b[idx], n[idx], c[idx]), dtype, quant, kv or None)
            _GRAPHS[key] = graph
            while len(_GRAPHS) > 64:
                _GRAPHS.popitem(last=False)
        else:
            _GRAPHS.move_to_end(key)
        r = predict_many(graph, device, profile, **(hosting or {}))
        for k in STEP_FIELDS:
            out[k][idx] = r[k]
        out["status"][idx] = "ok"
    return np.asarray(sorted(rest), dtype=int)


def step_arrays(model, device_text, phase, b, s, c, dtype="bf16", quant="none", kv="", profile="eager", host="",
                host_speed=1.0) -> dict:
    """One step at many (batch, seq_len, context): arrays of STEP_FIELDS plus status."""
    b, s, c = (np.asarray(x, dtype=np.int64) for x in (b, s, c))
    out = _nan_result(len(b), "")
    try:
        device = _device(device_text)
        hosting = _hosting(profile, host, host_speed)
    except HwsimError as exc:
        out["status"][:] = f"error: {exc}"
        return out
    bb, nn, cc = _steps(phase, b, s, c)
    todo = np.arange(len(b))
    if device.device_class == "gpu" and phase in ("prefill", "decode", "chunked_prefill"):
        try:
            todo = _vectorised(model, device, phase, bb, nn, cc, dtype, quant, kv, profile, out, todo, hosting)
        except HwsimError as exc:                 # e.g. a dtype the device cannot run: the same for every point
            out["status"][todo] = f"error: {exc}"
            return out
    _point_by_point(out, todo, b, s, c,
                    lambda key: _one(model, device_text, phase, *key, dtype, quant, kv, profile, hosting))
    return out


def _point_by_point(out, rows, b, s, c, cost, extra=()):
    """Fill `out` at `rows` with cost((batch, seq_len, context)) (a dict of STEP_FIELDS and `extra`), each distinct
    point costed once; a point whose cost raises HwsimError gets its one-line error as status."""
    memo = {}
    for i in rows:
        key = (int(b[i]), int(s[i]), int(c[i]))
        if key not in memo:
            try:
                memo[key] = cost(key)
            except HwsimError as exc:
                memo[key] = f"error: {exc}"
        r = memo[key]
        if isinstance(r, str):
            out["status"][i] = r
            continue
        for k in STEP_FIELDS + tuple(extra):
            if isinstance(out[k], np.ndarray):
                out[k][i] = r[k]
            else:
                out[k] = r[k]
        out["status"][i] = "ok"


def step_multi(model, hardware, phase, b, s, c, dtype="bf16", quant="none", kv="", profile="eager", host="",
               host_speed=1.0) -> dict:
    """Like step_arrays, for points on several devices (`hardware`: each point's device text): GPU steps a
    linear step covers are costed for all devices together (`sim.linear_sweep`), the rest per device."""
    texts, inv = np.unique(np.asarray(hardware, dtype=object).astype(str), return_inverse=True)
    return step_coded(model, texts, inv.reshape(-1), phase, b, s, c, dtype, quant, kv, profile, host, host_speed)


def step_coded(model, texts, inv, phase, b, s, c, dtype="bf16", quant="none", kv="", profile="eager", host="",
               host_speed=1.0) -> dict:
    """step_multi with each point's device given as a code: `texts[inv[i]]` is point i's device text (distinct
    texts)."""
    from ..linear_sweep import step_points
    b, s, c = (np.asarray(x, dtype=np.int64) for x in (b, s, c))
    out = _nan_result(len(b), "")
    rest = np.ones(len(b), dtype=bool)
    if phase in ("prefill", "decode", "chunked_prefill") and not str(host or "").strip() and \
            str(host_speed).strip() in ("", "nan", "1", "1.0"):
        devices = []
        for t in texts:
            try:
                devices.append(_device(t))
            except HwsimError:
                devices.append(None)
        known_t = np.array([d is not None for d in devices], dtype=bool)
        known = known_t[inv]
        if known.any():
            at = np.flatnonzero(known) if not known.all() else np.arange(len(b))
            local = np.cumsum(known_t) - 1
            bb, nn, cc = _steps(phase, b[at], s[at], c[at])
            try:
                r, done = step_points(model, phase, bb, nn, cc, [d for d in devices if d is not None], local[inv[at]],
                                      dtype, quant, kv, profile)
            except HwsimError:
                done = np.zeros(len(at), dtype=bool)
            if done.all() and len(at) == len(b):
                for k in STEP_FIELDS:
                    out[k] = r[k]
                out["status"][:] = "ok"
                return out
            if done.any():
                hit = at[done]
                for k in STEP_FIELDS:
                    out[k][hit] = r[k][done]
                out["status"][hit] = "ok"
                rest[hit] = False
    for t in np.unique(inv[rest]).tolist():
        at = np.flatnonzero(rest & (inv == t))
        r = step_arrays(model, texts[t], phase, b[at], s[at], c[at], dtype, quant, kv, profile, host, host_speed)
        for k in (*STEP_FIELDS, "status"):
            out[k][at] = r[k]
    return out


# --- multi-device systems --------------------------------------------------------------------------------
def _system_one(model, system_text, mapping, phase, b, s, c, dtype, quant, kv, profile, hosting=None) -> dict:
    from .. import api
    from ..engine import simulate
    system = _system(system_text)
    graph = api.workload(model, phase, b, s, c, dtype=dtype, quant=quant, kv_dtype=kv or None)
    tg = api.place(graph, system, mapping)
    fits = all(needed <= (system.device(group).main_memory.capacity_gb or float("inf")) * 1e9
               for group, needed in tg.resident_bytes.items())
    result = simulate(tg, system, profile, **(hosting or {}))   # api.simulate's run, without refusing what does not fit
    pred = result.prediction
    peak = max((w for _, _, _, w in result.power_trace), default=result.avg_power_w)
    group = next(iter(tg.resident_bytes), next(iter(system.devices)))
    return {"latency_s": result.latency_s, "energy_j": result.energy_j, "avg_power_w": result.avg_power_w,
            "peak_power_w": peak, "clock_mhz": pred.clock_mhz if pred else math.nan,
            "bound": pred.bound if pred else "", "fits": bool(fits), "devices": result.devices,
            "device_preset": system.devices[group].preset}


def system_arrays(model, system_text, mapping, phase, b, s, c, dtype="bf16", quant="none", kv="",
                  profile="eager", host="", host_speed=1.0) -> dict:
    """Like step_arrays, for a mapping on a system (each distinct point simulated once); adds `devices` and
    `device_preset` (the device the figures of cost and area come from)."""
    out = _nan_result(len(b), "")
    out["devices"] = np.ones(len(b))
    out["device_preset"] = ""
    try:
        hosting = _hosting(profile, host, host_speed)
    except HwsimError as exc:
        out["status"][:] = f"error: {exc}"
        return out
    _point_by_point(out, range(len(b)), b, s, c,
                    lambda key: _system_one(model, system_text, mapping, phase, *key, dtype, quant, kv, profile,
                                            hosting), extra=("devices", "device_preset"))
    return out


# --- the table form -------------------------------------------------------------------------------------
def _figures_of(texts) -> dict:
    """Arrays over `texts` (device texts) of the device figures (NaN / False / "" where a text has none)."""
    n = len(texts)
    out = {k: np.full(n, np.nan) for k in ECON}
    out["extrapolated"] = np.zeros(n, dtype=bool)
    out["price_basis"] = np.full(n, "", dtype=object)
    for i, text in enumerate(texts):
        if not text:
            continue
        try:
            figs = _device_figures(text)
        except HwsimError:
            continue
        for k in (*ECON, "extrapolated", "price_basis"):
            out[k][i] = figs[k]
    return out


def evaluate(points):
    """Evaluate a table of design points (see the module docstring); returns a frame with RESULT_COLUMNS."""
    from .blas import one_thread
    from .malloc import keep_freed_memory
    keep_freed_memory()                  # freed arrays reused, not mapped afresh (sim/dse/malloc.py)
    with one_thread():                   # small products on this core only (sim/dse/blas.py)
        return _evaluate(points)


def _evaluate(points):
    import pandas as pd

    from .encode import encode
    enc = encode(points)
    n = enc.n
    res = _nan_result(n, "")
    res["devices"] = np.ones(n)
    for k in ("ttft_s", "tpot_s", "tokens"):
        res[k] = np.full(n, np.nan)
    # the device figures: once per distinct device text; system points take their group's device below
    figs = _figures_of([t if not s else "" for t, s in zip(enc.hardware, _any_system(enc))])
    econ = {k: v[enc.hw] for k, v in figs.items()}
    # one group per (model, phase, precision, stack, ...) across devices; systems keep one group per system text
    for key, idx in enc.groups:
        model, phase, dtype, quant, kv, profile, host, host_speed, system, mapping, system_hw = key
        b, s, c, o = enc.b[idx], enc.s[idx], enc.c[idx], enc.o[idx]
        if system:
            def step(ph, bb, ss, cc, _k=(model, system_hw, mapping)):
                return system_arrays(_k[0], _k[1], _k[2], ph, bb, ss, cc, dtype, quant, kv, profile, host, host_speed)
        else:
            codes, inv = np.unique(enc.hw[idx], return_inverse=True)
            texts = enc.hardware[codes]

            def step(ph, bb, ss, cc, _k=(model, texts, inv.reshape(-1))):
                return step_coded(_k[0], _k[1], _k[2], ph, bb, ss, cc, dtype, quant, kv, profile, host, host_speed)
        if phase == "serve":
            r = _serve(step, b, s, o)
        elif phase in ("prefill", "decode", "chunked_prefill"):
            r = step(phase, b, s, c)
            r["tokens"] = b * (s if phase != "decode" else np.ones_like(s))
            r["tpot_s"] = r["latency_s"] if phase == "decode" else np.full(len(b), np.nan)
            r["ttft_s"] = r["latency_s"] if phase == "prefill" else np.full(len(b), np.nan)
        else:
            r = _nan_result(len(b), f"error: unknown phase '{phase}'; use prefill, decode, chunked_prefill or serve")
        whole = len(idx) == n
        for k in (*STEP_FIELDS, "status", "tokens", "ttft_s", "tpot_s"):
            if k in r:
                if whole:
                    res[k] = np.asarray(r[k], dtype=res[k].dtype)
                else:
                    res[k][idx] = r[k]
        if system:
            res["devices"][idx] = r.get("devices", 1)
            one = _figures_of([r.get("device_preset") or ""])
            for k, v in one.items():
                econ[k][idx] = v[0]
    ok = res["status"] == "ok"
    lat, energy, tokens = res["latency_s"], res["energy_j"], res["tokens"]
    cols = {"hardware": enc.hardware[enc.hw]}
    for k in STEP_FIELDS:
        cols[k] = res[k]
    cols["fits"] = res["fits"].astype(bool)
    cols["ttft_s"], cols["tpot_s"], cols["tokens"] = res["ttft_s"], res["tpot_s"], res["tokens"]
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["tokens_per_s"] = np.where(ok, tokens / lat, np.nan)
        cols["tokens_per_j"] = np.where(ok, tokens / energy, np.nan)
        cols["j_per_token"] = np.where(ok, energy / tokens, np.nan)
        hourly = econ["usd_per_hour"] * res["devices"]
        cols["usd_per_hour"] = hourly
        cols["usd_per_mtoken"] = np.where(ok, hourly / 3600.0 * lat / tokens * 1e6, np.nan)
    cols["price_basis"] = econ["price_basis"]
    cols["area_mm2"], cols["chip_usd"] = econ["area_mm2"], econ["chip_usd"]
    cols["devices"] = res["devices"]
    cols["extrapolated"] = econ["extrapolated"]
    cols["status"] = res["status"]
    return pd.DataFrame(cols, index=points.index)


def _any_system(enc):
    """Per distinct hardware text, whether only system points use it (their figures come from the system's
    device, not from the text)."""
    used = np.zeros(len(enc.hardware), dtype=bool)
    used[enc.hw[~enc.system]] = True
    return ~used


def _serve(step, b, s, o) -> dict:
    """One request per sequence: prefill, then o decode steps at the mean context, memory at the last."""
    zero = np.zeros_like(s)
    pre = step("prefill", b, s, zero)
    mid = step("decode", b, s + o // 2, zero)
    last = step("decode", b, s + np.maximum(o, 1) - 1, zero)
    ttft, tpot = pre["latency_s"], mid["latency_s"]
    r = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        r["latency_s"] = ttft + o * tpot
        r["energy_j"] = pre["energy_j"] + o * mid["energy_j"]
        r["avg_power_w"] = r["energy_j"] / r["latency_s"]
        r["clock_mhz"] = (pre["clock_mhz"] * ttft + mid["clock_mhz"] * o * tpot) / r["latency_s"]
    r["peak_power_w"] = np.fmax(pre["peak_power_w"], mid["peak_power_w"])
    r["bound"] = np.where(ttft > o * tpot, pre["bound"], mid["bound"])
    r["fits"] = pre["fits"] & last["fits"]
    r["ttft_s"], r["tpot_s"], r["tokens"] = ttft, tpot, b * o
    r["status"] = np.where(pre["status"] != "ok", pre["status"],
                           np.where(mid["status"] != "ok", mid["status"], last["status"]))
    for k in ("devices", "device_preset"):
        if k in mid:
            r[k] = mid[k]
    return r


def roofline_png(point: dict):
    """The roofline chart (PNG bytes) of one single-device prefill/decode design point, or None where it does not
    apply (systems, serve): the report's "best designs with their rooflines"."""
    if point.get("system") or point.get("phase") not in ("prefill", "decode"):
        return None
    from workloads.recipe import build_workload

    from ..report import plot, roofline
    device = _device(point["hardware"])
    graph = build_workload(point["model"], point["phase"], int(point["batch"]), int(point["seq_len"]), 0,
                           point.get("dtype") or "bf16", point.get("quant") or "none", point.get("kv_dtype") or None)
    charts = roofline.build({point["phase"]: graph}, [device], point.get("profile") or "eager")
    return plot.render(charts, f"{point['model']} {point['phase']} on {point['hardware']}")
