"""One traced step on one device: time, energy, power and bounds per op and in total."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw_models.costs import cost_model
from hw_models.power import PowerModel, host_wait_w, joins_window, operating_point
from hw_models.stacks import STACKS, op_scale_for, require_device, step_host_wait_s
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
    host: str = ""                              # host-issued stacks: the host model used
    host_busy_s: float = 0.0                    # host-issued stacks: the host's issuing and per-step work
    device_idle_s: float = 0.0                  # host-issued stacks: the device waiting for the host
    host_op_scale: float = 1.0                  # host-issued stacks: the factor on a probed host's model-code costs

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "ops"}


def op_arrays(graph, device, profile: str = "eager", params: dict = None, power_params: dict = None):
    """(cost model, power model, costs at the top clock, arrays [ops, steps] for `operating_point`). The op
    numbers may be arrays (a template instantiated for many steps): everything stays array-shaped."""
    model = cost_model(device, profile, params)
    power = PowerModel(device, power_params)
    graph = grouped_layers(graph, model)
    top = [model.cost(op, power.f_max) for op in graph.ops]
    shape = np.shape(np.asarray(top[0].memory_s)) if top else ()
    steps = shape[0] if shape else 1

    def rows(values):
        if not shape:                       # one step: plain numbers
            return np.array(values, dtype=float).reshape(-1, 1)
        out = np.empty((len(values), steps))
        for i, v in enumerate(values):        # a scalar fills its row, an array is copied in
            out[i] = v
        return out
    runs = [op.runs for op in graph.ops]
    reps = rows(runs) if shape and any(isinstance(r, np.ndarray) and r.ndim for r in runs) \
        else np.array(runs, float)                                                              # [ops] or [ops, steps]
    arrays = {"compute": rows([c.compute_s for c in top]), "memory": rows([c.memory_s for c in top]),
              "fixed": rows([c.overhead_s for c in top]), "reps": reps,
              "flops": rows([model.energy_flops(op) for op in graph.ops]), "nbytes": rows([c.bytes for c in top]),
              "joins": [joins_window(op) for op in graph.ops]}
    return model, power, top, arrays


BOUNDS = np.array(["compute", "memory", "latency"])


def grouped_layers(graph, model, share=1.0):
    """`graph` with its routed expert ops marked for the grouped MoE layer where `model` (a GPU model) runs a stack
    whose `moe_kernel` is grouped (hw_models/moe.py group_experts; `share`: one device's part of the experts under
    expert parallelism); else `graph`."""
    if getattr(getattr(model, "stack", None), "moe_kernel", "loop") != "grouped":
        return graph
    from hw_models.moe import group_experts
    return group_experts(graph, share)


def host_model(device, host=None, speed: float = None, impl: str = None, profile: str = None):
    """The host model of a host-issued stack: `host` (a preset id, a host file or a HostSpec), else the device's
    default host, or that host's variant for the code `impl` when it names one (`--impl hf` graphs: the host
    fitted to HF generate(), hw_models/host.py `default_host`); `speed` scales it (2.0: a host twice as fast);
    `profile`'s `host_op_scale` scales a probed host's per-op costs; HF code (`impl` hf) is priced per model-code
    Python call, other code per kernel (hw_models/host.py)."""
    from hw_models.host import HostModel, default_host, load_host
    spec = load_host(host) if host is not None else default_host(device, impl)
    scale = op_scale_for(profile, spec)
    return HostModel(spec.with_speed(speed) if speed is not None else spec, op_scale=scale, per_call=impl == "hf")


def host_timing(graph, device, profile, op_time, host=None, host_speed=None, first_pass: bool = False):
    """Two-queue timing of a host-issued step (sim/hostqueue.py) from per-op device times (scalars or arrays).
    `first_pass`: the process has not run this step's KV length (a fresh process's decode steps beyond the lengths
    it ran): each cuDNN SDPA shape over that length is built, in host time (hw_models/host.py `cudnn_new_shape`)."""
    from .hostqueue import sequence, two_queues
    st = STACKS[profile]
    hm = host_model(device, host, host_speed, graph.meta.get("impl"), profile)
    issue = [hm.issue_s(op) for op in graph.ops]
    syncs = [hm.forces_sync(op) for op in graph.ops]
    order = sequence(graph)
    once = None
    if first_pass:
        m = graph.meta
        kv_len = int(m.get("context", 0) or 0) + int(m.get("new_tokens", 0) or 0)    # the step's keys, all of them
        once = hm.new_shapes(graph.ops, order, device.id, kv_len)
    return hm, two_queues(order, issue, op_time, syncs, hm.sync_s, hm.step_s, st.per_step_host, once)


def predict(graph, device, profile: str = "eager", params: dict = None, power_params: dict = None,
            merge_projections: bool = None, host=None, host_speed: float = None,
            first_pass: bool = False) -> Prediction:
    """One step on one device: the one-step case of the array solution (`hw_models.power.operating_point`).
    `merge_projections` overrides the stack's choice (None: as the stack does it). Host-issued stacks
    (eager-launch, hf-generate) time the host and the device as two queues (`host`: a host preset or file,
    default the device's; `host_speed` scales it; `first_pass`: a fresh process's step at a KV length it has not run,
    see host_timing)."""
    require_device(profile, device)
    merge = STACKS[profile].merge_projections if merge_projections is None and profile in STACKS else merge_projections
    if merge:
        graph = merge_sibling_matmuls(graph)[0]
    model, power, top, a = op_arrays(graph, device, profile, params, power_params)
    pt = operating_point(power, a["compute"], a["memory"], a["fixed"], a["reps"], a["flops"], a["nbytes"], a["joins"])
    clock, t1, e1 = pt.op_clock[:, 0], pt.op_time[:, 0], pt.op_energy[:, 0]
    latency = float(pt.latency[0])
    stretch = power.f_max / clock
    body = np.maximum(a["compute"][:, 0] * stretch, a["memory"][:, 0])
    kinds = np.where(a["fixed"][:, 0] > body, 2, np.where(a["compute"][:, 0] * stretch >= a["memory"][:, 0], 0, 1))
    rows, by_bound, peak = [], {}, power.idle
    for i, (op, c) in enumerate(zip(graph.ops, top)):
        t = float(t1[i])
        bound = c.bound if clock[i] == power.f_max else str(BOUNDS[kinds[i]])
        total = t * op.runs
        by_bound[bound] = by_bound.get(bound, 0.0) + total
        energy = float(e1[i])
        peak = max(peak, min(energy / t if t else 0.0, power.cap))
        rows.append({
            "index": op.index, "name": op.name, "kind": op.kind, "count": op.runs, "dtype": op.dtype,
            "flops": op.flops, "bytes": c.bytes, "intensity": c.intensity if c.bytes else None,
            "time_s": t, "energy_j": energy, "total_time_s": total, "share": total / latency if latency else 0.0,
            "bound": bound, "attained_flops": op.flops / t if t else 0.0, "attained_bandwidth": c.bytes / t if t else 0.0,
            "kernels": c.kernels,
        })
    capacity = sum((m.capacity_gb or 0) for m in device.memory.values() if m is device.main_memory) * 1e9
    needed = graph.memory_needed()
    totals = graph.totals()
    energy = float(pt.energy[0])
    host_fields = {}
    if profile in STACKS and STACKS[profile].host_queue:
        hm, ht = host_timing(graph, device, profile, [float(t) for t in t1], host, host_speed, first_pass)
        energy += host_wait_w(power) * float(ht.device_idle_s)      # the device waits for the host
        latency = float(ht.latency_s)
        by_bound["host"] = float(ht.device_idle_s)
        for r in rows:
            r["share"] = r["total_time_s"] / latency if latency else 0.0
        host_fields = {"host": hm.host.id, "host_busy_s": float(ht.host_busy_s),
                       "device_idle_s": float(ht.device_idle_s), "host_op_scale": hm.op_scale}
    wait = step_host_wait_s(profile)                 # the stack's host time per iteration (scheduling, sampling)
    if wait:
        latency += wait
        energy += power.p["static_w"] * wait
        by_bound["host"] = by_bound.get("host", 0.0) + wait
        for r in rows:
            r["share"] = r["total_time_s"] / latency
    avg = energy / latency if latency else 0.0
    return Prediction(
        model=graph.meta["model"], hardware=device.id, phase=graph.meta["phase"], latency_s=latency,
        energy_j=energy, avg_power_w=avg, peak_power_w=max(peak, avg),
        clock_mhz=float(pt.clock[0]), power_capped=bool(pt.capped[0]), bound=max(by_bound, key=by_bound.get),
        fits=needed <= capacity if capacity else True, memory_needed_bytes=needed, memory_capacity_bytes=capacity,
        flops=totals["flops"], bytes=totals["total_bytes"], ops=rows, **host_fields)
