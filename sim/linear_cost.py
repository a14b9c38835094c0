"""One step's figures from a linear step (workloads/linear_step.py) on a GPU, for one step or many at once.

    q = monomials @ step.Q                      # every number of the step(s), [steps, quantities]
    figures(step, GPUTable(model, step), power_arrays([power]), q, step.runs(counts), capacity)

The op costs at the top clock (hw_models/gpu_table.py), the power cap's operating point in closed form
(hw_models/power_solve.py), then what `sim.predict.predict` reports: latency, energy, average and peak power,
time-weighted clock, whether the cap bound, the dominant bound, memory needed and fit, FLOPs and bytes. Used by
the one-case fast path of `api.predict` (sim/fastpath.py, one row) and by sweeps (sim/dse/evaluate.py, a row per
point, devices stacked). Exactly the full path's figures up to rounding (tests/test_linear_step.py).
"""
from __future__ import annotations

import numpy as np

from hw_models.power import joins_window
from hw_models.power_solve import solve, wsum

from .linear_one import figures_lists

BOUNDS = np.array(["compute", "memory", "latency"])


def step_joins(step):
    """Per op of a linear step (its layout), whether the cap_sequence windows follow it (`joins_window`)."""
    j = getattr(step, "_joins", None)
    if j is None:
        j = step._joins = np.array([joins_window(op) for op in step.ops], dtype=bool)
    return j


def _joined_in_order(step) -> list:
    """The layout positions of a linear step's joined ops (`joins_window`), in program order (cached)."""
    j = getattr(step, "_joined_order", None)
    if j is None:
        joins = step_joins(step)
        order = getattr(step, "order", None)
        seq = range(len(joins)) if order is None else order.tolist()
        j = step._joined_order = [int(i) for i in seq if joins[i]]
    return j


def figures(step, table, pw, q, runs, capacity, E=None, block=None, costs=None, counts=None) -> dict:
    """Arrays [steps] of latency_s, energy_j, avg_power_w, peak_power_w, clock_mhz, power_capped, bound (code:
    0 compute, 1 memory, 2 latency), memory_needed_bytes, fits, flops, bytes. `runs`: [ops] or [steps, ops]
    (`step.runs`); `capacity`: bytes of main memory (a number or [steps]; 0: unknown, everything fits). `E`: the
    ops' energy beside static power when the caller has it (`energy_columns`). `block`: each row's step, for a
    table of several steps of one structure (`GPUTable(..., also=)`). `costs`: `table.costs(q, E is None, block)`
    where the caller has it already. `counts`: MoE steps' expert class counts (`table.costs`)."""
    compute, memory, over, eflops = table.costs(q, E is None, block, counts) if costs is None else costs
    cols = step.cols
    P = q.shape[0]
    nbytes = q[:, cols["bytes"]]
    EF = None
    if E is None:
        EF = eflops * pw.e_f_c
        E = EF + op_bytes(table, q, block) * pw.e_b_c
    elif pw.clock_energy:                      # gamma != 0: the solve needs the FLOP part of the given energy
        EF = E - op_bytes(table, q, block) * pw.e_b_c
    x, times, energies, latency, energy, clock, capped = solve(pw, compute, memory, over, runs, E,
                                                                   getattr(step, "order", None), step_joins(step),
                                                                   EF if pw.clock_energy else None)
    cx = compute if x is None else compute * x
    kind = np.where(over > np.maximum(cx, memory), 2, np.where(cx >= memory, 0, 1))
    tw = times * runs
    if P > 1:
        kind = kind + 3 * np.arange(P)[:, None]
    by_bound = np.bincount(kind.ravel(), tw.ravel(), minlength=3 * P).reshape(P, 3)
    op_power = np.minimum(energies / times, pw.cap_c)
    if runs.ndim == 2:                                   # MoE: an expert class with no expert is not in the step
        present = runs > 0
        op_power = np.where(present, op_power, -np.inf)
        act = row_max(np.where(present, q[:, cols["act"]], 0.0))
    else:
        act = row_max(q[:, cols["act"]])
    avg = energy / latency
    peak = np.maximum(row_max(op_power), pw.idle)
    kv = np.floor(q[:, cols["kv_storage"]][:, 0] * step.kv_factor)
    needed = step.weight_storage + kv + act
    if np.ndim(capacity) == 0:
        fits = needed <= capacity if capacity else np.ones(P, dtype=bool)
    else:
        fits = np.where(capacity > 0, needed <= capacity, True)
    return {"latency_s": latency, "energy_j": energy, "avg_power_w": avg, "peak_power_w": np.maximum(avg, peak),
            "clock_mhz": clock, "power_capped": capped, "bound": by_bound.argmax(axis=1),
            "memory_needed_bytes": needed, "fits": fits, "flops": wsum(q[:, cols["flops"]], runs),
            "bytes": wsum(nbytes, runs)}


def row_max(x):
    """x.max(axis=1) (exact either way): over a transposed copy the maximum is elementwise across rows, several
    times faster than reducing each short row."""
    return np.ascontiguousarray(x.T).max(axis=0) if x.shape[0] > 64 else x.max(axis=1)


def energy_columns(step, table, pw):
    """Q's columns of each op's energy beside static power (FLOPs weighted by dtype x e_f + bytes x e_b), for one
    device (a scalar power model): `monomials @ energy_columns(...)` gives it in one product."""
    Q, cols = step.Q, step.cols
    return Q[:, cols["flops"]] * (table.e_num / table.e_den * pw.e_f) + op_bytes(table, Q) * pw.e_b


def op_bytes(table, q, block=None):
    """Each op's bytes as its cost model counts them (an eager GPU op: its kernels' bytes), from quantity rows q;
    `block`: each row's step where the table holds several (`GPUTable(..., also=)`)."""
    f = getattr(table, "op_bytes", None)
    return f(q, block) if f is not None else q[..., table.step.cols["bytes"]]


def figures_one(step, table, pw, q, runs, capacity, E, sums=None, costs=None, EF=None):
    """`figures` of one step on one device (a scalar power model `pw`) as plain Python numbers in
    sim.fastpath.FIELDS order (capacity included), or None where the step takes no time: q and E 1-D (the step's
    quantities and its ops' energy beside static power), runs [ops]; `sums`: (E, FLOPs, bytes) summed over the
    ops' runs where the caller has them (`run_sums`); `costs`: `table.costs(q[None], False)` where the caller has
    it; `EF`: the FLOP part of E (else E less the ops' bytes' energy). The one-case path: capped or not, in plain
    Python lists (`linear_one.figures_lists`), as numpy calls on arrays this small cost more than their
    arithmetic."""
    compute, memory, over, _ = table.costs(q[None], False) if costs is None else costs
    compute, memory = compute[0], memory[0]
    if over.ndim == 2:
        over = over[0]
    cols = step.cols
    if sums is None:
        sums = (float(E @ runs), float(q[cols["flops"]] @ runs), float(q[cols["bytes"]] @ runs))
    return figures_lists(step, pw, compute.tolist(), memory.tolist(),
                         (over if over.shape == compute.shape else np.broadcast_to(over, compute.shape)).tolist(),
                         runs.tolist(), E.tolist(), q[cols["act"]].tolist(), float(q[cols["kv_storage"].start]),
                         capacity, *sums, _joined_in_order(step),
                         (lambda: (E - op_bytes(table, q[None])[0] * pw.e_b).tolist()) if EF is None else EF.tolist)


def run_sums(step, Qx):
    """For the one-case path: the runs of a step's ops as R [ops, 3] (runs = R @ (1, expert count a, count b);
    dense steps: the repeat counts), and Qx's extra columns [monomials, 9] whose product with a step's monomials
    gives its ops' energy beside static power, FLOPs and bytes, each summed over the runs, as three numbers to
    weigh by (1, count a, count b). `Qx`: [Q | energy columns]."""
    n = len(step.repeat)
    R = np.zeros((n, 3))
    if step.moe:
        e0, e1 = (np.asarray(x, dtype=bool) for x in step.expert_ops)
        R[:, 0] = np.where(e0 | e1, 0.0, step.repeat)
        R[:, 1] = np.where(e0, step.repeat, 0.0)
        R[:, 2] = np.where(e1 & ~e0, step.repeat, 0.0)
    else:
        R[:, 0] = step.repeat
    nq = step.Q.shape[1]
    return R, np.hstack([Qx[:, nq:] @ R, step.Q[:, step.cols["flops"]] @ R, step.Q[:, step.cols["bytes"]] @ R])
