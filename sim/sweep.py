"""Many steps of one model, phase and device at once: the array form of `predict` for batch sweeps.

A graph template instantiated for many (batch, tokens, context) points holds arrays; the cost model runs on
them unchanged (numpy arithmetic), and the power-cap search runs for all points together.
"""
from __future__ import annotations

import numpy as np

from hw_models.costs import cost_model
from hw_models.power import PowerModel
from hw_models.stacks import stack
from workloads.fusion import merge_sibling_matmuls


def predict_many(graph, device, profile: str = "eager") -> dict:
    """Arrays (one entry per step) of latency_s, energy_j, avg_power_w, peak_power_w, clock_mhz, bound, fits."""
    if stack(profile).merge_projections:
        graph = merge_sibling_matmuls(graph)[0]
    model = cost_model(device, profile)
    power = PowerModel(device)
    costs = [(model.cost(op, power.f_max), op) for op in graph.ops]
    compute = np.stack([np.broadcast_to(c.compute_s, np.shape(c.memory_s)) for c, _ in costs])   # [ops, steps]
    memory = np.stack([np.asarray(c.memory_s, dtype=float) for c, _ in costs])
    fixed = np.stack([np.broadcast_to(c.overhead_s, memory.shape[1:]) for c, _ in costs])
    reps = np.array([op.repeat for _, op in costs], dtype=float)[:, None]
    op_flops = np.stack([np.broadcast_to(np.asarray(model.energy_flops(op), dtype=float), memory.shape[1:])
                         for _, op in costs])
    op_bytes = np.stack([np.broadcast_to(np.asarray(c.bytes, dtype=float), memory.shape[1:]) for c, _ in costs])
    window = power.p.get("cap_window_s", 0.0)
    # ops longer than the power controller's window are held under the cap on their own (as in `predict`)
    long = (np.maximum(compute, memory) + fixed > window) if window else np.zeros_like(memory, dtype=bool)
    short = ~long

    def bisect(watts_at, shape):
        clock = np.full(shape, float(power.f_max))
        capped = watts_at(clock) > power.cap
        lo, hi = np.full(shape, float(power.f_min)), clock.copy()
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            over = watts_at(mid) > power.cap
            hi = np.where(over, mid, hi)
            lo = np.where(over, lo, mid)
        return np.where(capped, lo, clock)

    def op_time(clock):
        return np.maximum(compute * (power.f_max / clock), memory) + fixed

    flops = (op_flops * reps * short).sum(axis=0)
    moved = (op_bytes * reps * short).sum(axis=0)

    def time_at(clock):
        return (op_time(clock) * reps * short).sum(axis=0)

    def watts(clock):
        t = time_at(clock)
        return power.energy(t, flops, moved, clock) / np.where(t > 0, t, 1.0)

    clock = bisect(watts, memory.shape[1])
    op_clock = np.broadcast_to(clock, memory.shape).copy()
    if long.any():
        def op_watts(c):
            t = op_time(c)
            return power.energy(t, op_flops, op_bytes, c) / t
        op_clock = np.where(long, bisect(op_watts, memory.shape), op_clock)
    times = op_time(op_clock) * reps
    latency = times.sum(axis=0)
    energy = power.energy(times, op_flops * reps, op_bytes * reps, op_clock).sum(axis=0)
    clock = (op_clock * times).sum(axis=0) / latency
    per_op_t = op_time(op_clock)
    op_power = power.energy(per_op_t, op_flops, op_bytes, op_clock) / np.where(per_op_t > 0, per_op_t, 1.0)
    stretch = power.f_max / op_clock
    kinds = np.where(fixed > np.maximum(compute * stretch, memory), 2, np.where(compute * stretch >= memory, 0, 1))
    by_bound = np.stack([(times * (kinds == k)).sum(axis=0) for k in range(3)])
    capacity = (device.main_memory.capacity_gb or 0) * 1e9
    largest = np.max(np.stack([np.asarray(op.bytes.get("activation", 0.0), dtype=float)
                               * np.ones(memory.shape[1]) for op in graph.ops]), axis=0)
    needed = graph.meta["weight_storage_bytes"] + graph.meta["kv_cache_storage_bytes"] + largest
    return {"latency_s": latency, "energy_j": energy, "avg_power_w": energy / latency,
            "peak_power_w": np.maximum(energy / latency, np.minimum(op_power.max(axis=0), power.cap)),
            "clock_mhz": clock, "bound": np.array(["compute", "memory", "latency"])[by_bound.argmax(axis=0)],
            "fits": needed <= capacity if capacity else np.ones_like(latency, dtype=bool)}
