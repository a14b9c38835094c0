"""Expert parallelism for MoE models: the experts are spread over N devices and the attention runs data
parallel (each device takes batch / N sequences), as large MoE deployments do (DeepSeek-V3, Mixtral with
EP). Each MoE layer sends every routed token to its experts' devices and back: an all-to-all before and
after the experts. Routing is taken as even (each expert gets tokens x top_k / experts).
"""
from __future__ import annotations

from workloads.errors import HwsimError

from .registry import strategy
from .taskgraph import Collective, TaskGraph
from .tensor_parallel import link_between, main_group, spmd


@strategy("ep", "expert parallel over N devices for MoE models (data-parallel attention, all-to-all dispatch/combine); "
                "--batch is the group's whole batch, batch / N per device (dp:N replicas each take --batch)")
def expert_parallel(tg: TaskGraph, system, n: int) -> TaskGraph:
    graph = tg.source
    spec = graph.spec
    if spec is None or spec.moe is None:
        raise HwsimError(f"ep:{n} needs a mixture-of-experts model; {graph.meta['model']} has no experts")
    if graph.meta.get("impl") == "hf":
        # the shard is re-traced with each device's experts' tokens, which HF's batched experts take no count of
        raise HwsimError(f"ep:{n} with --impl hf is not modelled (HF's batched MoE experts have no per-device "
                         f"split here); use --impl hwsim for expert-parallel MoE")
    experts, top_k = spec.moe.num_experts, spec.moe.top_k
    if experts % n:
        raise HwsimError(f"ep:{n} does not divide the {experts} experts of {spec.name}; use a divisor of {experts}")
    meta = graph.meta
    batch = meta["batch"]
    if batch % n:
        raise HwsimError(f"ep:{n} gives each device batch / {n} sequences; batch {batch} does not split evenly")
    group = main_group(system)
    if n > system.devices[group].count:
        raise HwsimError(f"ep:{n} needs {n} devices but system {system.id} has {system.devices[group].count} "
                         f"'{group}' devices")
    tokens = batch * meta["new_tokens"]                               # whole step, all devices
    per_expert, rest = divmod(tokens * top_k, experts)
    if rest:
        raise HwsimError(f"ep:{n}: {tokens} tokens x top-{top_k} do not spread evenly over {experts} experts; "
                         f"pick a batch that makes tokens x {top_k} a multiple of {experts}")
    local = experts // n
    shard = graph.rebuilt(batch=batch // n, expert_tokens=[per_expert] * local + [0] * (experts - local))
    moe_layers = sum(1 for kind in spec.layer_kinds if kind.moe)
    expert_params = 3 * spec.hidden * spec.moe.expert_intermediate * experts * moe_layers
    per_param = shard.meta["weight_storage_bytes"] / shard.meta["params"]
    shard = shard.with_ops(shard.ops, weight_storage_bytes=(shard.meta["params"] - expert_params * (1 - 1 / n)) * per_param,
                           transforms=shard.meta["transforms"] + [f"expert_parallel({n})"])
    link = link_between(system, group, n, f"ep:{n}")
    routed = (tokens // n) * top_k                                   # tokens leaving one device per MoE layer
    hidden_bytes, collectives, combine_after = None, [], {}
    for op in shard.ops:
        if op.name == "mlp.router_proj" and op.group is not None:
            hidden_bytes = op.reads.get("activation", 0) / max(tokens // n, 1)
            collectives.append(Collective(op.index, "all_to_all", routed * hidden_bytes, n, link))
        if op.group is not None and op.name.startswith("mlp.combines."):
            combine_after[op.group] = op.index
    for index in combine_after.values():
        collectives.append(Collective(index, "all_to_all", routed * (hidden_bytes or 0), n, link))
    return spmd(shard, system, group, n, collectives, applied=tg.applied, info=dict(tg.info, ep=n),
                source=tg.source)
