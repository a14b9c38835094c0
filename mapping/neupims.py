"""NeuPIMs-style decode on an NPU with HBM-PIM memory (Heo et al., ASPLOS'24), and its baselines, as task
graphs for the heterogeneous scheduler (built here, run by sim/neupims.py on the engine's list scheduler).

Per decoder layer the projections and FFN run on the NPU's systolic arrays (hw_models.systolic costs)
and the attention over each request's KV cache runs in the banks of the channel holding it
(hw_models.pim_timing; the slowest channel sets the time, mapping.pim_channels). Resources: "npu",
"pim" and "bus" (the HBM channels' data buses). An NPU op holds npu + bus for its DRAM-streaming time
and then npu alone for the rest of its time (compute beyond the stream, dispatch).
  npu-only     attention too on the NPU, streaming the KV cache over the bus.
  blocked      single row buffer (Newton, the naive NPU+PIM): PIM holds the bus for its whole run, so
               the NPU cannot stream while PIM computes.
  concurrent   dual row buffers: PIM holds only "pim"; its GWRITE/READRES traffic (a few % of its time,
               its bus duty d) slows the NPU streams it overlaps: an NPU op overlapped for o seconds
               streams o d / (1 - d) longer (overlaps measured in a first pass of the schedule).
  interleave   two sub-batches (in every channel the earlier half of its requests, as the NeuPIMs
               scheduler): one's attention on PIM while the other's GEMMs run on the NPU. Each half's
               GEMMs re-read every weight: the repo's MatMul tiles MOVIN weights per op and sub-batches
               are separate ops (src/operations/MatMul.cc, src/StageProgram.cc).
A softmax over the scores runs on the NPU vector units beside the PIM GEMVs (the repo's
NeuPIMSLogitSoftmax reads the scores out for it). All-reduce between tensor-parallel devices is left
out for every variant alike. The step time is the steady-state layer time (from 1 and 3 simulated
layers) x layers, plus the ops outside the layers.
"""
from __future__ import annotations

from dataclasses import dataclass

from .taskgraph import Task

MODES = ("npu-only", "npu+pim", "dual-rb", "interleaved")


@dataclass(frozen=True)
class NpuOp:
    name: str
    time_s: float
    memory_s: float          # of time_s, the part that streams DRAM (holds the bus)
    flops: float


@dataclass(frozen=True)
class NpuLayer:
    """One decoder layer's NPU work at one batch size."""
    before: tuple            # NpuOps up to the attention (norm, QKV, KV append)
    attention: NpuOp         # the attention on the NPU (npu-only)
    after: tuple             # NpuOps after it (output projection, FFN, norms, residuals)
    softmax_s: float         # vector-unit softmax beside the PIM GEMVs


@dataclass(frozen=True)
class PimLoad:
    """One (sub-)batch's in-bank attention in one layer."""
    max_s: float             # the busiest channel
    mean_s: float            # the channels' mean busy time
    bus_s: float             # the channels' mean GWRITE + READRES time (holds the data bus)
    macs: float


def npu_layer(graph, cost, softmax_rate: float) -> tuple:
    """(NpuLayer, ops outside the layers in s, number of layers) from a traced shard; cost(op) -> OpCost."""
    group = next(iter(graph.layer_groups))
    ops = [op for op in graph.ops if op.group == group]
    at = next(i for i, op in enumerate(ops) if op.kind == "attention")

    def conv(op):
        c = cost(op)
        return NpuOp(op.name, c.time_s, min(c.memory_s, c.time_s), float(op.flops))

    a = ops[at].attrs
    softmax = 5.0 * a["b"] * a["hq"] * a["sq"] * a["sk"] / softmax_rate
    layer = NpuLayer(tuple(conv(op) for op in ops[:at]), conv(ops[at]), tuple(conv(op) for op in ops[at + 1:]),
                     softmax)
    outside = sum(cost(op).time_s * op.repeat for op in graph.ops if op.group is None)
    return layer, outside, len(graph.layer_groups[group])


def _npu_tasks(tag, ops, dep, extra=None):
    tasks = []
    for op in ops:
        mem = op.memory_s + (extra or {}).get(f"{tag}:{op.name}:m", 0.0)
        rest = max(op.time_s - op.memory_s, 0.0)
        if mem > 0:
            tasks.append(Task(f"{tag}:{op.name}:m", ("bus", "npu"), mem, [dep] if dep else []))
            dep = tasks[-1].name
        if rest > 0 or mem <= 0:
            tasks.append(Task(f"{tag}:{op.name}:c", "npu", rest, [dep] if dep else []))
            dep = tasks[-1].name
    return tasks, dep


def _chain(tag, layer, pim, layers, mode, concurrent, extra):
    tasks, dep = [], None
    for n in range(layers):
        t = f"{tag}{n}"
        more, dep = _npu_tasks(t, layer.before, dep, extra)
        tasks += more
        if mode == "npu-only":
            more, dep = _npu_tasks(t + ":attn", (layer.attention,), dep)
            tasks += more
        else:
            if concurrent:
                tasks.append(Task(f"{t}:pim", "pim", pim.max_s, [dep]))
            else:                                    # a single row buffer: the bus is PIM's while it runs
                tasks.append(Task(f"{t}:pim", ("bus", "pim"), pim.max_s, [dep]))
            tasks.append(Task(f"{t}:softmax", "npu", layer.softmax_s, [dep]))
            dep = f"{t}:join"
            tasks.append(Task(dep, "sync", 0.0, [f"{t}:pim", f"{t}:softmax"]))
        more, dep = _npu_tasks(t, layer.after, dep, extra)
        tasks += more
    return tasks


