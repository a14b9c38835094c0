"""Discrete-event execution of a mapped step on a system (simpy).

Each device is a process that runs its op sequence (layers in order, each layer its group's ops); a
collective is a barrier of its participants followed by the collective's time on the link, which is a
shared resource (one collective at a time). Op times and energies come from the device's cost and power
models at the step's operating point (`sim.predict`), computed once per op and replayed for every layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from dataclasses import replace

from hw_models.collectives import bytes_on_links, link_collective_time
from hw_models.power import PowerModel
from hw_models.stacks import stack
from workloads.fusion import merge_sibling_matmuls

from .predict import predict


# which engine of a device an op keeps busy: matrix units (tensor cores, systolic arrays) or the vector side
ENGINE_OF = {"matmul": "matrix", "attention": "matrix"}


@dataclass(frozen=True)
class OpTable:
    """Per-op time and energy of one device's graph at its operating point, for the schedulers."""
    prediction: object
    power: object
    time: dict                        # op index -> seconds
    energy: dict                      # op index -> joules


def op_table(graph, device, profile: str = "eager", merge_projections: bool = None) -> OpTable:
    pred = predict(graph, device, profile, merge_projections=merge_projections)
    return OpTable(pred, PowerModel(device), {r["index"]: r["time_s"] for r in pred.ops},
                   {r["index"]: r["energy_j"] for r in pred.ops})


@dataclass
class SimResult:
    latency_s: float
    energy_j: float
    avg_power_w: float
    devices: int
    utilization: dict                 # device -> busy fraction
    link_bytes: dict                  # link -> bytes sent (all participants)
    power_trace: list                 # (device, start_s, end_s, watts, times): a segment repeated `times` times
    events: list = field(default_factory=list)   # Chrome trace events
    engine_utilization: dict = field(default_factory=dict)   # "gpu0.matrix" / "gpu0.vector" / "link.nvlink" -> busy fraction
    prediction: object = None         # the per-device prediction the op times came from

    def power_timeline(self) -> list:
        """(device, start_s, end_s, watts) in time order; exact when the run was not replayed (a --trace run)."""
        rows = [(str(d), a, b, w) for d, a, b, w, times in self.power_trace if times == 1]
        return sorted(rows, key=lambda r: (r[0], r[1]))

    def chrome_trace(self) -> dict:
        """Op/task slices plus a power counter track per device (Perfetto shows it as a line)."""
        counters = [{"name": "power_w", "ph": "C", "pid": d, "ts": a * 1e6, "args": {"W": round(w, 2)}}
                    for d, a, b, w in self.power_timeline()]
        return {"traceEvents": self.events + counters, "displayTimeUnit": "ms"}


def _sequence(graph, replay: bool):
    """(op, layer, times) in execution order: ops before the layers, each layer's ops, ops after the layers.

    With replay, each distinct layer kind runs once with `times` = the layers sharing it: a symmetric step
    repeats the same events layer after layer, so one pass per kind, scaled, gives the same totals.
    """
    layered = [op for op in graph.ops if op.group is not None]
    first = min((op.index for op in layered), default=None)
    pre = [op for op in graph.ops if op.group is None and (first is None or op.index < first)]
    post = [op for op in graph.ops if op.group is None and first is not None and op.index > first]
    by_group = {}
    for op in layered:
        by_group.setdefault(op.group, []).append(op)
    seq = [(op, None, 1) for op in pre]
    if replay:
        for g, ids in sorted(graph.layer_groups.items(), key=lambda kv: min(kv[1])):
            seq += [(op, min(ids), len(ids)) for op in by_group.get(g, [])]
    else:
        for layer, g in sorted((layer, g) for g, ids in graph.layer_groups.items() for layer in ids):
            seq += [(op, layer, 1) for op in by_group.get(g, [])]
    return seq + [(op, None, 1) for op in post]


def for_stack(mapped, profile: str):
    """The mapped step as the software stack runs it (sibling projections merged where the stack does so)."""
    if not stack(profile).merge_projections:
        return mapped
    graph, remap = merge_sibling_matmuls(mapped.graph)
    micro = merge_sibling_matmuls(mapped.micro_graph)[0] if mapped.micro_graph is not None else None
    collectives = [replace(c, after=remap.get(c.after, c.after)) for c in mapped.collectives]
    return replace(mapped, graph=graph, micro_graph=micro, collectives=collectives)


def simulate(mapped, system, profile: str = "eager", trace: bool = False, replay: bool = None) -> SimResult:
    """Run the step. `replay` (default: on unless a trace is asked for) simulates each layer kind once."""
    mapped = for_stack(mapped, profile)
    if mapped.stages > 1:
        from .pipeline import simulate_pipeline
        return simulate_pipeline(mapped, system, profile)
    if mapped.dataflow is not None:
        from .dataflow import simulate_dataflow
        return simulate_dataflow(mapped, system, profile)
    if mapped.offload_link or mapped.weight_ratio != 1.0:
        from .offload import simulate_offload
        return simulate_offload(mapped, system, profile)
    replay = (not trace) if replay is None else replay
    device = system.device(mapped.group)
    table = op_table(mapped.graph, device, profile)
    pred, power, op_time, op_energy = table.prediction, table.power, table.time, table.energy
    after = {c.after: c for c in mapped.collectives}
    n = mapped.devices
    env = simpy.Environment()
    links = {name: simpy.Resource(env, capacity=1) for name in system.links}
    barriers: dict = {}
    busy = [0.0] * n
    by_engine = [{"matrix": 0.0, "vector": 0.0} for _ in range(n)]
    link_busy = {name: 0.0 for name in system.links}
    energy = [0.0] * n
    elapsed = [0.0] * n
    segments: list = []
    events: list = []
    link_bytes = {name: 0.0 for name in system.links}
    static_w = power.p["static_w"]
    custom = stack(profile).custom_all_reduce
    host_launch = stack(profile).host_launch_us * 1e-6

    def run_collective(key, col, done, times):
        link = system.links[col.link]
        with links[col.link].request() as req:
            yield req
            start = env.now
            # a host-launched stack also launches each collective from Python
            yield env.timeout(max(link_collective_time(col.kind, col.bytes, n, link, custom), host_launch))
            link_bytes[col.link] += bytes_on_links(col.kind, col.bytes, n) * n * times
            link_busy[col.link] += (env.now - start) * times
            if trace:
                events.append({"name": col.kind, "ph": "X", "pid": "links", "tid": col.link,
                               "ts": start * 1e6, "dur": (env.now - start) * 1e6})
        done.succeed()

    def device_proc(i):
        for op, layer, times in _sequence(mapped.graph, replay):
            t = op_time[op.index]
            start = env.now
            yield env.timeout(t)
            busy[i] += t * times
            by_engine[i][ENGINE_OF.get(op.kind, "vector")] += t * times
            energy[i] += op_energy[op.index] * times
            segments.append((f"{mapped.group}{i}", start, env.now, op_energy[op.index] / t if t else 0.0, times))
            if trace:
                events.append({"name": op.name, "ph": "X", "pid": f"{mapped.group}{i}", "tid": "compute",
                               "ts": start * 1e6, "dur": t * 1e6,
                               "args": {"layer": layer, "kind": op.kind, "flops": op.flops}})
            col = after.get(op.index)
            if col is not None and n > 1:
                key = (op.index, layer)
                if key not in barriers:
                    barriers[key] = [0, env.event()]
                barriers[key][0] += 1
                if barriers[key][0] == n:
                    env.process(run_collective(key, col, barriers[key][1], times))
                wait_start = env.now
                yield barriers[key][1]
                idle = env.now - wait_start
                energy[i] += static_w * idle * times
                segments.append((f"{mapped.group}{i}", wait_start, env.now, static_w, times))
            elapsed[i] += (env.now - start) * times

    for i in range(n):
        env.process(device_proc(i))
    env.run()
    latency = max(elapsed)
    total = sum(energy) * mapped.replicas
    return SimResult(latency_s=latency, energy_j=total, avg_power_w=total / latency if latency else 0.0,
                     devices=mapped.total_devices,
                     utilization={f"{mapped.group}{i}": busy[i] / latency for i in range(n)},
                     link_bytes=link_bytes, power_trace=segments, events=events, prediction=pred,
                     engine_utilization={**{f"{mapped.group}{i}.{e}": t / latency for i in range(n)
                                            for e, t in by_engine[i].items()},
                                         **{f"link.{k}": t / latency for k, t in link_busy.items() if t}})
