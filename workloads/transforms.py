"""Workload transforms on a traced `OpGraph`: precision, quantization, sparsity, layer drops, shared prefix.

Each returns a new graph and appends what it did to `meta["transforms"]`. Bytes are rescaled
by byte class (weight / activation / KV cache), per op and per unfused kernel, so the fused and
eager views stay consistent. FLOPs change only where the arithmetic really changes (2:4 sparsity).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable, Optional

from .errors import HwsimError
from .graph import Kernel, OpGraph

DTYPE_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4, "int3": 3, "int2": 2}
COMPUTE_DTYPES = ("fp32", "bf16", "fp16", "fp8")
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4")


@dataclass(frozen=True)
class Precision:
    """Weights, matmul activations and KV cache formats of a quantization scheme."""
    name: str
    weight: str              # dtype name or "ternary"
    act: Optional[str]       # matmul input activations; None = compute dtype
    group_size: Optional[int] = None   # weight-only quantization groups (one fp16 scale + zero per group)
    lm_head: bool = False              # the LM head quantized too (as BitMoD's simulator does every nn.Linear)


SCHEMES = {
    "none": Precision("none", "same", None),
    "w8a16": Precision("w8a16", "int8", None),
    "w4a16": Precision("w4a16", "int4", None, 128),
    "w3a16": Precision("w3a16", "int3", None, 128),
    "w8a8": Precision("w8a8", "int8", "int8"),
    "w8a8-fp8": Precision("w8a8-fp8", "fp8", "fp8"),
    "fp8": Precision("fp8", "fp8", "fp8"),
    "w4a8": Precision("w4a8", "int4", "int8", 128),
    "ternary": Precision("ternary", "ternary", "int8"),
    "w1.58a8": Precision("w1.58a8", "ternary", "int8"),
}
TERNARY_BITS = 2.0   # packed 4 weights per byte (BitNet I2_S / HF packing); 1.6 with base-3 packing


def _whole(x):
    """int() of a byte count, element-wise for the array graphs of sweeps (Template.instantiate_many)."""
    if getattr(x, "ndim", 0):
        import numpy as np
        return np.floor(x)
    return int(x)


def _scale_bytes(d: dict, factors: dict) -> dict:
    return {c: v * factors.get(c, 1.0) for c, v in d.items()}


def scale_op(op, factors: dict, read_factors: Optional[dict] = None):
    """Scale an op's bytes by class; `read_factors` override the factor for bytes read."""
    rf = dict(factors, **(read_factors or {}))
    reads = _scale_bytes(op.reads, rf)
    writes = _scale_bytes(op.writes, factors)
    total = {c: reads.get(c, 0) + writes.get(c, 0) for c in set(reads) | set(writes)}
    kernels = tuple(Kernel(k.aten, k.flops, _scale_bytes(k.bytes, factors), k.strided) for k in op.kernels)
    return replace(op, bytes=total, reads=reads, kernels=kernels)


def scheme(quant: str):
    """A named scheme, or `wNa16` with any weight width N in bits per weight, fractions allowed, everything
    included (e.g. w3.0625a16: 3-bit weights plus an 8-bit scale per 128; w4.5a16): weight-only, no group added;
    `wNa16-all` quantizes the LM head too."""
    quant = (quant or "none").lower()
    if quant in SCHEMES:
        return SCHEMES[quant]
    m = re.fullmatch(r"w(\d+(?:\.\d+)?)a16(-all)?", quant)
    if m and 1.0 <= float(m.group(1)) <= 16.0:
        return Precision(quant, f"int{float(m.group(1)):g}", None, lm_head=bool(m.group(2)))
    raise HwsimError(f"unknown quantization '{quant}'; use one of {', '.join(SCHEMES)} or wNa16 (N bits per weight, "
                     f"e.g. w3.0625a16)")


def _weight_bits(p: Precision, base_bits: float, ternary_bits: float) -> float:
    if p.weight == "same":
        return base_bits
    if p.weight == "ternary":
        return ternary_bits
    if p.weight not in DTYPE_BITS:                      # wNa16: the width given, all overheads included
        return float(p.weight[3:])
    bits = DTYPE_BITS[p.weight]
    if p.group_size:
        bits += (16 + bits) / p.group_size      # fp16 scale + packed zero point per group
    return bits


def _is_projection(op) -> bool:
    return op.kind == "matmul" and op.attrs.get("weight_operand") and op.group is not None


def apply_precision(graph: OpGraph, dtype: str = "bf16", quant: str = "none", kv_dtype: Optional[str] = None,
                    group_size: Optional[int] = None, ternary_bits: float = TERNARY_BITS) -> OpGraph:
    """Compute dtype for everything, then a quantization scheme for the projection matmuls.

    Embeddings, norms and the LM head stay in the compute dtype (as GPTQ/AWQ/BitNet deploy them).
    """
    if dtype not in COMPUTE_DTYPES:
        raise HwsimError(f"unknown dtype '{dtype}'; use one of {', '.join(COMPUTE_DTYPES)}")
    quant = (quant or "none").lower()
    chosen = scheme(quant)
    kv_dtype = kv_dtype or dtype
    if kv_dtype not in KV_DTYPES:
        raise HwsimError(f"unknown KV-cache dtype '{kv_dtype}'; use one of {', '.join(KV_DTYPES)}")
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0):
        raise HwsimError(f"group size must be a positive integer, got {group_size!r}")
    if group_size is not None and chosen.group_size is None:
        grouped = ", ".join(k for k, v in SCHEMES.items() if v.group_size)
        raise HwsimError(f"a group size applies only to grouped quantization ({grouped}); drop it for "
                         f"quant '{quant}'")
    if chosen.act is None and chosen.weight != "same" and DTYPE_BITS[dtype] != 16:
        raise HwsimError(f"quant '{quant}' keeps 16-bit activations, but dtype is {dtype}; use dtype bf16 or fp16, "
                         f"or a scheme that quantizes activations (e.g. w8a8, fp8)")
    if group_size is not None and chosen.group_size is not None:
        chosen = replace(chosen, group_size=group_size)
    traced_bits = 16
    base = DTYPE_BITS[dtype] / traced_bits
    kv = DTYPE_BITS[kv_dtype] / traced_bits
    w_bits = _weight_bits(chosen, DTYPE_BITS[dtype], ternary_bits)
    act_bits = DTYPE_BITS[chosen.act] if chosen.act else DTYPE_BITS[dtype]
    compute = {"ternary": "ternary"}.get(chosen.weight, chosen.act or dtype) if chosen.act else dtype
    ops = []
    for op in graph.ops:
        factors = {"weight": base, "activation": base, "kv_cache": kv}
        if base == 1.0 and kv == 1.0 and chosen.weight == "same" and op.dtype == dtype:
            ops.append(op)       # nothing to rescale (the traced bf16 graph as is)
            continue
        if _is_projection(op) or (chosen.lm_head and op.name == "lm_head" and op.kind == "matmul"):
            factors["weight"] = w_bits / traced_bits
            new = scale_op(op, factors, {"activation": act_bits / traced_bits})
            attrs = dict(op.attrs, weight_bits=w_bits, act_bits=act_bits)
            ops.append(replace(new, dtype=compute, attrs=attrs))
        elif op.kind == "attention" and kv != 1.0:       # the decode kernel's cost depends on the KV element size
            ops.append(replace(scale_op(op, factors), dtype=dtype, attrs=dict(op.attrs, kv_bits=DTYPE_BITS[kv_dtype])))
        else:
            # an op the model itself runs in fp32 within a 16-bit trace (an explicit upcast: SDPA's math path,
            # HF's rotary frequencies) keeps fp32 under any compute dtype, so that its GEMMs stay CUDA-core FFMA
            # GEMMs where traced so (workloads/graph.py gemm_dtype) rather than being priced as bf16 tensor-core work
            keep = op.dtype if op.dtype == "fp32" and op.kind in ("matmul", "attention") else dtype
            ops.append(replace(scale_op(op, factors), dtype=keep))
    meta = graph.meta
    linear = meta["linear_params"]
    storage = linear * w_bits / 8 + (meta["params"] - linear) * DTYPE_BITS[dtype] / 8
    if chosen.lm_head:
        head = next((op for op in graph.ops if op.name == "lm_head" and op.kind == "matmul"), None)
        if head is not None and "n" in head.attrs and "k" in head.attrs:
            storage -= head.attrs["n"] * head.attrs["k"] * (DTYPE_BITS[dtype] - w_bits) / 8
    return graph.with_ops(
        ops, dtype=dtype, weight_dtype=chosen.weight if chosen.weight != "same" else dtype, kv_dtype=kv_dtype,
        quant=quant, weight_bits=w_bits, weight_storage_bytes=_whole(storage), linear_storage_bytes=linear * w_bits / 8,
        kv_bytes_per_token=meta["kv_bytes_per_token"] * kv, kv_cache_storage_bytes=_whole(meta["kv_cache_storage_bytes"] * kv),
        transforms=meta["transforms"] + [f"precision(dtype={dtype}, quant={quant}, kv={kv_dtype})"])


def sparsify_2_4(graph: OpGraph, meta_bits: float = 2.0) -> OpGraph:
    """2:4 structured sparsity on the projection weights: half the MACs, half the values plus a
    2-bit index per kept value (NVIDIA sparse tensor core format)."""
    ops = []
    for op in graph.ops:
        if not _is_projection(op):
            ops.append(op)
            continue
        bits = op.attrs.get("weight_bits", 16)
        ratio = (0.5 * bits + 0.5 * meta_bits) / bits
        new = scale_op(op, {"weight": ratio})
        ops.append(replace(new, flops=op.flops // 2, attrs=dict(op.attrs, sparsity="2:4", dense_flops=op.flops)))
    # the compressed weights are what is stored (values + indices), so the memory check shrinks with them:
    # every decoder projection (not only the experts this step reads) is stored compressed
    meta = graph.meta
    linear = meta.get("linear_storage_bytes", meta["linear_params"] * 2)
    saved = linear * (1 - (0.5 * meta.get("weight_bits", 16) + 0.5 * meta_bits) / meta.get("weight_bits", 16))
    return graph.with_ops(ops, weight_storage_bytes=int(meta["weight_storage_bytes"] - saved),
                          linear_storage_bytes=linear - saved,
                          transforms=graph.meta["transforms"] + ["sparsity(2:4)"])


def _check_layers(graph: OpGraph, layers: Iterable[int]) -> set:
    n = sum(len(v) for v in graph.layer_groups.values())
    chosen = set()
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
            raise HwsimError(f"layer {layer!r} does not exist; the model has layers 0..{n - 1}")
        chosen.add(layer)
    return chosen


def _bridged(graph, keep: set):
    """The dependency graph on `keep`, with paths through removed nodes turned into direct edges."""
    import networkx as nx
    out = graph.subgraph(keep).copy()
    for node in graph.nodes:
        if node in keep:
            continue
        for pred in graph.predecessors(node):
            for succ in nx.descendants(graph, node):
                if pred in keep and succ in keep and not any(p in keep for p in graph.predecessors(succ) if p != node):
                    out.add_edge(pred, succ)
    return out


def _layer_storage(meta, layers) -> float:
    """Bytes of weights the given decoder layers hold (projections at the stored precision, the rest at the
    compute dtype), from the per-layer parameter counts of the trace; all experts of a MoE layer count."""
    if "layer_params" not in meta:
        return 0.0
    linear, params = meta["linear_params"], meta["params"]
    lin_b = meta.get("linear_storage_bytes", linear * 2) / linear if linear else 0.0
    other_b = (meta["weight_storage_bytes"] - meta.get("linear_storage_bytes", linear * 2)) / (params - linear)
    return sum(meta["layer_linear_params"][i] * lin_b + (meta["layer_params"][i] - meta["layer_linear_params"][i])
               * other_b for i in layers)


def drop_layers(graph: OpGraph, layers: Iterable[int]) -> OpGraph:
    """Remove whole decoder layers (layer-skipping / pruning studies)."""
    drop = _check_layers(graph, layers)
    groups = {g: tuple(i for i in idx if i not in drop) for g, idx in graph.layer_groups.items()}
    groups = {g: idx for g, idx in groups.items() if idx}
    ops = [op for op in graph.ops if op.group is None or op.group in groups]
    kept_layers = sum(len(v) for v in groups.values())
    total_layers = sum(len(v) for v in graph.layer_groups.values())
    dropped = _layer_storage(graph.meta, drop)
    new = graph.with_ops(ops, layer_groups=groups,
                         weight_storage_bytes=_whole(graph.meta["weight_storage_bytes"] - dropped),
                         kv_bytes_per_token=graph.meta["kv_bytes_per_token"] * kept_layers / total_layers,
                         kv_cache_storage_bytes=_whole(graph.meta["kv_cache_storage_bytes"] * kept_layers / total_layers),
                         transforms=graph.meta["transforms"] + [f"drop_layers({sorted(drop)})"])
    new.graph = _bridged(graph.graph, {op.index for op in ops})
    return new


def _attention_sublayer(op, meta) -> bool:
    if op.name.startswith("attn.") or op.name in ("residual_attn", "post_attn_norm"):
        return True
    return op.name == "input_norm" and not meta.get("parallel_residual")


def drop_attention(graph: OpGraph, layers: Iterable[int]) -> OpGraph:
    """Remove the attention sublayer of the given layers (attention-drop studies); their MLPs stay."""
    drop = _check_layers(graph, layers)
    groups, ops, nx_graph = dict(graph.layer_groups), list(graph.ops), graph.graph.copy()
    next_group, next_index = max(groups) + 1, max(op.index for op in ops) + 1
    for g, idx in graph.layer_groups.items():
        hit = tuple(i for i in idx if i in drop)
        if not hit:
            continue
        groups[g] = tuple(i for i in idx if i not in drop)
        groups[next_group] = hit
        remap = {}
        for op in graph.ops:
            if op.group == g and not _attention_sublayer(op, graph.meta):
                remap[op.index] = next_index
                ops.append(replace(op, index=next_index, group=next_group))
                next_index += 1
        sub = _bridged(graph.graph, {op.index for op in graph.ops if op.group != g} | set(remap))
        for a, b in sub.edges:
            if a in remap or b in remap:
                nx_graph.add_edge(remap.get(a, a), remap.get(b, b))
        next_group += 1
    groups = {g: v for g, v in groups.items() if v}
    ops = [op for op in ops if op.group is None or op.group in groups]
    nx_graph = nx_graph.subgraph({op.index for op in ops}).copy()
    for op in ops:
        nx_graph.add_node(op.index)
    total = sum(len(v) for v in graph.layer_groups.values())
    kept = (total - len(drop)) / total
    new = graph.with_ops(sorted(ops, key=lambda o: o.index), layer_groups=groups,
                         kv_bytes_per_token=graph.meta["kv_bytes_per_token"] * kept,
                         kv_cache_storage_bytes=_whole(graph.meta["kv_cache_storage_bytes"] * kept),
                         transforms=graph.meta["transforms"] + [f"drop_attention({sorted(drop)})"])
    new.graph = nx_graph
    return new


def shared_prefix(graph: OpGraph, prefix: int) -> OpGraph:
    """Hydragen-style shared prefix: the batch shares the first `prefix` cached tokens, so attention
    reads that KV once per step (not once per sequence) and stores it once."""
    meta = graph.meta
    if meta["phase"] == "prefill":
        raise HwsimError("a shared prefix applies to decode and chunked_prefill (the prefix must already be cached)")
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not 0 < prefix <= meta["context"]:
        raise HwsimError(f"shared prefix must be in 1..{meta['context']} (the cached context), got {prefix!r}")
    b = meta["batch"]
    end = meta["context"] + meta["new_tokens"]           # positions 0..end-1 exist after this step
    ops, held, held_shared = [], 0, 0
    for op in graph.ops:
        if op.kind != "attention" or not op.reads.get("kv_cache"):
            ops.append(op)
            continue
        sk = op.attrs["sk"]                               # the last sk positions are read (and held)
        shared = max(0, min(prefix, end) - (end - sk))    # the part of the prefix still inside them
        factor = (b * (sk - shared) + shared) / (b * sk)
        held += op.repeat * b * sk
        held_shared += op.repeat * (b * sk - (b - 1) * shared)
        new = scale_op(op, {}, {"kv_cache": factor})
        ops.append(replace(new, attrs=dict(op.attrs, shared_prefix=shared)))
    storage_factor = held_shared / held if held else 1.0
    return graph.with_ops(ops, shared_prefix=prefix,
                          kv_cache_storage_bytes=_whole(meta["kv_cache_storage_bytes"] * storage_factor),
                          transforms=meta["transforms"] + [f"shared_prefix({prefix})"])
