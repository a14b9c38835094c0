"""Many steps of one model, phase and device at once: the array form of `predict` for batch sweeps.

A graph template instantiated for many (batch, tokens, context) points holds arrays; the cost model runs on
them unchanged (numpy arithmetic), and the power-cap search runs for all points together.
"""
from __future__ import annotations

import numpy as np

from hw_models.power import host_wait_w, operating_point
from hw_models.stacks import stack
from workloads.fusion import merge_sibling_matmuls

from .predict import BOUNDS, op_arrays


def predict_many(graph, device, profile: str = "eager", host=None, host_speed: float = None) -> dict:
    """Arrays (one entry per step) of latency_s, energy_j, avg_power_w, peak_power_w, clock_mhz, bound, fits.
    Host-issued stacks time the host and the device as two queues (as `predict`)."""
    if stack(profile).merge_projections:
        graph = merge_sibling_matmuls(graph)[0]
    model, power, top, a = op_arrays(graph, device, profile)
    pt = operating_point(power, a["compute"], a["memory"], a["fixed"], a["reps"], a["flops"], a["nbytes"], a["joins"])
    reps = a["reps"] if a["reps"].ndim == 2 else a["reps"][:, None]
    present = np.broadcast_to(reps > 0, pt.op_time.shape)      # an expert class with no expert runs nothing
    times = pt.op_time * reps
    stretch = power.f_max / pt.op_clock
    kinds = np.where(a["fixed"] > np.maximum(a["compute"] * stretch, a["memory"]), 2,
                     np.where(a["compute"] * stretch >= a["memory"], 0, 1))
    # at the top clock an op keeps the bound its cost model gave it (as `predict` does: a host-launched op whose
    # launches outlast its kernels is latency-bound)
    if top:
        bound = np.empty(kinds.shape, dtype="<U32")
        for r, c in enumerate(top):         # a bound per op, or per op and step
            bound[r] = c.bound
        top_kinds = np.where(bound == BOUNDS[0], 0, np.where(bound == BOUNDS[1], 1, 2))
    else:
        top_kinds = kinds
    kinds = np.where(pt.op_clock == power.f_max, top_kinds, kinds)
    by_bound = np.stack([(times * (kinds == k)).sum(axis=0) for k in range(3)])
    op_power = pt.op_energy / np.where(pt.op_time > 0, pt.op_time, 1.0)
    latency, energy = pt.latency, pt.energy
    bounds = BOUNDS
    if stack(profile).host_queue:
        from .predict import host_timing
        _, ht = host_timing(graph, device, profile, list(pt.op_time), host, host_speed)
        latency = np.asarray(ht.latency_s, dtype=float) * np.ones_like(pt.latency)
        energy = energy + host_wait_w(power) * ht.device_idle_s
        by_bound = np.vstack([by_bound, np.asarray(ht.device_idle_s) * np.ones_like(pt.latency)])
        bounds = np.array(list(BOUNDS) + ["host"])
    avg = energy / latency
    capacity = (device.main_memory.capacity_gb or 0) * 1e9
    steps = pt.latency.shape[0]
    largest = np.max(np.where(present, np.stack([np.asarray(op.bytes.get("activation", 0.0), dtype=float) *
                                                 np.ones(steps) for op in graph.ops]), 0.0), axis=0)
    needed = graph.meta["weight_storage_bytes"] + graph.meta["kv_cache_storage_bytes"] + largest
    return {"latency_s": latency, "energy_j": energy, "avg_power_w": avg, "memory_needed_bytes": needed,
            "peak_power_w": np.maximum(avg, np.minimum(np.where(present, op_power, -np.inf).max(axis=0), power.cap)),
            "clock_mhz": pt.clock, "bound": bounds[by_bound.argmax(axis=0)],
            "fits": needed <= capacity if capacity else np.ones_like(pt.latency, dtype=bool)}
