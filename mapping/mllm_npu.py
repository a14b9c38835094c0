"""mllm-NPU-style on-phone prefill (arXiv 2407.05858): the prompt is cut into fixed chunks; each chunk's
linear layers run in INT8 on the NPU, while attention, norms and the other float work run on the GPU (or
CPU), and a small share of outlier channels is computed in float on the CPU beside each NPU matmul. Chunks
and layers are scheduled out of order: a unit starts once its inputs exist, so the NPU works on chunk c+1
while chunk c's attention runs elsewhere.
"""
from __future__ import annotations

from hw_models.costs import cost_model
from sim.hetero import Task, run_tasks
from workloads.recipe import build_workload


def prefill(model: str, device, prompt: int, chunk: int = 256, outlier_share: float = 0.01,
            out_of_order: bool = True) -> dict:
    """Seconds for the whole prompt; outlier_share: fraction of each matmul's FLOPs redone in float on the CPU."""
    cost = cost_model(device)
    clock = max(e.clock_mhz for e in device.engines.values())
    chunks = [(start, min(chunk, prompt - start)) for start in range(0, prompt, chunk)]
    tasks, last_unit = [], None
    for c, (start, size) in enumerate(chunks):
        graph = build_workload(model, "prefill" if start == 0 else "chunked_prefill", 1, size, start, quant="w8a8")
        group = next(iter(graph.layer_groups))
        layers = sorted(graph.layer_groups[group])
        ops = [op for op in graph.ops if op.group == group]
        first_attn = min(op.index for op in ops if op.kind == "attention")
        units = [("pre", [o for o in ops if o.index < first_attn]), ("attn", [o for o in ops if o.kind == "attention"]),
                 ("post", [o for o in ops if o.index > first_attn])]
        for layer in layers:
            prev = f"{c}:{layer - 1}:post" if layer != layers[0] else (None if c == 0 else f"{c - 1}:{layers[-1]}:post")
            for name, members in units:
                npu = sum(cost.cost(o, clock).time_s for o in members if o.kind == "matmul")
                gpu = sum(cost.cost(o, clock).time_s for o in members if o.kind != "matmul")
                key = f"{c}:{layer}:{name}"
                deps = [prev] if prev else []
                if name == "attn" and c:
                    deps.append(f"{c - 1}:{layer}:pre")            # the earlier chunks' K/V of this layer
                if not out_of_order and last_unit:
                    deps.append(last_unit)
                if npu:
                    tasks.append(Task(key + ":npu", "npu", npu, deps))
                    flops = sum(o.flops for o in members if o.kind == "matmul")
                    tasks.append(Task(key + ":outlier", "cpu", flops * outlier_share / _cpu_flops(device), deps))
                    deps = [key + ":npu", key + ":outlier"]
                tasks.append(Task(key, "gpu", gpu, deps))
                prev = last_unit = key
    run = run_tasks(tasks)
    return {"latency_s": run["makespan"], "tokens_per_s": prompt / run["makespan"], "busy": run["busy"]}


def _cpu_flops(device) -> float:
    cpu = next((e for e in device.engines.values() if e.kind == "simd"), None)
    return cpu.peak("fp16") or cpu.peak("fp32") or 1e11 if cpu else 1e11
