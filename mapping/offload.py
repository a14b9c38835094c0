"""Weight offloading: the weights live in host memory and stream to the device over its host link, layer by
layer, while the device computes the previous layer (double buffering, as HF Accelerate / FlexGen-style
offload does). `df11` stores them DFloat11-compressed (about 70% of bf16, DFloat11 paper Table 1) and adds
an on-device decompression pass; on its own (no offload) it saves memory at the cost of that pass.
"""
from __future__ import annotations

from workloads.errors import HwsimError

from .registry import MappedGraph, strategy

DF11_RATIO = 0.68          # DFloat11 (arXiv 2504.11651) Table 1: 67.6-67.9% of the BF16 size


@strategy("offload", "weights in host memory, streamed per layer over the host link while the previous layer runs")
def offload(mapped: MappedGraph, system, degree: int) -> MappedGraph:
    if degree != 1:
        raise HwsimError("mapping 'offload' takes no degree")
    host_links = [name for name, link in system.links.items() if mapped.group in link.connects
                  and any(g != mapped.group for g in link.connects)]
    if not host_links:
        raise HwsimError(f"system {system.id} has no link from its '{mapped.group}' devices to a host; use a system "
                         f"such as h100-host-offload")
    mapped.offload_link = host_links[0]
    mapped.strategy += ",offload" if mapped.strategy else "offload"
    return mapped


@strategy("df11", "DFloat11-compressed bf16 weights (~68% size, lossless), decompressed on the device per layer")
def dfloat11(mapped: MappedGraph, system, degree: int) -> MappedGraph:
    if degree != 1:
        raise HwsimError("mapping 'df11' takes no degree")
    if mapped.graph.meta.get("weight_dtype") not in ("bf16", None):
        raise HwsimError("df11 compresses bf16 weights; drop --quant")
    mapped.weight_ratio = DF11_RATIO
    mapped.strategy += ",df11"
    return mapped
