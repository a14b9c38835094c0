"""Lamina-style model-attention disaggregation (arXiv 2405.01814 v2): the projections and FFN run on
compute GPUs (tensor parallel), attention and the KV cache live on memory-rich devices (split by KV head),
and each layer sends q/k/v to the memory devices and the attention output back over the network. Two
micro-batches rotate so one's attention overlaps the other's GEMMs (Lamina's staggered pipelining).
"""
from __future__ import annotations

from hw_models.costs import cost_model
from sim.hetero import Task, run_tasks

from .tensor_parallel import tensor_parallel


def _per_op_times(graph, device):
    model = cost_model(device)
    clock = max(e.clock_mhz for e in device.engines.values())
    return {op.index: model.cost(op, clock).time_s for op in graph.ops}


def _shard(graph, system_like, n):
    return tensor_parallel(graph, system_like, n).graph if n > 1 else graph


def decode_step(graph_half, gpu_dev, mem_dev, n_gpu: int, n_mem: int, net_gbps: float, net_latency_us: float,
                system_gpu, system_mem, microbatches: int = 2) -> dict:
    """One decode step for `microbatches` micro-batches of `graph_half`'s batch each."""
    on_gpu = _shard(graph_half, system_gpu, n_gpu)
    on_mem = _shard(graph_half, system_mem, n_mem)
    t_gpu, t_mem = _per_op_times(on_gpu, gpu_dev), _per_op_times(on_mem, mem_dev)
    group = next(iter(on_gpu.layer_groups))
    ops = [op for op in on_gpu.ops if op.group == group]
    layers = len(on_gpu.layer_groups[group])
    attn_part = {op.index for op in ops if op.name in ("attn.core", "attn.kv_append")}
    before = [op for op in ops if op.index < min(attn_part)]
    after = [op for op in ops if op.index > max(attn_part)]
    core = next(op for op in on_mem.ops if op.group is not None and op.name == "attn.core")
    q_bytes = sum(op.bytes.get("activation", 0) - op.reads.get("activation", 0)
                  for op in on_gpu.ops if op.group == group and op.name in ("attn.q_proj", "attn.k_proj",
                                                                          "attn.v_proj", "attn.qkv_proj"))
    out_bytes = core.bytes.get("activation", 0) - core.reads.get("activation", 0)
    send = lambda nbytes: net_latency_us * 1e-6 + nbytes / (net_gbps * 1e9)
    tasks = []
    prev = {m: None for m in range(microbatches)}
    for layer in range(layers):
        for m in range(microbatches):
            k = f"{layer}:{m}"
            dep = [prev[m]] if prev[m] else []
            tasks.append(Task(f"pre{k}", "gpu", sum(t_gpu[o.index] for o in before), dep))
            tasks.append(Task(f"q{k}", "net", send(q_bytes * n_gpu / n_mem), [f"pre{k}"]))
            tasks.append(Task(f"att{k}", "mem", sum(t_mem[i] for i in (core.index,)) +
                              sum(t_mem[o.index] for o in on_mem.ops if o.group is not None and o.name == "attn.kv_append"),
                              [f"q{k}"]))
            tasks.append(Task(f"o{k}", "net", send(out_bytes * n_mem / n_gpu), [f"att{k}"]))
            tasks.append(Task(f"post{k}", "gpu", sum(t_gpu[o.index] for o in after), [f"o{k}"]))
            prev[m] = f"post{k}"
    run = run_tasks(tasks)
    outside = sum(t_gpu[op.index] for op in on_gpu.ops if op.group is None) * microbatches
    return {"latency_s": run["makespan"] + outside, "busy": run["busy"]}

