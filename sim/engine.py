"""The one execution engine: times every node of a mapping's `TaskGraph` through `hw_models` and schedules it.

Op nodes run at their device program's operating point (`sim.predict`: costs per op, the clock under the
power cap); FPGA segments and host ops at their fixed clock; collectives, transfers and decompressions on
their link or device from the hardware models. A chain (each node waits for the one before) is summed; any
other graph runs on the list scheduler (`sim.schedule`, simpy), which finds overlaps and waits. A replayed
layer kind runs `repeat` times back to back (`TaskGraph.unrolled` writes the layers out for traces).
Every mapping's step comes out as one `StepResult`: latency, energy (each node's energy plus the static power
of devices while they wait), power over time per lane, utilization per device, engine and link, link bytes
and the Chrome/Perfetto trace.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hw_models.collectives import bytes_on_links, link_collective_time, transfer_time
from hw_models.costs import cost_model
from hw_models.df11 import decompress_rate
from hw_models.fpga import dataflow_time
from hw_models.power import PowerModel, host_wait_w
from hw_models.stacks import require_device, stack, step_host_wait_s
from mapping.taskgraph import Task

from .predict import grouped_layers, host_model, predict
from .schedule import run_chain, run_in_order, run_tasks

# which engine of a device an op keeps busy: matrix units (tensor cores, systolic arrays) or the vector side
ENGINE_OF = {"matmul": "matrix", "attention": "matrix"}


@dataclass
class StepResult:
    latency_s: float
    energy_j: float
    avg_power_w: float
    devices: int
    utilization: dict                 # device -> busy fraction
    link_bytes: dict                  # link -> bytes sent (all participants, all replicas)
    power_trace: list                 # (device, start_s, end_s, watts) for each device of one replica
    events: list = field(default_factory=list)   # Chrome trace events
    engine_utilization: dict = field(default_factory=dict)   # "gpu0.matrix" / "gpu0.vector" / "link.nvlink"
    prediction: object = None         # the main program's prediction (clock, per-op roofline rows)
    replicas: int = 1                 # copies of the devices listed (data parallelism): energy = trace x replicas

    def to_row(self) -> dict:
        """The scalar figures, for a pandas row (links and utilizations flattened)."""
        row = {"latency_s": self.latency_s, "energy_j": self.energy_j, "avg_power_w": self.avg_power_w,
               "devices": self.devices, "clock_mhz": self.prediction.clock_mhz if self.prediction else None}
        row.update({f"link_bytes.{k}": v for k, v in self.link_bytes.items()})
        row.update({f"utilization.{k}": v for k, v in self.utilization.items()})
        return row

    def power_timeline(self) -> list:
        """(device, start_s, end_s, watts) in time order, for each device of one replica."""
        return sorted(self.power_trace, key=lambda r: (r[0], r[1]))

    def chrome_trace(self) -> dict:
        """Node slices plus a power counter track per lane (Perfetto shows it as a line)."""
        counters = [{"name": "power_w", "ph": "C", "pid": d, "ts": a * 1e6, "args": {"W": round(w, 2)}}
                    for d, a, b, w in self.power_timeline()]
        return {"traceEvents": self.events + counters, "displayTimeUnit": "ms"}


SimResult = StepResult        # the name before the execution layer was unified


class _Programs:
    """Per-op time and energy of each device program: at the operating point (DVFS devices) or at the fixed clock."""

    def __init__(self, tg, system, profile):
        self.tg, self.system, self.profile = tg, system, profile
        self.tables, self.models, self.power = {}, {}, {}
        for name, prog in tg.programs.items():
            device = system.device(prog.group)
            self.power[name] = PowerModel(device)
            if prog.dvfs:
                pred = predict(prog.graph, device, profile, params=prog.params)
                self.tables[name] = ({r["index"]: r["time_s"] for r in pred.ops},
                                     {r["index"]: r["energy_j"] for r in pred.ops}, pred)
            else:
                self.models[name] = cost_model(device, profile, prog.params)
        # a grouped MoE layer (the stack's moe_kernel) priced as predict prices it (sim/predict.py grouped_layers)
        self.ops = {name: {op.index: op for op in grouped_layers(prog.graph, self.models.get(name)).ops}
                    for name, prog in tg.programs.items()}

    def prediction(self, name: str):
        if name in self.tables:
            return self.tables[name][2]
        prog = self.tg.programs[name]
        return predict(prog.graph, self.system.device(prog.group), self.profile, params=prog.params)

    def op_costs(self, name, indices):
        """[(op, time, energy)] of ops of a program (ops merged into a sibling by the stack are left out)."""
        if name in self.tables:
            times, energies, _ = self.tables[name]
            return [(self.ops[name][i], times[i], energies[i]) for i in indices if i in times]
        model, power = self.models[name], self.power[name]
        out = []
        for i in indices:
            op = self.ops[name][i]
            c = model.cost(op, power.f_max)
            out.append((op, c.time_s, power.energy(c.time_s, model.energy_flops(op), c.bytes, power.f_max)))
        return out

    def segment(self, name, indices, overlap):
        model, power = self.models[name], self.power[name]
        ops = [self.ops[name][i] for i in indices]
        costs = [model.cost(op, power.f_max) for op in ops]
        t = dataflow_time(costs, overlap)
        flops = sum(model.energy_flops(op) for op in ops)
        return t, power.energy(t, flops, sum(c.bytes for c in costs), power.f_max)


def _timed(tg, system, profile, progs, host=None):
    """(node, seconds, joules, matrix seconds) of one run of each node."""
    st = stack(profile)
    out = []
    for n in tg.nodes:
        matrix = 0.0
        if n.kind == "op":
            parts = progs.op_costs(n.program, n.ops)
            t, e = sum(p[1] for p in parts), sum(p[2] for p in parts)
            matrix = sum(p[1] for p in parts if ENGINE_OF.get(p[0].kind) == "matrix")
        elif n.kind == "segment":
            t, e = progs.segment(n.program, n.ops, n.overlap)
            matrix = t if any(progs.ops[n.program][i].kind in ENGINE_OF for i in n.ops) else 0.0
        elif n.kind == "collective":
            t = link_collective_time(n.collective, n.nbytes, n.participants, system.links[n.link], st.custom_all_reduce)
            e = 0.0
        elif n.kind == "host":          # the host's own time (its energy is not the devices')
            if n.rate == "sync":
                t = host.sync_s
            elif n.rate == "step":
                t = host.sync_s + host.step_s
            elif n.collective:
                t = host.collective_s
            else:
                t = sum(host.issue_s(progs.ops[n.program][i]) for i in n.ops if i in progs.ops[n.program])
            e = 0.0
        elif n.kind == "transfer":
            t, e = transfer_time(system.links[n.link], n.nbytes, n.rate == "pageable"), 0.0
        elif n.kind == "decompress":
            prog = tg.programs[n.program]
            t = n.nbytes / decompress_rate(system.device(prog.group))[0]
            e = t * progs.power[n.program].p["static_w"] * 2          # a busy kernel
        elif n.kind in ("fixed", "task"):
            lane = tg.lanes.get(n.lane)
            static = PowerModel(system.device(lane.group)).p["static_w"] if lane and lane.group and n.kind == "fixed" \
                else 0.0
            t, e = n.seconds, n.seconds * static
        else:
            raise ValueError(f"unknown node kind {n.kind!r}")
        out.append((n, t, e, matrix))
    return out


def schedule(tg) -> dict:
    """Schedule a task graph whose nodes carry their durations (`task` and `fixed` nodes: the heterogeneous
    schedules of NeuPIMs, Lamina and mllm-NPU) on the list scheduler: makespan, busy time per resource and
    (start, end) per node."""
    tasks = [Task(n.id, (n.lane, *n.holds) if n.holds else n.lane, n.seconds * n.repeat, list(n.deps), n.priority)
             for n in tg.nodes]
    return run_chain(tasks) if tg.is_chain() else run_tasks(tasks)


def simulate(tg, system, profile: str = "eager", trace: bool = False, host=None, host_speed: float = None) -> StepResult:
    """Time and schedule a mapped step. With `trace`, replayed layers are written out one by one first, so the
    Chrome trace (built only then) and the power timeline follow the real order of the ops.
    Host-issued stacks (eager-launch, hf-generate) get a host lane (mapping/host_issue.py) timed by the host model
    of `host` (a preset id, host file or HostSpec; default: the main device's), `host_speed` scaling it."""
    st = stack(profile)
    require_device(profile, system.device(tg.programs[tg.main].group))
    hm = None
    if st.host_queue:
        from mapping.host_issue import issue_from_host
        main = tg.programs[tg.main]
        hm = host_model(system.device(main.group), host, host_speed, main.graph.meta.get("impl"), profile)
        chain = tg.unrolled()
        ops = {name: {op.index: op for op in prog.graph.ops} for name, prog in tg.programs.items()}
        syncs = {n.id for n in chain.nodes if n.kind == "op" and any(hm.forces_sync(ops[n.program][i]) for i in n.ops)}
        tg = issue_from_host(chain, st.per_step_host, syncs)
    elif trace:
        tg = tg.unrolled()
    progs = _Programs(tg, system, profile)
    timed = _timed(tg, system, profile, progs, hm)
    tasks = [Task(n.id, (n.lane, *n.holds) if n.holds else n.lane, t * n.repeat, list(n.deps), n.priority)
             for n, t, _, _ in timed]
    if hm is not None:
        run = run_in_order(tasks)
    else:
        run = run_chain(tasks) if tg.is_chain() else run_tasks(tasks)
    latency = run["makespan"] + step_host_wait_s(profile)     # the stack's host time per iteration, devices idle
    lanes = tg.lanes
    energy, link_bytes, matrix = 0.0, {name: 0.0 for name in system.links}, {}
    for n, t, e, m in timed:
        lane = lanes.get(n.lane)
        count = lane.count if lane else 1
        energy += e * n.repeat * count
        matrix[n.lane] = matrix.get(n.lane, 0.0) + m * n.repeat
        if n.kind == "collective":
            link_bytes[n.link] = link_bytes.get(n.link, 0.0) + \
                bytes_on_links(n.collective, n.nbytes, n.participants) * n.participants * n.repeat * count
        elif n.kind == "transfer":
            link_bytes[n.link] = link_bytes.get(n.link, 0.0) + n.nbytes * n.repeat * count
    utilization, engines, statics = {}, {}, {}
    for name, lane in lanes.items():
        busy = run["busy"].get(name, 0.0)
        if lane.kind == "device":
            pm = PowerModel(system.device(lane.group))
            # a host-issued stack's device waits for its host between kernels (host_wait_w); else busy-idle
            static = host_wait_w(pm) if hm is not None else pm.p["static_w"]
            statics[name] = static if lane.idle_power else 0.0
            energy += statics[name] * max(latency - busy, 0.0) * lane.count
            for member in lane.members:
                utilization[member] = busy / latency if latency else 0.0
                engines[f"{member}.matrix"] = matrix.get(name, 0.0) / latency if latency else 0.0
                engines[f"{member}.vector"] = (busy - matrix.get(name, 0.0)) / latency if latency else 0.0
        elif lane.kind == "host":
            engines["host"] = busy / latency if latency else 0.0
        elif busy:
            engines[f"link.{name}"] = busy / latency
    power = _power_trace(tg, timed, run, latency, statics)
    events = _events(tg, timed, run) if trace else []
    main = tg.main
    return StepResult(latency_s=latency, energy_j=energy, avg_power_w=energy / latency if latency else 0.0,
                      devices=tg.devices, utilization=utilization, link_bytes=link_bytes, power_trace=power,
                      events=events, engine_utilization=engines, prediction=progs.prediction(main),
                      replicas=tg.info.get("replicas", 1))


def _power_trace(tg, timed, run, latency, statics) -> list:
    """Power over time of one device of each device lane: each node's energy over its span, static power in
    the gaps (for lanes whose waiting counts)."""
    by_lane = {}
    for n, t, e, _ in timed:
        if n.lane in statics and t > 0:
            start, end = run["spans"][n.id]
            by_lane.setdefault(n.lane, []).append((start, end, e / t))
    rows = []
    for name, static in statics.items():
        lane_rows, now = [], 0.0
        for start, end, w in sorted(by_lane.get(name, [])):
            if start > now and static:
                lane_rows.append((now, start, static))
            lane_rows.append((start, end, w))
            now = max(now, end)
        if latency > now and static:
            lane_rows.append((now, latency, static))
        rows += [(member, a, b, w) for member in tg.lanes[name].members for a, b, w in lane_rows]
    return rows


def _events(tg, timed, run) -> list:
    events = []
    for n, t, _, _ in timed:
        start, end = run["spans"][n.id]
        lane = tg.lanes.get(n.lane)
        if lane is not None and lane.kind == "host":
            where = [("host", "issue")]
        elif lane is None or lane.kind == "link" or not lane.members:
            where = [("links", n.lane)]
        else:
            where = [(member, "compute") for member in lane.members]
        args = {"kind": n.kind, "repeat": n.repeat}
        if n.layer is not None:
            args["layer"] = n.layer
        events += [{"name": n.label or n.id, "ph": "X", "pid": pid, "tid": tid, "ts": start * 1e6,
                    "dur": (end - start) * 1e6, "args": args} for pid, tid in where]
    return events
