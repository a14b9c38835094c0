"""Weight offloading and DFloat11-compressed weights as mappings.

`offload` is HF Accelerate's `device_map="auto"` (the DFloat11 paper's baseline): whole modules stay in device
memory in model order while they fit (`mapping.residency`), the rest live in host memory and are copied to the
device before each runs, every forward pass. Accelerate's `AlignDevicesHook.pre_forward` copies each weight with
`set_module_tensor_to_device` (`non_blocking=False`) from ordinary (pageable) host tensors, and a pageable
host-to-device `cudaMemcpy` first synchronizes the stream (CUDA Runtime API, "API synchronization behavior"):
the copy of a module starts after the previous module's kernels end and its own start after the copy, so
transfers do not overlap compute. They run at the link's `pageable_gbps` when the system gives one.
`offload:F` keeps the fraction F of the decoder layers resident instead (0: every layer streamed).
`offload-overlap` is the FlexGen-style alternative: pinned host memory, two device buffers, the next layer's
copy running during this layer's compute at the link's full rate.
`df11` stores the weights DFloat11-compressed (about 68% of bf16, DFloat11 paper Table 1) and decompresses
each block on the device before it runs.
"""
from __future__ import annotations

from workloads.errors import HwsimError

from .registry import MappedGraph, strategy
from .residency import plan

DF11_RATIO = 0.68          # DFloat11 (arXiv 2504.11651) Table 1: 67.6-68.2% of the BF16 size (10.8-10.9 bits)


def _host_link(mapped: MappedGraph, system, name: str) -> str:
    if mapped.offload_link:
        raise HwsimError("use one of offload and offload-overlap")
    links = [key for key, link in system.links.items() if mapped.group in link.connects
             and any(g != mapped.group for g in link.connects)]
    if not links:
        raise HwsimError(f"system {system.id} has no link from its '{mapped.group}' devices to a host; use a system "
                         f"such as h100-host-offload")
    if mapped.devices > 1 or mapped.stages > 1:
        raise HwsimError(f"mapping '{name}' runs on one device; drop tp/pp")
    return links[0]


def _place(mapped: MappedGraph, system, resident, name: str, overlap: bool) -> MappedGraph:
    mapped.offload_link = _host_link(mapped, system, name)
    capacity = (system.device(mapped.group).main_memory.capacity_gb or 0) * 1e9
    mapped.residency = plan(mapped.graph, capacity, mapped.weight_ratio, resident)
    mapped.offload_overlap = overlap
    mapped.strategy += f",{name}" if mapped.strategy else name
    return mapped


@strategy("offload", "HF Accelerate device_map=auto: whole layers stay on the device while they fit (after the KV "
                     "cache and buffers), the rest are copied from host memory before they run, not overlapped; "
                     "offload:F keeps the fraction F of the layers (0: stream all)", fraction=True)
def offload(mapped: MappedGraph, system, resident) -> MappedGraph:
    return _place(mapped, system, resident, "offload", overlap=False)


@strategy("offload-overlap", "as offload, but from pinned host memory with the next layer's copy overlapping this "
                             "layer's compute (FlexGen-style double buffering)", fraction=True)
def offload_overlap(mapped: MappedGraph, system, resident) -> MappedGraph:
    return _place(mapped, system, resident, "offload-overlap", overlap=True)


@strategy("df11", "DFloat11-compressed bf16 weights (~68% size, lossless), decompressed on the device per block")
def dfloat11(mapped: MappedGraph, system, degree: int) -> MappedGraph:
    if degree != 1:
        raise HwsimError("mapping 'df11' takes no degree")
    if mapped.graph.meta.get("weight_dtype") not in ("bf16", None):
        raise HwsimError("df11 compresses bf16 weights; drop --quant")
    mapped.weight_ratio = DF11_RATIO
    mapped.strategy += ",df11"
    return mapped
