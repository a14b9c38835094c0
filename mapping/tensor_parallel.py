"""Single-device, tensor-parallel (Megatron-style) and data-parallel mappings.

Tensor parallelism splits each projection across the group: column-parallel layers (q/k/v, gate/up, the
LM head) split their output features, row-parallel layers (o_proj, down_proj) their input features and end in
an all-reduce of the full activation. Attention heads, RoPE and the KV cache split with the heads; the token
embedding's table is stored split by vocabulary (its lookup is replicated work); norms and residual adds are
replicated. Data parallelism runs N copies of the whole placement.
"""
from __future__ import annotations

from dataclasses import replace

from workloads.errors import HwsimError
from workloads.transforms import scale_op

from .registry import strategy
from .taskgraph import Collective, Lane, Program, TaskGraph, chain, device_labels

# leaf names of row-parallel projections: hwsim's modules, and Hugging Face's spellings (GPT-2 Conv1D c_proj,
# Falcon/NeoX/BLOOM dense and dense_4h_to_h, OPT/Phi out_proj/fc2) for --impl hf graphs
ROW_PARALLEL = ("o_proj", "down_proj", "c_proj", "dense", "dense_4h_to_h", "out_proj", "fc2")
REPLICATED = ("router_proj", "router", "shared_gate_proj", "shared_gate", "gate", "shared_expert_gate")
SHARDED_SCOPES = ("attn.", "mlp.", "self_attn.", "attention.", "self_attention.")


def main_group(system) -> str:
    return next(iter(system.devices))


def link_between(system, group: str, span: int, what: str):
    """The name of the link a collective over `span` devices of `group` runs on (one line if there is none)."""
    link = system.link_within(group, span)
    if link is None:
        raise HwsimError(f"system {system.id} has no link between its '{group}' devices; {what} needs one")
    return next(k for k, v in system.links.items() if v is link)


def spmd(graph, system, group: str, n: int, collectives=(), strategy_name: str = "single", tp: int = 1,
         applied=(), info=None, source=None) -> TaskGraph:
    """n devices of `group` running the same program in lockstep: one device lane, one link lane per link."""
    links = {c.link for c in collectives}
    lanes = {"dev": Lane("device", group, device_labels(group, 0, n), n)}
    lanes.update({link: Lane("link", link=link) for link in sorted(links)})
    nodes = chain("main", graph, "dev", collectives)
    return TaskGraph(tuple(nodes), lanes, {"main": Program(group, graph)}, source or graph, strategy_name, tuple(applied),
                     {group: graph.memory_needed()}, tp, dict(info or {}))


@strategy("single", "the whole step on one device of the system", after=())
def single(graph, system, degree: int) -> TaskGraph:
    if degree != 1:
        raise HwsimError("mapping 'single' takes no degree")
    return spmd(graph, system, main_group(system), 1)


def _role(op) -> str:
    leaf = op.name.split(".")[-1]
    if op.kind == "matmul" and op.group is not None and op.attrs.get("weight_operand") is False:
        return "sharded"             # activation x activation (eager attention's scores): split with the heads
    if op.kind == "matmul" and (op.group is not None or op.name == "lm_head") and leaf not in REPLICATED:
        return "row" if leaf in ROW_PARALLEL else "column"
    if op.group is not None and op.name.startswith(SHARDED_SCOPES) and leaf not in REPLICATED:
        return "sharded"
    return "replicated"


def _check_hf(graph, n: int):
    """Hugging Face graphs split like hwsim's when their projections are where tp expects them."""
    if graph.meta.get("moe"):
        raise HwsimError(f"tp:{n} with --impl hf is modelled for dense models only (HF's batched MoE experts have "
                         f"no split here); use --impl hwsim for tensor-parallel MoE")
    loose = [op.name for op in graph.ops if op.kind == "matmul" and op.group is None and op.name != "lm_head"
             and op.attrs.get("weight_operand")]
    if loose:
        raise HwsimError(f"tp:{n} with --impl hf: projection {loose[0]} is outside the repeated decoder layers, so "
                         f"its split is unknown; use --impl hwsim")


def sharded_weight_bytes(meta, spec, n: int) -> float:
    """Weights one device of tp:n holds: the decoder's projections split n ways, and so are the token embedding
    and the LM head (vocabulary-parallel, as vLLM's VocabParallelEmbedding / ParallelLMHead, SGLang and Megatron
    store them; TensorRT-LLM splits its LM head and, with use_parallel_embedding, its embedding); norms, biases
    outside the projections and routers stay whole on every device."""
    linear, params, stored = meta["linear_params"], meta["params"], meta["weight_storage_bytes"]
    if not params:
        return stored / n
    linear_b = meta.get("linear_storage_bytes", linear * stored / params)
    other_b = max(0.0, stored - linear_b)
    rest = params - linear
    vocab = 0 if spec is None else spec.vocab * spec.hidden * (1 if spec.tie_embeddings else 2)
    vocab_b = other_b * min(1.0, vocab / rest) if rest > 0 else 0.0
    return linear_b / n + vocab_b / n + (other_b - vocab_b)


def shard(graph, system, n: int) -> tuple:
    """(one device's shard of the step, its collectives) under tp:n."""
    group = main_group(system)
    available = system.devices[group].count
    if n > available:
        raise HwsimError(f"tp:{n} needs {n} devices but system {system.id} has {available} '{group}' devices")
    spec = graph.spec
    if graph.meta.get("traced_from") == "hf":
        _check_hf(graph, n)
    if graph.meta.get("traced_from") == "torch-module":
        raise HwsimError(f"tp:{n} splits a decoder's attention heads and projections; a traced torch module "
                         f"({graph.meta['model']}) has no known split, so use single or dp:N")
    if spec is not None:
        for what, value in (("attention heads", spec.heads), ("intermediate size", spec.intermediate)):
            if value % n:
                raise HwsimError(f"tp:{n} does not divide the {value} {what} of {spec.name}; use a divisor of {value}")
        kv_share = max(1.0 / n, 1.0 / spec.kv_heads)       # KV heads are replicated when fewer than devices
    else:
        kv_share = 1.0 / n
    link_name = link_between(system, group, n, f"tp:{n}") if n > 1 else None
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
            elif op.kind == "matmul" and "batch" in attrs:
                attrs.update(batch=max(1, round(attrs["batch"] / n)))
            ops.append(replace(scaled, flops=op.flops / n, attrs=attrs))
        else:
            ops.append(op)
    if n > 1 and graph.ops and graph.ops[-1].name.startswith("lm_head"):
        lm = graph.ops[-1]
        logits = lm.bytes.get("activation", 0) - lm.reads.get("activation", 0)
        collectives.append(Collective(lm.index, "all_gather", logits, n, link_name))
    meta = graph.meta
    sharded = graph.with_ops(
        ops, weight_storage_bytes=sharded_weight_bytes(graph.meta, spec, n),
        kv_cache_storage_bytes=meta["kv_cache_storage_bytes"] * kv_share,
        transforms=meta["transforms"] + [f"tensor_parallel({n})"])
    return sharded, collectives


@strategy("tp", "tensor parallel over N devices (split heads and projections; all-reduce after o_proj and down_proj)")
def tensor_parallel(tg: TaskGraph, system, n: int) -> TaskGraph:
    graph, collectives = shard(tg.source, system, n)
    return spmd(graph, system, main_group(system), n, collectives, tp=n, applied=tg.applied, source=tg.source)


@strategy("dp", "data parallel: N replicas of the whole mapping, each with its own batch",
          after=("single", "tp", "cp", "ep", "pp", "df11", "offload", "offload-overlap"))
def data_parallel(tg: TaskGraph, system, n: int) -> TaskGraph:
    lanes = {name: replace(l, count=l.count * n) for name, l in tg.lanes.items()}
    return tg.with_(lanes=lanes, info=dict(tg.info, replicas=tg.info.get("replicas", 1) * n))
