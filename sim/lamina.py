"""Lamina's attention disaggregation run on the engine: per-batch costs from the hardware models and the
steady-state step of the staggered pipeline (the task graph is built in mapping/lamina.py)."""
from __future__ import annotations

from hw_models.collectives import link_collective_time
from hw_models.stacks import stack
from mapping.lamina import ATTENTION, KV_PROJ, BatchCosts, Network, staggered_tasks
from mapping.tensor_parallel import shard

from .predict import predict
from mapping.taskgraph import task_graph

from .engine import schedule


def _shard(graph, system, n):
    return shard(graph, system, n) if n > 1 else (graph, [])


def _times(graph, device, profile):
    pred = predict(graph, device, profile, merge_projections=False)
    return {r["index"]: r["time_s"] for r in pred.ops}, pred


def _written(op) -> float:
    return op.bytes.get("activation", 0) - op.reads.get("activation", 0)


def batch_costs(graph, gpu_system, mem_system, tp: int, n_mem: int, profile: str = "fused") -> BatchCosts:
    """Times of one batch (`graph`, a decode step traced at that batch) on tp GPUs and n_mem memory devices."""
    gpu_group, mem_group = next(iter(gpu_system.devices)), next(iter(mem_system.devices))
    gpu_dev, mem_dev = gpu_system.device(gpu_group), mem_system.device(mem_group)
    on_gpu, cols = _shard(graph, gpu_system, tp)
    collectives = {c.after: c for c in cols}
    link = gpu_system.link_within(gpu_group, tp)
    # the GPUs never run attention: leave it out of their operating point (power, clock)
    gpu_ops = on_gpu.with_ops([op for op in on_gpu.ops if op.name not in ATTENTION])
    # q and k/v stay separate GEMMs: q is sent to the memory devices before k/v are computed (paper section 4.2.2)
    t_gpu, gpu_pred = _times(gpu_ops, gpu_dev, profile)
    on_mem, _ = _shard(graph, mem_system, n_mem)
    t_mem, _ = _times(on_mem.with_ops([op for op in on_mem.ops if op.name in ATTENTION]), mem_dev, profile)
    custom = stack(profile).custom_all_reduce

    def gpu_time(ops):
        total = 0.0
        for op in ops:
            total += t_gpu[op.index]
            col = collectives.get(op.index)
            if col is not None:
                total += link_collective_time(col.kind, col.bytes, tp, link, custom)
        return total

    group = next(iter(graph.layer_groups))
    layer_ops = [op for op in on_gpu.ops if op.group == group]
    first_attn = min(op.index for op in layer_ops if op.name in ATTENTION)
    before = [op for op in layer_ops if op.index < first_attn]
    after = [op for op in layer_ops if op.index > first_attn and op.name not in ATTENTION]
    head = [op for op in on_gpu.ops if op.group is None and op.index < first_attn]
    tail = [op for op in on_gpu.ops if op.group is None and op.index > first_attn]
    mem_ops = {op.name: op for op in on_mem.ops if op.group == group}
    full = {op.name: op for op in graph.ops if op.group == group}
    return BatchCosts(
        batch=graph.meta.get("batch", 0),
        head_s=gpu_time(head), q_part_s=gpu_time([op for op in before if op.name not in KV_PROJ]),
        kv_part_s=gpu_time([op for op in before if op.name in KV_PROJ]), post_s=gpu_time(after),
        tail_s=gpu_time(tail), attention_s=t_mem[mem_ops["attn.core"].index],
        append_s=t_mem[mem_ops["attn.kv_append"].index],
        q_bytes=_written(full["attn.q_proj"]), kv_bytes=sum(_written(full[n]) for n in KV_PROJ),
        out_bytes=_written(full["attn.core"]), layers=len(graph.layer_groups[group]),
        gpu_clock_mhz=gpu_pred.clock_mhz)


def staggered_step(costs: list, net: Network, tp: int, n_mem: int, iterations: int = 3) -> dict:
    """Steady-state decode step of len(costs) concurrent batches under rotational staggered pipelining:
    `iterations` steps are run and the period between the ends of the first and the last reported, so the
    pipeline's fill and drain are not counted."""
    tasks, sent, ends = staggered_tasks(costs, net, tp, n_mem, iterations)
    run = schedule(task_graph(tasks, "lamina-staggered"))
    last = lambda it: max(run["spans"][name][1] for i, name in ends if i == it)
    period = (last(iterations - 1) - last(0)) / (iterations - 1) if iterations > 1 else run["makespan"]
    busy = {r: t / iterations for r, t in run["busy"].items()}
    # a few iterations may not reach steady state: work of a later step can start before the first step ends.
    # In steady state no resource can do more than one step's worth of work per step.
    period = max(period, max(busy.values()))
    gpu_busy = max(t for r, t in busy.items() if r.startswith("gpu"))
    return {"step_s": period, "tokens": sum(c.batch for c in costs), "busy": busy, "gpu_busy_s": gpu_busy,
            "bytes": {k: v / iterations for k, v in sent.items()}, "tasks_s": sum(t.duration for t in tasks) / iterations}
