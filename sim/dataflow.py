"""Steps mapped with `dataflow`: an FPGA streams the model layer by layer (see mapping/fpga_dataflow.py).

Within one layer the ops form a pipeline: the next op's weights (and the attention's KV cache) stream in
from off-chip memory while the current op computes, so a layer takes max(sum of compute, sum of off-chip
traffic time) plus each op's issue overhead; without double buffering (`overlap` off) the two add.
With `overlap="serial"` each op takes its own time and the next starts when it ends (no op's traffic hides
behind another's compute: TeLLMe's top function loads a linear's weights, then runs it; within an op the
cost model decides, e.g. decode attention streams its KV cache while it computes).
A plan's `runtime_overhead_s` is host work per step before the fabric starts (TeLLMe: the PYNQ driver
writes the token's embedding, sets the kernel's registers, starts and polls it: once per token, not per layer).
Ops outside the layers (embedding, final norm, LM head) are segments of their own. With `lmhost` the LM
head runs on the host CPU after the hidden state is handed over on the system's link; the FPGA idles
(its static power still counts) meanwhile. Host energy counts only while it runs: its idle power is not
part of the accelerator's budget (FlightLLM measured the card alone, TeLLMe the board).
Segments run as tasks on the FPGA, the link and the host through the heterogeneous scheduler. The fabric
runs at its fixed design clock (FPGA bitstreams have no DVFS), so no power cap is applied.
"""
from __future__ import annotations

from hw_models.costs import cost_model
from hw_models.power import PowerModel
from mapping.fpga_dataflow import HOST_OPS

from .hetero import Task, run_tasks, task_events, task_power
from .predict import predict


def _segments(graph, host_names):
    """[(name, ops, times)] in execution order; each distinct layer kind once, repeated `times` times."""
    layered = [op for op in graph.ops if op.group is not None]
    first = min((op.index for op in layered), default=None)
    outside = [op for op in graph.ops if op.group is None and op.name not in host_names]
    pre = [op for op in outside if first is None or op.index < first]
    post = [op for op in outside if first is not None and op.index > first]
    by_group = {}
    for op in layered:
        by_group.setdefault(op.group, []).append(op)
    segs = [(op.name, [op], 1) for op in pre]
    for g, ids in sorted(graph.layer_groups.items(), key=lambda kv: min(kv[1])):
        segs.append((f"layers[{g}]", by_group.get(g, []), len(ids)))
    return segs + [(op.name, [op], 1) for op in post]


def segment_time(costs, overlap) -> float:
    if overlap == "serial":
        return sum(c.time_s for c in costs)
    compute = sum(c.compute_s for c in costs)
    memory = sum(c.memory_s for c in costs)
    body = max(compute, memory) if overlap else compute + memory
    return body + sum(c.overhead_s for c in costs)


def simulate_dataflow(mapped, system, profile: str = "eager"):
    from .engine import SimResult
    plan, graph = mapped.dataflow, mapped.graph
    device = system.device(mapped.group)
    model, power = cost_model(device, profile, plan.cost_params), PowerModel(device)
    host_names = HOST_OPS if plan.host_group else ()
    tasks, energy, prev, watts = [], 0.0, None, {}
    if plan.runtime_overhead_s and plan.host_group:
        tasks.append(Task("host:runtime", "host", plan.runtime_overhead_s, []))
        watts[tasks[-1].name] = PowerModel(system.device(plan.host_group)).p["static_w"]
        energy += watts[tasks[-1].name] * plan.runtime_overhead_s
        prev = tasks[-1].name
    for k, (name, ops, times) in enumerate(_segments(graph, host_names)):
        costs = [model.cost(op, power.f_max) for op in ops]
        t = segment_time(costs, plan.overlap)
        flops = sum(model.energy_flops(op) for op in ops)
        e = power.energy(t, flops, sum(c.bytes for c in costs), power.f_max)
        energy += e * times
        tasks.append(Task(f"s{k}:{name}", "fpga", t * times, [prev] if prev else []))
        watts[tasks[-1].name] = e / t if t else power.p["static_w"]
        prev = tasks[-1].name
    link_bytes = {}
    host_ops = [op for op in graph.ops if op.name in host_names]
    if host_ops:
        host = system.device(plan.host_group)
        hmodel, hpower = cost_model(host, profile), PowerModel(host)
        link_name = next((n for n, l in system.links.items() if set(l.connects) == {mapped.group, plan.host_group}),
                         None)
        for op in host_ops:
            if link_name:
                link = system.links[link_name]
                hand = float(op.reads.get("activation", op.bytes.get("activation", 0)))
                link_bytes[link_name] = link_bytes.get(link_name, 0.0) + hand
                tasks.append(Task(f"send:{op.name}", "link", link.latency_us * 1e-6 + hand / (link.bandwidth_gbps * 1e9),
                                  [prev] if prev else []))
                prev = tasks[-1].name
            c = hmodel.cost(op, hpower.f_max)
            e = hpower.energy(c.time_s, hmodel.energy_flops(op), c.bytes, hpower.f_max)
            energy += e
            tasks.append(Task(f"host:{op.name}", "host", c.time_s, [prev] if prev else []))
            watts[tasks[-1].name] = e / c.time_s if c.time_s else 0.0
            prev = tasks[-1].name
    run = run_tasks(tasks)
    latency = run["makespan"]
    fpga_busy = run["busy"].get("fpga", 0.0)
    energy += power.p["static_w"] * (latency - fpga_busy)          # the fabric waits for the host / link
    util = {f"{mapped.group}0": fpga_busy / latency}
    if host_ops:
        util[f"{plan.host_group}0"] = run["busy"].get("host", 0.0) / latency
    return SimResult(latency_s=latency, energy_j=energy, avg_power_w=energy / latency, devices=1 + bool(host_ops),
                     utilization=util, link_bytes=link_bytes, events=task_events(tasks, run),
                     power_trace=task_power(tasks, run, watts, {"fpga": power.p["static_w"]}),
                     prediction=predict(graph, device, profile, params=plan.cost_params))
