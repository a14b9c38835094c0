"""Pipeline-parallel steps: stages of consecutive layers (each a tensor-parallel group) and micro-batches
flowing through them, scheduled as tasks (sim.hetero): a stage starts micro-batch m once it has finished
m-1 and the previous stage has sent m's activations over the link."""
from __future__ import annotations

from hw_models.collectives import link_collective_time
from hw_models.stacks import stack

from .hetero import Task, run_tasks, task_events, task_power


def stage_layers(n_layers: int, stages: int) -> list:
    """Layer index ranges per stage, as even as possible (earlier stages take the remainder)."""
    base, extra = divmod(n_layers, stages)
    out, start = [], 0
    for s in range(stages):
        size = base + (1 if s < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def simulate_pipeline(mapped, system, profile: str = "eager"):
    from .engine import SimResult, op_table
    graph = mapped.micro_graph
    device = system.device(mapped.group)
    table = op_table(graph, device, profile)
    pred, power, op_time, op_energy = table.prediction, table.power, table.time, table.energy
    link = system.link_within(mapped.group, mapped.devices * mapped.stages)   # stage-to-stage sends
    link_name = next((k for k, v in system.links.items() if v is link), None)
    custom = stack(profile).custom_all_reduce
    coll = {c.after: link_collective_time(c.kind, c.bytes, c.participants, system.links[c.link], custom)
            for c in mapped.collectives}
    layer_of = {}
    for g, ids in graph.layer_groups.items():
        for i in ids:
            layer_of[i] = g
    n_layers = len(layer_of)
    first = min((op.index for op in graph.ops if op.group is not None), default=0)
    stage_time, stage_energy = [], []
    for s, layers in enumerate(stage_layers(n_layers, mapped.stages)):
        t = e = 0.0
        for op in graph.ops:
            if op.group is None:
                mine = (op.index < first and s == 0) or (op.index > first and s == mapped.stages - 1)
                count = 1 if mine else 0
            else:
                count = sum(1 for i in layers if layer_of[i] == op.group)
            t += (op_time[op.index] + coll.get(op.index, 0.0)) * count
            e += op_energy[op.index] * count
        stage_time.append(t)
        stage_energy.append(e)
    hidden_bytes = max((op.bytes.get("activation", 0) - op.reads.get("activation", 0))
                       for op in graph.ops if op.name == "residual_mlp") if graph.ops else 0
    send = (link.latency_us * 1e-6 + hidden_bytes / (link.bandwidth_gbps * 1e9)) if link else 0.0
    tasks = []
    for m in range(mapped.microbatches):
        for s in range(mapped.stages):
            deps = [f"send{s - 1}:{m}"] if s else []
            tasks.append(Task(f"stage{s}:{m}", f"stage{s}", stage_time[s], deps))
            if s < mapped.stages - 1:
                tasks.append(Task(f"send{s}:{m}", f"link{s}", send, [f"stage{s}:{m}"]))
    run = run_tasks(tasks)
    latency = run["makespan"]
    per_stage = [stage_energy[s] * mapped.microbatches + power.p["static_w"] * (latency - run["busy"][f"stage{s}"])
                 for s in range(mapped.stages)]
    energy = sum(per_stage) * mapped.devices * mapped.replicas
    utilization = {f"stage{s}": run["busy"][f"stage{s}"] / latency for s in range(mapped.stages)}
    link_bytes = {link_name: hidden_bytes * mapped.microbatches * (mapped.stages - 1) * mapped.replicas} if link else {}
    return SimResult(latency_s=latency, energy_j=energy, avg_power_w=energy / latency, devices=mapped.total_devices,
                     utilization=utilization, link_bytes=link_bytes,
                     power_trace=task_power(tasks, run, {t.name: stage_energy[int(t.resource[5:])] / t.duration
                                                         for t in tasks if t.resource.startswith("stage") and t.duration},
                                            {f"stage{s}": power.p["static_w"] for s in range(mapped.stages)}),
                     events=task_events(tasks, run), prediction=pred)
