"""Expert parallelism for MoE models: the experts are spread over N devices and the attention runs data
parallel (each device takes batch / N sequences), as large MoE deployments do (DeepSeek-V3, Mixtral with
EP). Each MoE layer sends every routed token to its experts' devices and back: an all-to-all before and
after the experts. Routing is taken as even (each expert gets tokens x top_k / experts).
"""
from __future__ import annotations

from workloads.errors import HwsimError

from .registry import Collective, MappedGraph, strategy


@strategy("ep", "expert parallel over N devices for MoE models (data-parallel attention, all-to-all dispatch/combine)")
def expert_parallel(mapped: MappedGraph, system, n: int) -> MappedGraph:
    graph = mapped.graph
    if not graph.meta.get("moe"):
        raise HwsimError(f"ep:{n} needs a mixture-of-experts model; {graph.meta['model']} has no experts")
    if mapped.devices > 1:
        raise HwsimError("ep:N cannot be combined with tp:N yet")
    from workloads.capture import load_spec
    spec = load_spec(graph.meta["model"])
    experts, top_k = spec.moe.num_experts, spec.moe.top_k
    if experts % n:
        raise HwsimError(f"ep:{n} does not divide the {experts} experts of {spec.name}; use a divisor of {experts}")
    batch = graph.meta["batch"]
    if batch % n:
        raise HwsimError(f"ep:{n} gives each device batch / {n} sequences; batch {batch} does not split evenly")
    mapped.ep = n
    mapped.expert_shard = (experts, top_k)
    mapped.strategy = (mapped.strategy + f",ep:{n}") if mapped.strategy != "single" else f"ep:{n}"
    return mapped


def shard(mapped: MappedGraph, system, rebuild) -> MappedGraph:
    """The per-device graph: batch / N sequences, and the tokens of all devices routed to its experts."""
    n = mapped.ep
    experts, top_k = mapped.expert_shard
    meta = mapped.graph.meta
    tokens = meta["batch"] * meta["new_tokens"]                     # whole step, all devices
    per_expert, rest = divmod(tokens * top_k, experts)
    if rest:
        raise HwsimError(f"ep:{n}: {tokens} tokens x top-{top_k} do not spread evenly over {experts} experts; "
                         f"pick a batch that makes tokens x {top_k} a multiple of {experts}")
    local = experts // n
    counts = [per_expert] * local + [0] * (experts - local)
    if rebuild is None:
        raise HwsimError("expert parallelism needs the workload to be re-traced; use the CLI or pass rebuild=")
    graph = rebuild(meta["batch"] // n, counts)
    from workloads.capture import load_spec
    spec = load_spec(meta["model"])
    moe_layers = sum(1 for kind in spec.layer_kinds if kind.moe)
    expert_params = 3 * spec.hidden * spec.moe.expert_intermediate * experts * moe_layers
    per_param = graph.meta["weight_storage_bytes"] / graph.meta["params"]
    graph = graph.with_ops(graph.ops, weight_storage_bytes=(graph.meta["params"] - expert_params * (1 - 1 / n)) * per_param,
                           transforms=graph.meta["transforms"] + [f"expert_parallel({n})"])
    group = next(iter(system.devices))
    link = system.link_within(group, n)
    link_name = next((k for k, v in system.links.items() if v is link), None)
    if link is None:
        raise HwsimError(f"system {system.id} has no link between its '{group}' devices; ep:{n} needs one")
    hidden_bytes = None
    collectives = []
    routed = (tokens // n) * top_k                                   # tokens leaving one device per MoE layer
    for op in graph.ops:
        if op.name == "mlp.router_proj" and op.group is not None:
            hidden_bytes = op.reads.get("activation", 0) / max(tokens // n, 1)
            collectives.append(Collective(op.index, "all_to_all", routed * hidden_bytes, n, link_name))
    combine_after = {}
    for op in graph.ops:
        if op.group is not None and op.name.startswith("mlp.combines."):
            combine_after[op.group] = op.index
    for g, index in combine_after.items():
        collectives.append(Collective(index, "all_to_all", routed * (hidden_bytes or 0), n, link_name))
    return MappedGraph(graph=graph, group=group, devices=n, strategy=mapped.strategy, collectives=collectives)
