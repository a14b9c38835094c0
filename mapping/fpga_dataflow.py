"""FPGA dataflow mapping: the step streams layer by layer through the fabric (FlightLLM, TeLLMe).

Why this shape: an FPGA LLM design keeps one layer's engines busy while the next weights stream in from
HBM/DDR; activations live in on-chip BRAM/URAM when they fit, so decode moves only weights and KV cache
off chip ("always-on-chip decode", FlightLLM). A prefill's activations (every prompt token's hidden
states) are streamed through off-chip memory, as both designs do. The LM head may run on the system's
host CPU (`lmhost`; TeLLMe runs it on the KV260's Cortex-A53 cores with NEON).

The plan records where activations live and which ops the host runs; `sim.dataflow` times it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workloads.errors import HwsimError

from .registry import MappedGraph, strategy

# estimate: the share of on-chip SRAM a design leaves for activations; the rest holds weight tiles and KV
# staging buffers (TeLLMe fills 94% of the KV260's URAM, mostly with weight buffers: seed-papers 4(b)).
ACTIVATION_SHARE = 0.5
HOST_OPS = ("lm_head",)


@dataclass
class DataflowPlan:
    onchip_activations: bool          # decode activations held in BRAM/URAM
    activation_budget_bytes: float    # on-chip SRAM left for activations
    working_set_bytes: float          # the largest live activation set of one op (producer + consumer)
    host_group: str = None            # runs HOST_OPS when set (`lmhost`)
    overlap: object = True            # True: weight/KV streams overlap compute within a layer (double buffers);
                                      # False: they add; "serial": op after op, each its own time (sim/dataflow.py)
    runtime_overhead_s: float = 0.0   # host driver work per step before the fabric starts (needs `lmhost`)
    cost_params: dict = field(default_factory=dict)    # FPGA cost-model parameters for this plan


def _onchip_bytes(device) -> float:
    level = device.memory.get("onchip")
    if level is None or not level.capacity_gb:
        raise HwsimError(f"{device.id} lists no on-chip memory (an 'onchip' level with BRAM/URAM capacity); "
                         f"add it to the preset to use the dataflow mapping")
    return level.capacity_gb * 1e9


@strategy("dataflow", "FPGA layer-by-layer streaming: weights/KV stream from HBM/DDR, decode activations on chip")
def dataflow(mapped: MappedGraph, system, degree: int) -> MappedGraph:
    if degree != 1:
        raise HwsimError("mapping 'dataflow' takes no degree")
    if mapped.total_devices > 1 or mapped.offload_link or mapped.ep > 1:
        raise HwsimError("mapping 'dataflow' streams the whole model through one FPGA; drop tp/pp/dp/ep/offload")
    device = system.device(mapped.group)
    if device.device_class != "fpga":
        raise HwsimError(f"mapping 'dataflow' needs an FPGA; system {system.id} runs on {device.id} "
                         f"({device.device_class}); use e.g. --system u280-host or kv260-board")
    graph = mapped.graph
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
    mapped.dataflow = plan
    mapped.strategy += ",dataflow" if mapped.strategy else "dataflow"
    return mapped


@strategy("lmhost", "with dataflow: the LM head runs on the system's host CPU (TeLLMe: the KV260's ARM cores)")
def lm_head_on_host(mapped: MappedGraph, system, degree: int) -> MappedGraph:
    if degree != 1:
        raise HwsimError("mapping 'lmhost' takes no degree")
    if mapped.dataflow is None:
        raise HwsimError("mapping 'lmhost' goes with 'dataflow', e.g. --mapping dataflow,lmhost")
    hosts = [g for g in system.devices if g != mapped.group and system.device(g).device_class == "cpu"]
    if not hosts:
        raise HwsimError(f"system {system.id} has no host CPU for the LM head; use e.g. kv260-board or u280-host")
    mapped.dataflow.host_group = hosts[0]
    mapped.strategy += ",lmhost"
    return mapped
