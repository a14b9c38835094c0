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

from .registry import strategy
from .residency import plan, weight_units
from .taskgraph import Lane, Node, TaskGraph, layer_order

DF11_RATIO = 0.68          # DFloat11 (arXiv 2504.11651) Table 1: 67.6-68.2% of the BF16 size (10.8-10.9 bits)


def unit_ops(graph) -> dict:
    """Op indices per weight unit ("embed", "layer<k>", "head"), in model order as `weight_units` names them."""
    pre, kinds, post = layer_order(graph)
    units = {"embed": tuple(op.index for op in pre), "head": tuple(op.index for op in post)}
    for g, ids, ops in kinds:
        for layer in ids:
            units[f"layer{layer}"] = tuple(op.index for op in ops)
    return units


def _host_link(tg: TaskGraph, system, name: str) -> str:
    group = tg.lanes["dev"].group
    links = [key for key, link in system.links.items() if group in link.connects
             and any(g != group for g in link.connects)]
    if not links:
        raise HwsimError(f"system {system.id} has no link from its '{group}' devices to a host; use a system "
                         f"such as h100-host-offload")
    return links[0]


def _by_unit(tg: TaskGraph, system, ratio: float, residency=None, link: str = None, overlap: bool = False):
    """Module by module in model order: a copy over the host link before each module that is not resident,
    a decompression before each module when the weights are stored compressed, then the module's ops."""
    graph = tg.programs["main"].graph
    ops = unit_ops(graph)
    units = residency.units if residency else weight_units(graph)
    resident = residency.resident if residency else len(units)
    nodes, lanes = [], {"dev": tg.lanes["dev"]}
    if link is not None:
        lanes["hostlink"] = Lane("link", link=link)
    for k, (name, nbytes) in enumerate(units):
        deps = [f"c{k - 1}"] if k else []
        if link is not None and k >= resident:
            gate = k - 2 if overlap else k - 1
            nodes.append(Node(f"t{k}", "transfer", "hostlink", deps=(f"c{gate}",) if gate >= 0 else (),
                              nbytes=nbytes * ratio, link=link, rate="bandwidth" if overlap else "pageable",
                              label=f"copy {name}"))
            deps.append(f"t{k}")
        if ratio < 1.0:
            nodes.append(Node(f"d{k}", "decompress", "dev", deps=tuple(deps), program="main", nbytes=nbytes,
                              label=f"decompress {name}"))
            deps = [f"d{k}"]
        nodes.append(Node(f"c{k}", "op", "dev", deps=tuple(deps), program="main", ops=ops[name], label=name))
    return tuple(nodes), lanes


def _one_device(tg: TaskGraph, name: str) -> None:
    if tg.lanes["dev"].count > 1 or tg.tp > 1:
        raise HwsimError(f"mapping '{name}' runs on one device; drop tp/pp/ep")


def _place(tg: TaskGraph, system, resident, name: str, overlap: bool) -> TaskGraph:
    _one_device(tg, name)
    link = _host_link(tg, system, name)
    group = tg.lanes["dev"].group
    ratio = tg.info.get("weight_ratio", 1.0)
    graph = tg.programs["main"].graph
    capacity = (system.device(group).main_memory.capacity_gb or 0) * 1e9
    residency = plan(graph, capacity, ratio, resident)
    nodes, lanes = _by_unit(tg, system, ratio, residency, link, overlap)
    held = graph.memory_needed() - graph.meta["weight_storage_bytes"] + residency.held_bytes
    return tg.with_(nodes=nodes, lanes=lanes, resident_bytes={group: held},
                    info=dict(tg.info, residency=residency, offload_link=link))


@strategy("offload", "HF Accelerate device_map=auto: whole layers stay on the device while they fit (after the KV "
                     "cache and buffers), the rest are copied from host memory before they run, not overlapped; "
                     "offload:F keeps the fraction F of the layers (0: stream all)", fraction=True,
          after=("single", "df11"))
def offload(tg: TaskGraph, system, resident) -> TaskGraph:
    return _place(tg, system, resident, "offload", overlap=False)


@strategy("offload-overlap", "as offload, but from pinned host memory with the next layer's copy overlapping this "
                             "layer's compute (FlexGen-style double buffering)", fraction=True,
          after=("single", "df11"))
def offload_overlap(tg: TaskGraph, system, resident) -> TaskGraph:
    return _place(tg, system, resident, "offload-overlap", overlap=True)


@strategy("df11", "DFloat11-compressed bf16 weights (~68% size, lossless), decompressed on the device per block")
def dfloat11(tg: TaskGraph, system, degree: int) -> TaskGraph:
    if degree != 1:
        raise HwsimError("mapping 'df11' takes no degree")
    _one_device(tg, "df11")
    graph = tg.programs["main"].graph
    if graph.meta.get("weight_dtype") not in ("bf16", None):
        raise HwsimError("df11 compresses bf16 weights; drop --quant")
    tg = tg.with_(info=dict(tg.info, weight_ratio=DF11_RATIO))
    nodes, lanes = _by_unit(tg, system, DF11_RATIO)
    units = [b for _, b in weight_units(graph)]
    held = graph.memory_needed() - sum(units) * (1 - DF11_RATIO) + max(units)
    return tg.with_(nodes=nodes, lanes=lanes, resident_bytes={tg.lanes["dev"].group: held})
