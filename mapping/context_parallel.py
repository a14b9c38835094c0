"""Context parallelism for long prefills (ring attention, as Megatron-LM's context parallelism and
Liu et al., "Ring Attention with Blockwise Transformers", arXiv 2310.01889, run it).

The prompt is split into N chunks of seq_len / N tokens, one per device; every device holds all weights and
runs every projection, norm and MLP on its own tokens. Attention needs every earlier key: each layer's keys
and values go round the ring (N - 1 steps, each passing one chunk: NCCL's ring all-gather moves the same
bytes), and with the causal mask balanced across devices (each takes a chunk from both ends of the
sequence, the "zigzag" layout) every device does 1/N of the attention work. Modelled conservatively: a
layer's attention starts once its keys and values have gone round (no overlap of the ring with the
attention kernel). The LM head runs on the last token only, where that token lives.
"""
from __future__ import annotations

from dataclasses import replace

from workloads.errors import HwsimError
from workloads.transforms import scale_op

from .registry import strategy
from .taskgraph import Collective, TaskGraph
from .tensor_parallel import link_between, main_group, spmd


@strategy("cp", "context parallel over N devices for long prefills: tokens split, keys/values passed round a ring "
                "(ring attention), weights on every device")
def context_parallel(tg: TaskGraph, system, n: int) -> TaskGraph:
    graph = tg.source
    meta = graph.meta
    if meta["phase"] != "prefill":
        raise HwsimError(f"cp:{n} splits a prompt's tokens; use it with --phase prefill")
    if meta["seq_len"] % n:
        raise HwsimError(f"cp:{n} needs a prompt length that {n} divides; {meta['seq_len']} does not split evenly")
    group = main_group(system)
    if n > system.devices[group].count:
        raise HwsimError(f"cp:{n} needs {n} devices but system {system.id} has {system.devices[group].count} "
                         f"'{group}' devices")
    link = link_between(system, group, n, f"cp:{n}") if n > 1 else None
    ops, collectives = [], []
    for op in graph.ops:
        if op.name.startswith("lm_head"):
            ops.append(op)                          # the last token's logits, on the device holding it
            continue
        shard = scale_op(op, {"activation": 1 / n, "kv_cache": 1 / n})
        attrs = dict(op.attrs)
        if op.kind == "matmul" and "m" in attrs:
            attrs["m"] = max(1, round(attrs["m"] / n))
        if op.kind == "attention":
            attrs["sq"] = max(1, round(attrs["sq"] / n))
        ops.append(replace(shard, flops=op.flops / n, attrs=attrs))
        if op.name == "attn.kv_append" and n > 1:
            collectives.append(Collective(op.index, "all_gather", op.writes.get("kv_cache", 0), n, link))
    sharded = graph.with_ops(ops, kv_cache_storage_bytes=meta["kv_cache_storage_bytes"] / n,
                             transforms=meta["transforms"] + [f"context_parallel({n})"])
    return spmd(sharded, system, group, n, collectives, applied=tg.applied, info=dict(tg.info, cp=n),
                source=graph)
