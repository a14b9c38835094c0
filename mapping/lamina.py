"""Lamina's model-attention disaggregation as a task graph (arXiv 2405.01814 v2, sections 3 to 5).

Compute GPUs hold only the weights and run every non-attention operator (tensor parallel inside a model
replica); memory devices hold the KV cache, split by attention head (section 5, "Attention parallelism"),
and jointly run each batch's attention. Per layer the GPUs send q, k and v over the network and get the
attention output back: (2 + 2/G) * e * d * B bytes a layer (section 3.1). The GPUs send q as soon as
q_proj is done and k/v after, so attention over the cached tokens starts before k/v arrive (section
4.2.2). Rotational staggered pipelining (section 4.3): n batches run at once on n - 1 model replicas
(one replica when n = 2); the k-th model slice of batch j runs on replica (j + k) mod (n - 1), so one
batch's attention and transfers overlap another's GEMMs. Which resource bounds the step is found by the
scheduler (`sim.hetero`), not assumed.
"""
from __future__ import annotations

from dataclasses import dataclass

from hw_models.collectives import link_collective_time
from hw_models.stacks import stack
from sim.engine import op_table
from sim.hetero import Task, run_tasks

from .tensor_parallel import tensor_parallel

ATTENTION = ("attn.core", "attn.kv_append")
KV_PROJ = ("attn.k_proj", "attn.v_proj")


@dataclass(frozen=True)
class Network:
    """The DCN between the pools: every device has its own NIC (Lamina's testbed)."""
    bandwidth: float            # bytes/s per NIC per direction
    latency: float              # s, one way, per message

    def send_s(self, nbytes: float, senders: int, receivers: int) -> float:
        """One transfer spread evenly over the sending and receiving NICs (heads split both sides)."""
        return self.latency + nbytes / min(senders, receivers) / self.bandwidth


@dataclass(frozen=True)
class BatchCosts:
    """One batch's per-layer times (s) and transfer sizes (bytes) on a Lamina setup."""
    batch: int
    head_s: float               # GPU: embedding etc. before the first layer
    q_part_s: float             # GPU: input norm, q_proj, RoPE (then q can leave)
    kv_part_s: float            # GPU: k_proj, v_proj
    post_s: float               # GPU: o_proj, FFN, norms, residuals and their TP all-reduces
    tail_s: float               # GPU: final norm, LM head and its all-gather
    attention_s: float          # memory devices: attention over the cached tokens
    append_s: float             # memory devices: append the new k/v, merge the new token's part
    q_bytes: float
    kv_bytes: float
    out_bytes: float
    layers: int
    gpu_clock_mhz: float        # the GPUs' SM clock at this load (the power cap may pull it down)


def _written(op) -> float:
    return op.bytes.get("activation", 0) - op.reads.get("activation", 0)


def _shard(graph, system, n):
    return tensor_parallel(graph, system, n) if n > 1 else None


def batch_costs(graph, gpu_system, mem_system, tp: int, n_mem: int, profile: str = "fused") -> BatchCosts:
    """Times of one batch (`graph`, a decode step traced at that batch) on tp GPUs and n_mem memory devices."""
    gpu_group, mem_group = next(iter(gpu_system.devices)), next(iter(mem_system.devices))
    gpu_dev, mem_dev = gpu_system.device(gpu_group), mem_system.device(mem_group)
    mapped = _shard(graph, gpu_system, tp)
    on_gpu = mapped.graph if mapped else graph
    collectives = {c.after: c for c in mapped.collectives} if mapped else {}
    link = gpu_system.link_within(gpu_group, tp)
    # the GPUs never run attention: leave it out of their operating point (power, clock)
    gpu_ops = on_gpu.with_ops([op for op in on_gpu.ops if op.name not in ATTENTION])
    # q and k/v stay separate GEMMs: q is sent to the memory devices before k/v are computed (paper section 4.2.2)
    gpu_table = op_table(gpu_ops, gpu_dev, profile, merge_projections=False)
    t_gpu = gpu_table.time
    mem_mapped = _shard(graph, mem_system, n_mem)
    on_mem = mem_mapped.graph if mem_mapped else graph
    t_mem = op_table(on_mem.with_ops([op for op in on_mem.ops if op.name in ATTENTION]), mem_dev, profile,
                     merge_projections=False).time
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
        gpu_clock_mhz=gpu_table.prediction.clock_mhz)


def staggered_step(costs: list, net: Network, tp: int, n_mem: int, iterations: int = 3) -> dict:
    """Steady-state decode step of len(costs) concurrent batches under rotational staggered pipelining.

    Runs `iterations` decode steps back to back (a batch starts its next token as soon as its last slice is
    done) and reports the period between the ends of the first and the last, so the pipeline's fill and
    drain are not counted. Resources: each replica's GPUs, the memory devices (jointly, one batch at a
    time), the uplink and the downlink (full duplex)."""
    n = len(costs)
    replicas = max(1, n - 1)
    layers = costs[0].layers
    tasks, sent = [], {"up": 0.0, "down": 0.0}
    ends = []
    for it in range(iterations):
        for j, c in enumerate(costs):
            prev = f"tail{it - 1}:{j}" if it else None
            for layer in range(layers):
                k = f"{it}:{j}:{layer}"
                gpu = f"gpu{(j + layer) % replicas}"
                start = c.head_s if layer == 0 else c.post_s
                dep = [prev] if prev else []
                tasks += [Task(f"gq{k}", gpu, start + c.q_part_s, dep),
                          # same program as gq: released by the same event, it queues right behind it
                          Task(f"gkv{k}", gpu, c.kv_part_s, list(dep)),
                          Task(f"sq{k}", "up", net.send_s(c.q_bytes, tp, n_mem), [f"gq{k}"]),
                          Task(f"skv{k}", "up", net.send_s(c.kv_bytes, tp, n_mem), [f"gkv{k}"]),
                          Task(f"att{k}", "mem", c.attention_s, [f"sq{k}"]),
                          Task(f"new{k}", "mem", c.append_s, [f"att{k}", f"skv{k}"]),
                          Task(f"so{k}", "down", net.send_s(c.out_bytes, n_mem, tp), [f"new{k}"])]
                sent["up"] += c.q_bytes + c.kv_bytes
                sent["down"] += c.out_bytes
                prev = f"so{k}"
            tasks.append(Task(f"tail{it}:{j}", f"gpu{(j + layers) % replicas}", c.post_s + c.tail_s, [prev]))
            ends.append((it, f"tail{it}:{j}"))
    run = run_tasks(tasks)
    last = lambda it: max(run["spans"][name][1] for i, name in ends if i == it)
    period = (last(iterations - 1) - last(0)) / (iterations - 1) if iterations > 1 else run["makespan"]
    busy = {r: t / iterations for r, t in run["busy"].items()}
    # a few iterations may not reach steady state: work of a later step can start before the first step ends.
    # In steady state no resource can do more than one step's worth of work per step.
    period = max(period, max(busy.values()))
    gpu_busy = max(t for r, t in busy.items() if r.startswith("gpu"))
    return {"step_s": period, "tokens": sum(c.batch for c in costs), "busy": busy, "gpu_busy_s": gpu_busy,
            "bytes": {k: v / iterations for k, v in sent.items()}, "tasks_s": sum(t.duration for t in tasks) / iterations}
