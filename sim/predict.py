"""One traced step on one device: time, energy, power and bounds per op and in total."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw_models.costs import cost_model
from hw_models.power import PowerModel, PowerPoint
from hw_models.stacks import STACKS
from workloads.fusion import merge_sibling_matmuls


@dataclass
class Prediction:
    model: str
    hardware: str
    phase: str
    latency_s: float
    energy_j: float
    avg_power_w: float
    peak_power_w: float
    clock_mhz: float
    power_capped: bool
    bound: str
    fits: bool
    memory_needed_bytes: float
    memory_capacity_bytes: float
    flops: float
    bytes: float
    ops: list = field(default_factory=list)     # per-op rows (dicts)

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "ops"}


def _stretched(c, stretch: float):
    """The cost at a lower clock: the compute part takes `stretch` times longer."""
    from dataclasses import replace
    compute = c.compute_s * stretch
    body = max(compute, c.memory_s)
    bound = "latency" if c.overhead_s > body else ("compute" if compute >= c.memory_s else "memory")
    return replace(c, compute_s=compute, time_s=body + c.overhead_s, bound=bound)


def _capped_by_window(graph, model, power, top, long_ops):
    """The power controller averages over a window: an op longer than it must fit under the cap on its own
    (its clock is solved alone); the shorter ops share one clock solved over their average power."""
    clocks, t, e, f_t, capped = {}, 0.0, 0.0, 0.0, False
    for op, (c, reps) in zip(graph.ops, top):
        if op.index in long_ops:
            pt = power.solve(lambda f, op=op, c=c: (_stretched(c, power.f_max / f).time_s, model.energy_flops(op), c.bytes))
            clocks[op.index] = pt.clock_mhz
            t, e, f_t = t + pt.time_s * reps, e + pt.energy_j * reps, f_t + pt.clock_mhz * pt.time_s * reps
            capped |= pt.capped
    short = [(op, c, reps) for op, (c, reps) in zip(graph.ops, top) if op.index not in long_ops]
    if short:
        flops = sum(model.energy_flops(op) * r for op, _, r in short)
        moved = sum(c.bytes * r for _, c, r in short)
        pt = power.solve(lambda f: (sum(_stretched(c, power.f_max / f).time_s * r for _, c, r in short), flops, moved))
        for op, _, _ in short:
            clocks[op.index] = pt.clock_mhz
        t, e, f_t = t + pt.time_s, e + pt.energy_j, f_t + pt.clock_mhz * pt.time_s
        capped |= pt.capped
    return PowerPoint(f_t / t, t, e, e / t, capped), clocks


def memory_needed(graph) -> float:
    """Weights + KV cache held + the largest op's activations (a lower bound on what must fit)."""
    largest = max((op.bytes.get("activation", 0) for op in graph.ops), default=0)
    return graph.meta["weight_storage_bytes"] + graph.meta["kv_cache_storage_bytes"] + largest


def predict(graph, device, profile: str = "eager", params: dict = None, power_params: dict = None,
            merge_projections: bool = None) -> Prediction:
    """`merge_projections` overrides the stack's choice (None: as the stack does it)."""
    merge = STACKS[profile].merge_projections if merge_projections is None and profile in STACKS else merge_projections
    if merge:
        graph = merge_sibling_matmuls(graph)[0]
    model = cost_model(device, profile, params)
    power = PowerModel(device, power_params)

    # Costs once at the top clock; at a lower clock only the compute part stretches (as f_max / f), so
    # the power-cap search needs no further cost-model calls.
    top = [(model.cost(op, power.f_max), op.repeat) for op in graph.ops]
    energy_flops = sum(model.energy_flops(op) * op.repeat for op in graph.ops)
    moved = sum(c.bytes * r for c, r in top)
    compute = np.array([c.compute_s for c, _ in top])
    memory = np.array([c.memory_s for c, _ in top])
    fixed = np.array([c.overhead_s for c, _ in top])
    reps = np.array([r for _, r in top], dtype=float)

    def evaluate(clock):
        stretch = power.f_max / clock
        return float(((np.maximum(compute * stretch, memory) + fixed) * reps).sum()), energy_flops, moved

    window = power.p.get("cap_window_s", 0.0)
    long_ops = {op.index for op, (c, _) in zip(graph.ops, top) if window and c.time_s > window}
    if long_ops and not power.p.get("cap_per_op"):
        point, clocks = _capped_by_window(graph, model, power, top, long_ops)
    elif power.p.get("cap_per_op"):
        # the cap holds op by op (the power controller reacts faster than a long kernel runs)
        clocks = {op.index: power.solve(lambda f, op=op: (model.cost(op, f).time_s, model.energy_flops(op),
                                                          model.cost(op, f).bytes)).clock_mhz for op in graph.ops}
        t = sum(model.cost(op, clocks[op.index]).time_s * op.repeat for op in graph.ops)
        e = sum(power.energy(model.cost(op, clocks[op.index]).time_s, model.energy_flops(op),
                             model.cost(op, clocks[op.index]).bytes, clocks[op.index]) * op.repeat for op in graph.ops)
        f_avg = sum(clocks[op.index] * model.cost(op, clocks[op.index]).time_s * op.repeat for op in graph.ops) / t
        point = PowerPoint(f_avg, t, e, e / t, any(c < power.f_max for c in clocks.values()))
    else:
        point = power.solve(evaluate)
        clocks = {op.index: point.clock_mhz for op in graph.ops}
    rows, by_bound, peak = [], {}, power.idle
    for op, (c_top, _) in zip(graph.ops, top):
        clock = clocks[op.index]
        if clock == power.f_max:
            c = c_top
        elif power.p.get("cap_per_op"):
            c = model.cost(op, clock)
        else:
            c = _stretched(c_top, power.f_max / clock)
        total = c.time_s * op.repeat
        by_bound[c.bound] = by_bound.get(c.bound, 0.0) + total
        op_energy = power.energy(c.time_s, model.energy_flops(op), c.bytes, clocks[op.index])
        op_power = op_energy / c.time_s if c.time_s else 0.0
        peak = max(peak, min(op_power, power.cap))
        rows.append({
            "index": op.index, "name": op.name, "kind": op.kind, "count": op.repeat, "dtype": op.dtype,
            "flops": op.flops, "bytes": c.bytes, "intensity": c.intensity if c.bytes else None,
            "time_s": c.time_s, "energy_j": op_energy, "total_time_s": total, "share": total / point.time_s if point.time_s else 0.0,
            "bound": c.bound, "attained_flops": c.attained_flops, "attained_bandwidth": c.attained_bandwidth,
            "kernels": c.kernels,
        })
    capacity = sum((m.capacity_gb or 0) for m in device.memory.values() if m is device.main_memory) * 1e9
    needed = memory_needed(graph)
    totals = graph.totals()
    return Prediction(
        model=graph.meta["model"], hardware=device.id, phase=graph.meta["phase"], latency_s=point.time_s,
        energy_j=point.energy_j, avg_power_w=point.avg_power_w + 0.0, peak_power_w=max(peak, point.avg_power_w),
        clock_mhz=point.clock_mhz, power_capped=point.capped, bound=max(by_bound, key=by_bound.get),
        fits=needed <= capacity if capacity else True, memory_needed_bytes=needed, memory_capacity_bytes=capacity,
        flops=totals["flops"], bytes=totals["total_bytes"], ops=rows)
