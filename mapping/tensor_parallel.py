"""Single-device and tensor-parallel (Megatron-style) mappings.

Tensor parallelism splits each projection across the group: column-parallel layers (q/k/v, gate/up, the
LM head) split their output features, row-parallel layers (o_proj, down_proj) their input features and end in
an all-reduce of the full activation. Attention heads, RoPE and the KV cache split with the heads; norms,
residual adds and embeddings are replicated.
"""
from __future__ import annotations

from dataclasses import replace

from workloads.errors import HwsimError
from workloads.transforms import scale_op

from .registry import Collective, MappedGraph, strategy

ROW_PARALLEL = ("o_proj", "down_proj")
REPLICATED = ("router_proj", "router", "shared_gate_proj", "shared_gate")


def _group(system):
    group = next(iter(system.devices))
    return group, system.devices[group].count


@strategy("single", "the whole step on one device of the system")
def single(graph, system, degree: int) -> MappedGraph:
    if isinstance(graph, MappedGraph):
        return graph
    if degree != 1:
        raise HwsimError("mapping 'single' takes no degree")
    group, _ = _group(system)
    return MappedGraph(graph=graph, group=group, devices=1, strategy="single")


def _role(op) -> str:
    leaf = op.name.split(".")[-1]
    if op.kind == "matmul" and (op.group is not None or op.name == "lm_head") and leaf not in REPLICATED:
        return "row" if leaf in ROW_PARALLEL else "column"
    if op.group is not None and (op.name.startswith("attn.") or op.name.startswith("mlp.")) and leaf not in REPLICATED:
        return "sharded"
    return "replicated"


@strategy("tp", "tensor parallel over N devices (split heads and projections; all-reduce after o_proj and down_proj)")
def tensor_parallel(graph, system, n: int) -> MappedGraph:
    if isinstance(graph, MappedGraph):
        graph = graph.graph
    group, available = _group(system)
    if n > available:
        raise HwsimError(f"tp:{n} needs {n} devices but system {system.id} has {available} '{group}' devices")
    from workloads.capture import load_spec
    spec = load_spec(graph.meta["model"]) if isinstance(graph.meta.get("model"), str) else None
    if spec is not None:
        for what, value in (("attention heads", spec.heads), ("intermediate size", spec.intermediate)):
            if value % n:
                raise HwsimError(f"tp:{n} does not divide the {value} {what} of {spec.name}; use a divisor of {value}")
        kv_share = max(1.0 / n, 1.0 / spec.kv_heads)       # KV heads are replicated when fewer than devices
    else:
        kv_share = 1.0 / n
    link = system.link_within(group, n)
    link_name = next((k for k, v in system.links.items() if v is link), None)
    if n > 1 and link is None:
        raise HwsimError(f"system {system.id} has no link between its '{group}' devices; tp:{n} needs one")
    ops, collectives = [], []
    for op in graph.ops:
        role = _role(op)
        if role == "column":
            new = scale_op(op, {"weight": 1 / n, "activation": 1 / n, "kv_cache": kv_share}, {"activation": 1.0})
            attrs = dict(op.attrs, n=max(1, round(op.attrs.get("n", n) / n))) if "n" in op.attrs else op.attrs
            ops.append(replace(new, flops=op.flops / n, attrs=attrs))
        elif role == "row":
            new = scale_op(op, {"weight": 1 / n, "activation": 1.0}, {"activation": 1 / n})
            attrs = dict(op.attrs, k=max(1, round(op.attrs.get("k", n) / n))) if "k" in op.attrs else op.attrs
            ops.append(replace(new, flops=op.flops / n, attrs=attrs))
            if n > 1:
                out = op.bytes.get("activation", 0) - op.reads.get("activation", 0)
                collectives.append(Collective(op.index, "all_reduce_ring", out, n, link_name))
        elif role == "sharded":
            scaled = scale_op(op, {"weight": 1 / n, "activation": 1 / n, "kv_cache": kv_share})
            attrs = dict(op.attrs)
            if op.kind == "attention":
                attrs.update(hq=op.attrs["hq"] // n, hkv=max(1, op.attrs["hkv"] // n))
            ops.append(replace(scaled, flops=op.flops / n, attrs=attrs))
        else:
            ops.append(op)
    if n > 1 and graph.ops and graph.ops[-1].name.startswith("lm_head"):
        lm = graph.ops[-1]
        logits = lm.bytes.get("activation", 0) - lm.reads.get("activation", 0)
        collectives.append(Collective(lm.index, "all_gather", logits, n, link_name))
    meta = graph.meta
    linear = meta["linear_params"]
    bytes_per_param = meta["weight_storage_bytes"] / meta["params"] if meta["params"] else 2.0
    sharded = graph.with_ops(
        ops, weight_storage_bytes=(linear / n + meta["params"] - linear) * bytes_per_param,
        kv_cache_storage_bytes=meta["kv_cache_storage_bytes"] * kv_share,
        transforms=meta["transforms"] + [f"tensor_parallel({n})"])
    return MappedGraph(graph=sharded, group=group, devices=n, strategy=f"tp:{n}", collectives=collectives)


@strategy("pp", "pipeline parallel over N stages of consecutive layers (micro-batches: mb:M, default N)")
def pipeline_parallel(mapped: MappedGraph, system, n: int) -> MappedGraph:
    layers = sum(len(v) for v in mapped.graph.layer_groups.values())
    if n > layers:
        raise HwsimError(f"pp:{n} needs at least {n} layers; the model has {layers}")
    mapped.stages = n
    mapped.microbatches = max(mapped.microbatches, n)
    mapped.strategy += f",pp:{n}"
    return mapped


@strategy("mb", "micro-batches per step for pipeline parallelism (e.g. tp:4,pp:2,mb:8)")
def microbatches(mapped: MappedGraph, system, n: int) -> MappedGraph:
    if mapped.stages == 1:
        raise HwsimError("mb:M only applies with pp:N")
    mapped.microbatches = n
    mapped.strategy += f",mb:{n}"
    return mapped


@strategy("dp", "data parallel: N replicas of the whole mapping, each with its own batch")
def data_parallel(mapped: MappedGraph, system, n: int) -> MappedGraph:
    mapped.replicas = n
    mapped.strategy += f",dp:{n}"
    return mapped
