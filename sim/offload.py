"""Steps whose weights stream from host memory (mapping `offload`) or are stored compressed (`df11`).

Per layer: a transfer task on the host link (the layer's weights, at the stored size) and a compute task
on the device; compute of layer l needs its transfer and layer l-1; the transfer of layer l+1 may run
during compute of layer l (two buffers). DFloat11 adds a decompression pass per layer at the device's
decompression rate before its GEMMs.
"""
from __future__ import annotations


from .hetero import Task, run_tasks

# DFloat11 (arXiv 2504.11651) Fig. 6: decompression up to 34.95x faster than the PCIe transfer of the same
# weights on an A100-40GB (PCIe Gen4, ~25 GB/s attained) -> about 0.87 TB/s of decompressed output.
DF11_DECOMPRESS_BYTES_PER_S = 0.87e12


def simulate_offload(mapped, system, profile: str = "eager"):
    from .engine import SimResult, op_table
    graph = mapped.graph
    device = system.device(mapped.group)
    table = op_table(graph, device, profile)
    pred, power, op_time, op_energy = table.prediction, table.power, table.time, table.energy
    by_group = {}
    for op in graph.ops:
        if op.group is not None:
            by_group.setdefault(op.group, []).append(op)
    layer_weights = {g: sum(op.bytes.get("weight", 0) for op in ops if op.kind == "matmul") for g, ops in by_group.items()}
    layer_time = {g: sum(op_time[op.index] for op in ops) for g, ops in by_group.items()}
    layer_energy = {g: sum(op_energy[op.index] for op in ops) for g, ops in by_group.items()}
    ratio = mapped.weight_ratio
    decompress = {g: (w / DF11_DECOMPRESS_BYTES_PER_S if ratio < 1 else 0.0) for g, w in layer_weights.items()}
    order = sorted((layer, g) for g, ids in graph.layer_groups.items() for layer in ids)
    outside = sum(op_time[op.index] for op in graph.ops if op.group is None)
    tasks, link_bytes = [], 0.0
    link = system.links[mapped.offload_link] if mapped.offload_link else None
    for k, (layer, g) in enumerate(order):
        deps = [f"c{k - 1}"] if k else []
        if link is not None:
            nbytes = layer_weights[g] * ratio
            link_bytes += nbytes
            tdeps = [f"c{k - 2}"] if k >= 2 else []           # two weight buffers on the device
            tasks.append(Task(f"t{k}", "link", link.latency_us * 1e-6 + nbytes / (link.bandwidth_gbps * 1e9), tdeps))
            deps.append(f"t{k}")
        tasks.append(Task(f"c{k}", "device", layer_time[g] + decompress[g], deps))
    run = run_tasks(tasks) if tasks else {"makespan": 0.0, "busy": {"device": 0.0}}
    latency = run["makespan"] + outside
    busy = run["busy"].get("device", 0.0) + outside
    energy = sum(layer_energy[g] for _, g in order) + sum(op_energy[op.index] for op in graph.ops if op.group is None)
    energy += sum(decompress[g] for _, g in order) * power.p["static_w"] * 2     # decompression: a busy kernel
    energy += power.p["static_w"] * (latency - busy)
    return SimResult(latency_s=latency, energy_j=energy, avg_power_w=energy / latency, devices=1,
                     utilization={f"{mapped.group}0": busy / latency},
                     link_bytes={mapped.offload_link: link_bytes} if link else {}, power_trace=[], prediction=pred)
