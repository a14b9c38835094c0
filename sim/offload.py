"""Steps whose weights partly live in host memory (mappings `offload`, `offload-overlap`) or are stored
DFloat11-compressed (`df11`).

The step runs module by module in model order (embedding, decoder layers, final norm and LM head; see
`mapping.residency`). A module that is not resident first crosses the host link (its stored bytes over the
link's rate plus its latency); DFloat11 decompresses every module's weights on the device before it runs, at
the device's decompression rate (`hw_models.df11`). `offload` copies synchronously, as HF Accelerate does: a
copy starts when the previous module's compute has ended. `offload-overlap` keeps two buffers: the copy of
module i may start once module i-2 has run.
"""
from __future__ import annotations

from hw_models.df11 import decompress_rate
from mapping.residency import weight_units

from .hetero import Task, run_tasks, task_events, task_power


def _unit_ops(graph) -> dict:
    """Op lists per unit name ("embed", "layer<k>", "head")."""
    first = min((op.index for op in graph.ops if op.group is not None), default=None)
    by_group = {}
    for op in graph.ops:
        if op.group is not None:
            by_group.setdefault(op.group, []).append(op)
    units = {"embed": [op for op in graph.ops if op.group is None and (first is None or op.index < first)],
             "head": [op for op in graph.ops if op.group is None and first is not None and op.index > first]}
    for g, ids in graph.layer_groups.items():
        for layer in ids:
            units[f"layer{layer}"] = by_group.get(g, [])
    return units


def link_rate(link, overlap: bool) -> float:
    """Bytes/s of weight copies: pageable copies (Accelerate) where the system measured them, else the link."""
    gbps = link.bandwidth_gbps if overlap or link.pageable_gbps is None else link.pageable_gbps
    return gbps * 1e9


def simulate_offload(mapped, system, profile: str = "eager"):
    from .engine import SimResult, op_table
    graph = mapped.graph
    device = system.device(mapped.group)
    table = op_table(graph, device, profile)
    pred, power, op_time, op_energy = table.prediction, table.power, table.time, table.energy
    ops = _unit_ops(graph)
    units = mapped.residency.units if mapped.residency else weight_units(graph)
    resident = mapped.residency.resident if mapped.residency else len(units)
    ratio = mapped.weight_ratio
    rate = decompress_rate(device)[0] if ratio < 1.0 else None
    link = system.links[mapped.offload_link] if mapped.offload_link else None
    tasks, link_bytes, decompress_s, watts = [], 0.0, 0.0, {}
    for k, (name, nbytes) in enumerate(units):
        compute = sum(op_time[op.index] for op in ops[name])
        unit_energy = sum(op_energy[op.index] for op in ops[name])
        if rate:
            compute += nbytes / rate
            decompress_s += nbytes / rate
            unit_energy += nbytes / rate * power.p["static_w"] * 2
        watts[f"c{k}"] = unit_energy / compute if compute else power.p["static_w"]
        deps = [f"c{k - 1}"] if k else []
        if link is not None and k >= resident:
            stored = nbytes * ratio
            link_bytes += stored
            gate = k - 2 if mapped.offload_overlap else k - 1
            tasks.append(Task(f"t{k}", "link", link.latency_us * 1e-6 + stored / link_rate(link, mapped.offload_overlap),
                              [f"c{gate}"] if gate >= 0 else []))
            deps.append(f"t{k}")
        tasks.append(Task(f"c{k}", "device", compute, deps))
    run = run_tasks(tasks)
    latency = run["makespan"]
    busy = run["busy"].get("device", 0.0)
    energy = sum(op_energy[op.index] for name, _ in units for op in ops[name])
    energy += decompress_s * power.p["static_w"] * 2     # decompression: a busy kernel
    energy += power.p["static_w"] * (latency - busy)
    return SimResult(latency_s=latency, energy_j=energy, avg_power_w=energy / latency, devices=1,
                     utilization={f"{mapped.group}0": busy / latency},
                     link_bytes={mapped.offload_link: link_bytes} if link else {},
                     power_trace=task_power(tasks, run, watts, {"device": power.p["static_w"]}),
                     events=task_events(tasks, run), prediction=pred)
