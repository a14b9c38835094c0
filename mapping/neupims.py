"""NeuPIMs-style decode on an NPU with HBM-PIM memory (Heo et al., ASPLOS'24), and its baselines.

Per decoder layer the projections and FFN run on the NPU's systolic arrays and the attention over each
request's KV cache (a GEMV) runs in the memory banks. The modes differ in what may overlap:
  npu-only   attention too runs on the NPU, reading the KV cache over the external bus;
  npu+pim    naive: attention in-bank, but a single row buffer blocks the NPU while PIM works (serial);
  dual-rb    dual row buffers: NPU and PIM may run together, but one batch's chain has nothing to overlap;
  neupims    dual row buffers + sub-batch interleaving: two half-batches, so one half's attention on PIM
             overlaps the other half's GEMMs on the NPU.
Times per op come from the NPU (systolic) and PIM cost models; the schedule is run by sim.hetero.
"""
from __future__ import annotations

from hw_models import load_device
from hw_models.costs import cost_model
from hw_models.pim import PIMModel
from sim.hetero import Task, run_tasks

MODES = ("npu-only", "npu+pim", "dual-rb", "neupims")


def _layer_ops(graph):
    group = next(iter(graph.layer_groups))
    return [op for op in graph.ops if op.group == group], len(graph.layer_groups[group]), \
        [op for op in graph.ops if op.group is None]


def decode_step(graph_full, graph_half, npu="neupims-npu", pim="neupims-hbm-pim", mode="neupims") -> dict:
    """Seconds for one decode step of the batch in `graph_full` (`graph_half`: the same at half the batch)."""
    npu_dev, pim_dev = load_device(npu), load_device(pim)
    npu_model = cost_model(npu_dev)
    pim_model = PIMModel(pim_dev, mode="blocked" if mode == "npu+pim" else "concurrent")
    clock_npu = max(e.clock_mhz for e in npu_dev.engines.values())
    clock_pim = max(e.clock_mhz for e in pim_dev.engines.values())

    def duration(op, on_pim):
        return (pim_model.cost(op, clock_pim) if on_pim else npu_model.cost(op, clock_npu)).time_s

    halves = [("a", graph_half), ("b", graph_half)] if mode == "neupims" else [("a", graph_full)]
    tasks = []
    for tag, graph in halves:
        ops, _, _ = _layer_ops(graph)
        prev = None
        for op in ops:
            on_pim = op.kind == "attention" and mode != "npu-only"
            resource = "pim" if on_pim else "npu"
            if mode == "npu+pim":
                resource = "hbm"              # a single row buffer: NPU and PIM take turns on the memory
            task = Task(f"{tag}:{op.index}", resource, duration(op, on_pim), [prev] if prev else [])
            tasks.append(task)
            prev = task.name
    result = run_tasks(tasks)
    _, layers, outside = _layer_ops(graph_full)
    rest = sum(duration(op, False) for op in outside)
    return {"latency_s": result["makespan"] * layers + rest, "layer_s": result["makespan"], "layers": layers,
            "busy": result["busy"]}
