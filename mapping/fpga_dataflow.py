"""FPGA dataflow mapping: the step streams layer by layer through the fabric (FlightLLM, TeLLMe).

Why this shape: an FPGA LLM design keeps one layer's engines busy while the next weights stream in from
HBM/DDR; activations live in on-chip BRAM/URAM when they fit, so decode moves only weights and KV cache
off chip ("always-on-chip decode", FlightLLM). A prefill's activations (every prompt token's hidden
states) are streamed through off-chip memory, as both designs do. The LM head may run on the system's
host CPU (`lmhost`; TeLLMe runs it on the KV260's Cortex-A53 cores with NEON).

The plan records where activations live and which ops the host runs; `sim.dataflow` times it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from workloads.errors import HwsimError

from .registry import strategy
from .taskgraph import Lane, Node, Program, TaskGraph, _chained, layer_order

# estimate: the share of on-chip SRAM a design leaves for activations; the rest holds weight tiles and KV
# staging buffers (TeLLMe fills 94% of the KV260's URAM, mostly with weight buffers: seed-papers 4(b)).
ACTIVATION_SHARE = 0.5
HOST_OPS = ("lm_head",)


@dataclass(frozen=True)
class DataflowPlan:
    onchip_activations: bool          # decode activations held in BRAM/URAM
    activation_budget_bytes: float    # on-chip SRAM left for activations
    working_set_bytes: float          # the largest live activation set of one op (producer + consumer)
    host_group: str = None            # runs HOST_OPS when set (`lmhost`)
    overlap: object = True            # True: weight/KV streams overlap compute within a layer (double buffers);
                                      # False: they add; "serial": op after op, each its own time
    runtime_overhead_s: float = 0.0   # host driver work per step before the fabric starts (needs `lmhost`)
    cost_params: dict = field(default_factory=dict)    # FPGA cost-model parameters for this plan


def _onchip_bytes(device) -> float:
    level = device.memory.get("onchip")
    if level is None or not level.capacity_gb:
        raise HwsimError(f"{device.id} lists no on-chip memory (an 'onchip' level with BRAM/URAM capacity); "
                         f"add it to the preset to use the dataflow mapping")
    return level.capacity_gb * 1e9


def _build(tg: TaskGraph, system, plan: DataflowPlan) -> TaskGraph:
    """Segments on the FPGA in model order (each distinct layer kind once, repeated), a host runtime step first
    when the plan has one, and the host's ops after a hand-over on the system's link (`lmhost`)."""
    graph, group = tg.source, tg.lanes["dev"].group
    host_names = HOST_OPS if plan.host_group else ()
    pre, kinds, post = layer_order(graph)
    nodes, lanes = [], {"dev": replace(tg.lanes["dev"], count=1)}
    programs = {"main": Program(group, graph, dict(plan.cost_params), dvfs=False)}
    if plan.host_group:
        lanes["host"] = Lane("device", plan.host_group, (f"{plan.host_group}0",), 1, idle_power=False)
        programs["host"] = Program(plan.host_group, graph, dvfs=False)
    if plan.runtime_overhead_s and plan.host_group:
        nodes.append(Node("host:runtime", "fixed", "host", seconds=plan.runtime_overhead_s, label="runtime"))
    for op in pre:
        if op.name not in host_names:
            nodes.append(Node(f"s:{op.name}", "segment", "dev", program="main", ops=(op.index,),
                              overlap=plan.overlap, label=op.name))
    for g, ids, ops in kinds:
        nodes.append(Node(f"layers[{g}]", "segment", "dev", program="main", ops=tuple(op.index for op in ops),
                          repeat=len(ids), overlap=plan.overlap, layer=min(ids), label=f"layers[{g}]"))
    for op in post:
        if op.name not in host_names:
            nodes.append(Node(f"s:{op.name}", "segment", "dev", program="main", ops=(op.index,),
                              overlap=plan.overlap, label=op.name))
    host_ops = [op for op in graph.ops if op.name in host_names]
    link = next((n for n, l in system.links.items() if set(l.connects) == {group, plan.host_group}), None) \
        if host_ops else None
    if link:
        lanes["hostlink"] = Lane("link", link=link)
    for op in host_ops:
        if link:
            hand = float(op.reads.get("activation", op.bytes.get("activation", 0)))
            nodes.append(Node(f"send:{op.name}", "transfer", "hostlink", nbytes=hand, link=link, label="hand-over"))
        nodes.append(Node(f"host:{op.name}", "op", "host", program="host", ops=(op.index,), label=op.name))
    if len(lanes) > 1 and "host" in lanes and not host_ops and not plan.runtime_overhead_s:
        del lanes["host"], programs["host"]
    return tg.with_(nodes=_chained(nodes), lanes=lanes, programs=programs, info=dict(tg.info, dataflow=plan))


def configure(tg: TaskGraph, system, **changes) -> TaskGraph:
    """The dataflow placement with plan fields changed (overlap, runtime_overhead_s, cost_params): how a study
    tries design variants of one FPGA engine."""
    plan = tg.info["dataflow"]
    if "cost_params" in changes:
        changes["cost_params"] = {**plan.cost_params, **changes["cost_params"]}
    return _build(tg, system, replace(plan, **changes))


@strategy("dataflow", "FPGA layer-by-layer streaming: weights/KV stream from HBM/DDR, decode activations on chip")
def dataflow(tg: TaskGraph, system, degree: int) -> TaskGraph:
    if degree != 1:
        raise HwsimError("mapping 'dataflow' takes no degree")
    group = tg.lanes["dev"].group
    device = system.device(group)
    if device.device_class != "fpga":
        raise HwsimError(f"mapping 'dataflow' needs an FPGA; system {system.id} runs on {device.id} "
                         f"({device.device_class}); use e.g. --system u280-host or kv260-board")
    graph = tg.source
    meta = graph.meta
    held = meta["weight_storage_bytes"] + meta["kv_cache_storage_bytes"]
    capacity = (device.main_memory.capacity_gb or 0) * 1e9
    if held > capacity:
        raise HwsimError(f"{meta['model']} needs {held / 1e9:.2f} GB of weights and KV cache but the "
                         f"{device.name} card memory holds {capacity / 1e9:.1f} GB; use --quant, a shorter "
                         f"context or a smaller model")
    budget = _onchip_bytes(device) * ACTIVATION_SHARE
    working = 2 * max((float(op.bytes.get("activation", 0)) for op in graph.ops), default=0.0)
    onchip = meta["phase"] == "decode" and working <= budget
    plan = DataflowPlan(onchip, budget, working, cost_params={"onchip_mb": budget / 1e6 if onchip else 0.0})
    return _build(tg, system, plan).with_(resident_bytes={group: held})


@strategy("lmhost", "with dataflow: the LM head runs on the system's host CPU (TeLLMe: the KV260's ARM cores)",
          after=("single", "dataflow"))
def lm_head_on_host(tg: TaskGraph, system, degree: int) -> TaskGraph:
    if degree != 1:
        raise HwsimError("mapping 'lmhost' takes no degree")
    if "dataflow" not in tg.applied:
        raise HwsimError("mapping 'lmhost' goes with 'dataflow', e.g. --mapping dataflow,lmhost")
    group = tg.lanes["dev"].group
    hosts = [g for g in system.devices if g != group and system.device(g).device_class == "cpu"]
    if not hosts:
        raise HwsimError(f"system {system.id} has no host CPU for the LM head; use e.g. kv260-board or u280-host")
    return configure(tg, system, host_group=hosts[0])
