"""Which weights stay in device memory when the rest are offloaded to the host, as HF Accelerate's
`device_map="auto"` places them (accelerate/utils/modeling.py, `infer_auto_device_map`, `get_balanced_memory`):

- modules are placed in model order, whole: the token embedding, decoder layer 0, 1, ..., then the final
  norm and LM head; the first that does not fit and everything after it go to the host;
- room for the largest offloaded module stays free on the GPU, where its weights are copied to run
  ("there is always room left on GPU 0 to put back the layer offloaded on CPU that has the largest size");
- the rest of the memory is kept for the KV cache of the requested batch and context, the largest activation
  and the runtime (CUDA context, cuBLAS workspace, allocator slack). Accelerate itself, on one GPU with no
  `max_memory` given, keeps 10% ("90% is a good compromise"); the DFloat11 paper's baseline instead "offload[s]
  only necessary components" (Section 3.1), which is what is modelled here.

With DFloat11 weights (`weight_ratio` < 1) a full-size BF16 buffer for the largest unit (a block, the
embedding or the LM head) is also held: DF11 decompresses a block into it before running it (paper 2.3.3).
"""
from __future__ import annotations

from dataclasses import dataclass

from workloads.errors import HwsimError

RUNTIME_RESERVE_BYTES = 0.5e9     # estimate: CUDA context + cuBLAS workspace + allocator slack of a PyTorch
                                  # process (typically 0.3-1 GB); not measured here


@dataclass(frozen=True)
class Residency:
    units: tuple                  # (name, bf16 bytes) in model order: "embed", "layer0", ..., "head"
    resident: int                 # the first `resident` units stay on the device
    held_bytes: float             # device memory taken by weights (resident, staging, decompression buffer)
    reserved_bytes: float         # kept for KV cache, activations and the runtime

    @property
    def streamed_bytes(self) -> float:
        """BF16 bytes of the units that are not resident (moved once per forward pass)."""
        return sum(b for _, b in self.units[self.resident:])

    def is_resident(self, name: str) -> bool:
        return any(n == name for n, _ in self.units[:self.resident])


def weight_units(graph) -> tuple:
    """(name, bf16 bytes) per module in model order; layer weights from the traced ops, the embedding as
    the rest of the stored weights (the traced lookup reads only the rows it gathers)."""
    groups = {}
    for op in graph.ops:
        if op.group is not None:
            groups[op.group] = groups.get(op.group, 0) + op.bytes.get("weight", 0)
    order = sorted((layer, g) for g, ids in graph.layer_groups.items() for layer in ids)
    first = min((op.index for op in graph.ops if op.group is not None), default=None)
    head = sum(op.bytes.get("weight", 0) for op in graph.ops
               if op.group is None and first is not None and op.index > first)
    layers = [(f"layer{layer}", groups.get(g, 0)) for layer, g in order]
    embed = max(0.0, graph.meta["weight_storage_bytes"] - sum(b for _, b in layers) - head)
    return tuple([("embed", embed)] + layers + [("head", head)])


def _activation(graph) -> float:
    return max((op.bytes.get("activation", 0) for op in graph.ops), default=0)


def plan(graph, capacity_bytes: float, weight_ratio: float = 1.0, resident_fraction=None) -> Residency:
    """Place whole units on the device. `resident_fraction` None fits what fits; a number keeps that share of
    the decoder layers (with the embedding; the head stays only when every layer does)."""
    units = weight_units(graph)
    stored = [b * weight_ratio for _, b in units]
    reserved = graph.meta["kv_cache_storage_bytes"] + _activation(graph) + RUNTIME_RESERVE_BYTES
    decompress = max(b for _, b in units) if weight_ratio < 1.0 else 0.0
    layers = len(units) - 2
    if resident_fraction is not None:
        keep = round(resident_fraction * layers)
        resident = len(units) if keep == layers else 1 + keep
    else:
        resident = len(units)
        while resident > 0:
            staging = max(stored[resident:], default=0.0)
            if sum(stored[:resident]) + staging + decompress + reserved <= capacity_bytes:
                break
            resident -= 1
    staging = max(stored[resident:], default=0.0)
    held = sum(stored[:resident]) + staging + decompress
    if resident_fraction is None and held + reserved > capacity_bytes:
        raise HwsimError(f"{graph.meta['model']}: not even one layer fits beside {reserved / 1e9:.1f} GB of KV cache "
                         f"and buffers in {capacity_bytes / 1e9:.1f} GB; use a smaller batch or context")
    return Residency(units, resident, held, reserved)
