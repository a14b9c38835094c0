"""Many steps of one model, phase and device at once: the array form of `predict` for batch sweeps.

A graph template instantiated for many (batch, tokens, context) points holds arrays; the cost model runs on
them unchanged (numpy arithmetic), and the power-cap search runs for all points together.
"""
from __future__ import annotations

import numpy as np

from hw_models.power import operating_point
from hw_models.stacks import stack
from workloads.fusion import merge_sibling_matmuls

from .predict import BOUNDS, op_arrays


def predict_many(graph, device, profile: str = "eager") -> dict:
    """Arrays (one entry per step) of latency_s, energy_j, avg_power_w, peak_power_w, clock_mhz, bound, fits."""
    if stack(profile).merge_projections:
        graph = merge_sibling_matmuls(graph)[0]
    model, power, top, a = op_arrays(graph, device, profile)
    pt = operating_point(power, a["compute"], a["memory"], a["fixed"], a["reps"], a["flops"], a["nbytes"])
    reps = a["reps"][:, None]
    times = pt.op_time * reps
    stretch = power.f_max / pt.op_clock
    kinds = np.where(a["fixed"] > np.maximum(a["compute"] * stretch, a["memory"]), 2,
                     np.where(a["compute"] * stretch >= a["memory"], 0, 1))
    by_bound = np.stack([(times * (kinds == k)).sum(axis=0) for k in range(3)])
    op_power = pt.op_energy / np.where(pt.op_time > 0, pt.op_time, 1.0)
    avg = pt.energy / pt.latency
    capacity = (device.main_memory.capacity_gb or 0) * 1e9
    steps = pt.latency.shape[0]
    largest = np.max(np.stack([np.asarray(op.bytes.get("activation", 0.0), dtype=float) * np.ones(steps)
                               for op in graph.ops]), axis=0)
    needed = graph.meta["weight_storage_bytes"] + graph.meta["kv_cache_storage_bytes"] + largest
    return {"latency_s": pt.latency, "energy_j": pt.energy, "avg_power_w": avg,
            "peak_power_w": np.maximum(avg, np.minimum(op_power.max(axis=0), power.cap)),
            "clock_mhz": pt.clock, "bound": BOUNDS[by_bound.argmax(axis=0)],
            "fits": needed <= capacity if capacity else np.ones_like(pt.latency, dtype=bool)}
