"""Pipeline parallelism: stages of consecutive decoder layers (each a tensor-parallel group) and micro-batches.

Stage s runs micro-batch m once it has finished m-1 and stage s-1 has sent m's activations over the link
between them; the engine finds the bubbles. Each micro-batch is the step re-built at batch / M from the spec
and recipe the traced graph carries, and sharded like the stages' tensor-parallel groups.
"""
from __future__ import annotations

from dataclasses import replace

from workloads.errors import HwsimError

from .registry import strategy
from .taskgraph import Lane, Node, Program, TaskGraph, chain, device_labels
from .tensor_parallel import link_between, main_group, shard


def stage_layers(layer_ids: list, stages: int) -> list:
    """Layer ids per stage, consecutive and as even as possible (earlier stages take the remainder)."""
    base, extra = divmod(len(layer_ids), stages)
    out, start = [], 0
    for s in range(stages):
        size = base + (1 if s < extra else 0)
        out.append(set(layer_ids[start:start + size]))
        start += size
    return out


@strategy("pp", "pipeline parallel over N stages of consecutive layers (micro-batches: mb:M, default N)",
          after=("single", "tp"))
def pipeline_parallel(tg: TaskGraph, system, n: int, mb: int = None) -> TaskGraph:
    graph, tp = tg.source, tg.tp
    layer_ids = sorted(i for ids in graph.layer_groups.values() for i in ids)
    if n > len(layer_ids):
        raise HwsimError(f"pp:{n} needs at least {n} layers; the model has {len(layer_ids)}")
    m = mb or n
    batch = graph.meta["batch"]
    if batch % m:
        raise HwsimError(f"batch {batch} does not split into {m} micro-batches; use a batch that {m} divides")
    group = main_group(system)
    if tp * n > system.devices[group].count:
        raise HwsimError(f"mapping needs {tp * n} devices but system {system.id} has "
                         f"{system.devices[group].count} '{group}' devices")
    micro = graph.rebuilt(batch=batch // m) if m > 1 else graph
    program, collectives = shard(micro, system, tp) if tp > 1 else (micro, [])
    send_link = link_between(system, group, tp * n, f"pp:{n}")
    hidden = max(((op.bytes.get("activation", 0) - op.reads.get("activation", 0))
                  for op in program.ops if op.name == "residual_mlp"), default=0.0)
    stages = stage_layers(layer_ids, n)
    lanes, nodes, last = {}, [], {}
    for s in range(n):
        lanes[f"stage{s}"] = Lane("device", group, device_labels(group, s * tp, tp), tp)
        for link in {c.link for c in collectives}:
            lanes[f"{link}@stage{s}"] = Lane("link", link=link)
        if s < n - 1:
            lanes[f"send{s}"] = Lane("link", link=send_link)
    for mi in range(m):
        for s in range(n):
            part = chain("main", program, f"stage{s}", collectives,
                         {c.link: f"{c.link}@stage{s}" for c in collectives}, tag=f"s{s}m{mi}.",
                         layers=stages[s], pre=s == 0, post=s == n - 1)
            if not part:
                continue
            deps = tuple(d for d in (last.get((s, mi - 1)), f"send{s - 1}:{mi}" if s else None) if d)
            part[0] = replace(part[0], deps=deps)
            nodes += part
            last[(s, mi)] = part[-1].id
            if s < n - 1:
                nodes.append(Node(f"send{s}:{mi}", "transfer", f"send{s}", deps=(part[-1].id,), nbytes=hidden,
                                  link=send_link, label="send activations"))
    share = max(len(st) for st in stages) / len(layer_ids)
    largest = max((op.bytes.get("activation", 0) for op in program.ops), default=0)
    held = (program.meta["weight_storage_bytes"] + program.meta["kv_cache_storage_bytes"] * m) * share + largest
    return tg.with_(nodes=tuple(nodes), lanes=lanes, programs={"main": Program(group, program)},
                    resident_bytes={group: held}, info=dict(tg.info, stages=n, microbatches=m))


@strategy("mb", "micro-batches per step for pipeline parallelism (e.g. tp:4,pp:2,mb:8)", option_of="pp")
def microbatches(tg, system, n):                       # an option of pp: applied by pipeline_parallel
    return tg
