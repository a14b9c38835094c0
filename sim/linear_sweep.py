"""Many points of one (model, phase, precision, stack) on many GPUs at once: the sweep's form of the linear step.

Points are split by the template's block (workloads/linear_step.py: the graph's structure and kernel flags);
each block's quantities are one matrix product for all its points, and the devices' numbers enter as arrays
[points, 1] (`GPUModel.stacked`, `power_solve.power_arrays`), so a chunk of a sweep over device overrides is
costed in a handful of numpy calls per op column, not one array pass per device. Figures equal `api.predict`'s
(tests/test_linear_step.py).

    out, done = step_points(model, phase, b, n, c, devices, index, dtype, quant, kv, profile)

`devices`: DeviceSpecs; `index`: each point's device. Points not done (non-GPU devices, host-issued stacks,
capped steps of devices with clock-dependent energy, steps outside the template's blocks) are left for the caller's other paths.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from hw_models.costs import cost_model
from hw_models.gpu import GPUModel
from hw_models.gpu_table import GPUTable, same_structure
from hw_models.power import PowerModel
from hw_models.power_solve import power_arrays
from hw_models.stacks import STACKS
from workloads.linear_step import LinearStep, NotLinear, block_codes, matmul_rows, monomials

from .linear_cost import BOUNDS, figures

_BOUND_TEXT = BOUNDS.astype(object)     # bound codes to text without a new string per point
_STEPS: OrderedDict = OrderedDict()     # (model, phase, recipe, merge, code) -> LinearStep or None
_MODELS: dict = {}                      # (device id(), profile) -> (device, GPUModel, PowerModel) or None
_OWN_TABLE = 256       # points per device from which devices are costed one by one, not stacked (a scalar
                       # device's table is cached and its GEMMs deduplicated: ~2x faster per point than stacked)
_RECIPES: dict = {}                     # (model, phase, dtype, quant, kv) -> (spec, template, Workload, reach)


def _models(device, profile):
    key = (id(device), profile)
    if key not in _MODELS:
        if len(_MODELS) > 4096:
            _MODELS.clear()
        model = cost_model(device, profile)
        power = PowerModel(device)
        _MODELS[key] = (device, model, power) if isinstance(model, GPUModel) else None
    entry = _MODELS[key]
    return None if entry is None else entry[1:]


_TABLES: dict = {}                      # (id(step), id(device)) -> (GPUTable, power numbers)


def _table(step, device, entry, also=()):
    key = (id(step), id(device)) + tuple(id(x) for x in also)
    hit = _TABLES.get(key)
    if hit is None or hit[0] is not step or hit[1] is not device:
        if len(_TABLES) > 4096:
            _TABLES.clear()
        model, power = entry
        pw = power_arrays([power])
        hit = _TABLES[key] = (step, device, GPUTable(model, step, power.f_max, also), pw, also)
    return hit[2], hit[3]


def _template(spec, phase):
    from workloads.capture import _template as dense, moe_template
    return moe_template(spec, phase) if spec.moe is not None else dense(spec, phase)


def _step(spec, tpl, recipe, merge, code, probe):
    key = (recipe, merge, code)
    if key not in _STEPS:
        try:
            _STEPS[key] = LinearStep(tpl, code, recipe, merge, probe)
        except NotLinear:
            _STEPS[key] = None
        while len(_STEPS) > 256:
            _STEPS.popitem(last=False)
    return _STEPS[key]


def step_points(model, phase, b, n, c, devices, index, dtype="bf16", quant="none", kv="", profile="eager"):
    """(dict of arrays: latency_s, energy_j, avg_power_w, peak_power_w, clock_mhz, bound, fits; done mask).
    b, n, c: batch, new tokens, cached tokens per point."""
    from workloads.capture import load_spec
    from workloads.recipe import Workload
    P = len(b)
    done = np.zeros(P, dtype=bool)
    out = {k: np.full(P, np.nan) for k in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz")}
    out["bound"] = np.full(P, "", dtype=object)
    out["fits"] = np.zeros(P, dtype=bool)
    st = STACKS.get(profile)
    if st is None or st.host_queue:
        return out, done
    key = (model, phase, dtype, quant, kv)
    if key not in _RECIPES:                 # the model's spec, template and recipe, once per process
        if len(_RECIPES) > 1024:
            _RECIPES.clear()
        spec = load_spec(model)
        tpl = _template(spec, phase)
        recipe = Workload(spec, phase, dtype=dtype, quant=quant, kv_dtype=kv or None) if tpl is not None else None
        windows = [k.window for k in spec.layer_kinds if k.window]
        reach = min([spec.max_positions] + windows)
        _RECIPES[key] = (spec, tpl, recipe, reach)
    spec, tpl, recipe, reach = _RECIPES[key]
    if tpl is None:
        return out, done
    entries = [_models(d, profile) for d in devices]
    gpu = np.array([e is not None for e in entries] + [False])[index]
    ok = gpu & (n + c <= reach) & (b > 0) & (n > 0)
    if spec.moe is not None and phase == "chunked_prefill":
        ok &= c > 0              # MoE chunked prefill with no context: its template misses the step by ~1e-5
    todo = np.flatnonzero(ok)
    if not todo.size:
        return out, done
    codes = block_codes(tpl, b[todo], n[todo], c[todo])
    merge = st.merge_projections
    blocks = []                       # [(steps, their rows)]: blocks of one structure costed together
    for code in np.unique(codes[codes >= 0]).tolist():
        sel = todo[codes == code]
        step = _step(spec, tpl, recipe, merge, code, (int(b[sel[0]]), int(n[sel[0]]), int(c[sel[0]])))
        if step is None:
            continue
        for steps, rows in blocks:
            if same_structure(steps[0], step):
                steps.append(step)
                rows.append(sel)
                break
        else:
            blocks.append(([step], [sel]))
    for steps, rows in blocks:
        sel = np.concatenate(rows)
        block = np.repeat(np.arange(len(rows)), [len(r) for r in rows]) if len(rows) > 1 else None
        qs, counts = [], []
        for step, r in zip(steps, rows):
            mono, cnt = monomials(tpl, b[r], n[r], c[r])
            qs.append(matmul_rows(mono, step.Q))
            counts.append(cnt)
        q = np.concatenate(qs) if len(qs) > 1 else qs[0]
        step = steps[0]
        if step.moe:
            counts = counts[0] if len(counts) == 1 else tuple(np.concatenate(x) for x in zip(*counts))
            runs = step.runs(counts)
        else:
            runs = step.repeat
        also = tuple(steps[1:])
        dev_idx = index[sel]
        # one stacked model per set of calibration keys (the formulas read optional keys by presence)
        groups = {}
        present, per_device = np.unique(dev_idx, return_counts=True)
        for d in present.tolist():
            groups.setdefault(tuple(sorted(entries[d][0].p)), []).append(d)
        if per_device.min() >= _OWN_TABLE:      # devices with many points each: one (cached, scalar) table each
            groups = {d: [d] for d in present.tolist()}
        for members in groups.values():
            rows = np.flatnonzero(np.isin(dev_idx, members)) if len(groups) > 1 else slice(None)
            if len(members) == 1:                  # one device: its own (cached) table, numbers as scalars
                table, pw = _table(step, devices[members[0]], entries[members[0]], also)
                capacity = (devices[members[0]].main_memory.capacity_gb or 0) * 1e9
            else:
                local = np.searchsorted(members, dev_idx[rows])
                model = GPUModel.stacked([entries[d][0] for d in members], local)
                pw = power_arrays([entries[d][1] for d in members], local)
                capacity = np.array([(devices[d].main_memory.capacity_gb or 0) * 1e9 for d in members])[local]
                table = GPUTable(model, step, pw.f_max_c, also)
            r_runs = runs[rows] if runs.ndim == 2 else runs
            r_counts = None if not step.moe else tuple(np.asarray(x, dtype=float)[rows] for x in counts)
            f = figures(step, table, pw, q[rows], r_runs, capacity, block=None if block is None else block[rows],
                        counts=r_counts)
            at = sel[rows]
            for k in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "fits"):
                out[k][at] = f[k]
            out["bound"][at] = _BOUND_TEXT[f["bound"]]
            done[at] = True
    return out, done
