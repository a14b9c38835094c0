"""NeuPIMs schedules run on the engine: the two-pass PIM bus sharing and the steady-state layer time (the
task graphs are built in mapping/neupims.py)."""
from __future__ import annotations

from mapping.neupims import NpuLayer, PimLoad, _chain

from mapping.taskgraph import task_graph

from .engine import schedule


def _bus_sharing(run, pim_halves) -> dict:
    """Extra streaming time of each NPU op: while a PIM attention with bus duty d overlaps it for o seconds,
    the NPU gets the bus only 1 - d of the time, so it needs o d / (1 - d) more."""
    duty = max((p.bus_s / p.mean_s if p.mean_s else 0.0) for p in pim_halves)
    pims = [span for name, span in run["spans"].items() if name.endswith(":pim")]
    extra = {}
    for name, (start, end) in run["spans"].items():
        if name.endswith(":m"):
            o = sum(max(0.0, min(end, e) - max(start, s)) for s, e in pims)
            extra[name] = o * duty / (1.0 - duty)
    return extra


def layer_run(mode: str, full: NpuLayer, half: NpuLayer, pim_full: PimLoad, pim_halves: tuple,
              concurrent: bool, interleave: bool, layers: int) -> dict:
    """Makespan and busy time per resource of `layers` decoder layers."""
    if mode == "npu-only" or not interleave:
        return schedule(task_graph(_chain("x", full, pim_full, layers, mode, concurrent, None), f"neupims:{mode}"))

    def run(extra):
        tasks = []
        for tag, pim in zip("ab", pim_halves):
            tasks += _chain(tag, half, pim, layers, mode, concurrent, extra)
        return schedule(task_graph(tasks, f"neupims:{mode}"))

    first = run(None)
    return run(_bus_sharing(first, pim_halves)) if concurrent else first


def decode_step(mode: str, full: NpuLayer, half: NpuLayer, pim_full: PimLoad, pim_halves: tuple,
                layers: int, outside_s: float, concurrent: bool, interleave: bool) -> dict:
    """Step seconds and busy fractions (steady state over layers; see the module docstring)."""
    one = layer_run(mode, full, half, pim_full, pim_halves, concurrent, interleave, 1)
    three = layer_run(mode, full, half, pim_full, pim_halves, concurrent, interleave, 3)
    per_layer = (three["makespan"] - one["makespan"]) / 2
    step = one["makespan"] + (layers - 1) * per_layer + outside_s

    def share(resource):
        return (three["busy"].get(resource, 0.0) - one["busy"].get(resource, 0.0)) / 2 / per_layer

    if mode == "npu-only":
        return {"step_s": step, "layer_s": per_layer, "npu_busy": share("npu"), "pim_busy": 0.0}
    pims = pim_halves if interleave else (pim_full,)
    mean_over_max = sum(p.mean_s for p in pims) / max(sum(p.max_s for p in pims), 1e-30)
    return {"step_s": step, "layer_s": per_layer, "npu_busy": share("npu"), "pim_busy": share("pim") * mean_over_max}
