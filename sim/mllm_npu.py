"""mllm-NPU's chunked prefill run on the engine's list scheduler (tasks built in mapping/mllm_npu.py)."""
from __future__ import annotations

from mapping.mllm_npu import CHUNK, PRUNE, build_tasks, calibrated, chunks_of

from mapping.taskgraph import task_graph

from .engine import schedule


def prefill(model: str, prompt: int, mode: str = "out_of_order", chunk: int = CHUNK, prune: float = PRUNE,
            npu_rate: str = "sec3.4", cpu_rate: str = "sec3.4") -> dict:
    """Prefill seconds, tokens/s and busy time per processor for one prompt."""
    tasks = build_tasks(model, calibrated(npu_rate, cpu_rate), prompt, chunk, prune, mode)
    run = schedule(task_graph(tasks, f"mllm-npu:{mode}"))
    return {"latency_s": run["makespan"], "tokens_per_s": prompt / run["makespan"], "npu_s": run["busy"]["npu"],
            "cpu_s": run["busy"]["cpu"], "chunks": len(chunks_of(prompt, chunk)), "spans": run["spans"]}
