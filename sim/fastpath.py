"""The one-case fast path of `predict`: a workload compiled once per (model, workload options, phase, device,
stack), then each step costs what changed since the steps before it.

Why: serving, sweeps and notebooks call `predict` for one step at a time, millions of times. The graph
template (workloads/template.py) gives every number of a step as a vector at (batch, new tokens, cached
tokens); an op's cost depends only on its own numbers. So each op's cost at the top clock is memoized under
its numbers: a projection's cost is reused for every context at the same batch, and only the ops whose
numbers changed (attention, the KV append) are built, transformed and costed again. The operating point
(clock under the power cap) is then solved over all ops (`hw_models.power.operating_point`). Exactly the
figures of the full path (`sim.predict.predict`); tests/test_api.py compares them on random steps.

Not compiled (the caller falls back to the full path): MoE models, sliding windows beyond the template's
reach, layer/attention drops, and steps outside a template's regime.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_models.costs import cost_model
from hw_models.power import PowerModel, one_step
from hw_models.stacks import STACKS
from workloads.capture import Phase, _template, _template_reach
from workloads.fusion import _merge, merge_sibling_matmuls
from workloads.recipe import apply_transforms
from workloads.template import regime

BOUNDS = ("compute", "memory", "latency")


class Unsupported(Exception):
    """This workload cannot take the fast path; use the full one."""


@dataclass(frozen=True)
class StepFigures:
    latency_s: float
    energy_j: float
    avg_power_w: float
    peak_power_w: float
    clock_mhz: float
    power_capped: bool
    bound: str
    fits: bool
    memory_needed_bytes: float
    memory_capacity_bytes: float
    flops: float
    bytes: float


class CompiledStep:
    def __init__(self, recipe, device, profile: str = "eager"):
        spec = recipe.spec
        windows = [k.window for k in spec.layer_kinds if k.window]
        if spec.moe is not None or recipe.expert_tokens is not None or recipe.drop_layer_ids or \
                recipe.drop_attention_ids or (windows and min(windows) < _template_reach()):
            raise Unsupported
        self.tpl = _template(spec, recipe.phase)
        if self.tpl is None:
            raise Unsupported
        self.recipe, self.device, self.profile = recipe, device, profile
        self.windows = min(windows) if windows else None
        self.model = cost_model(device, profile)
        self.power = PowerModel(device)
        if self.power.p["gamma"] != 0.0:        # the closed-form operating point needs clock-independent energy/op
            raise Unsupported
        self.merge = STACKS[profile].merge_projections if profile in STACKS else False
        self.slots = self.tpl.slots()
        self.capacity = (device.main_memory.capacity_gb or 0) * 1e9
        self.layouts = {}          # regime -> [(final op index, member template op indices, repeat, slot index array)]
        self.memo = {}             # (final op index, its numbers) -> cost tuple
        self.meta_memo = {}

    def _layout(self, b, n, c):
        key = regime(b, n)
        if key not in self.layouts:
            graph = apply_transforms(self.tpl.instantiate(b, n, c), self.recipe)
            members = {op.index: [op.index] for op in graph.ops}
            if self.merge:
                merged, remap = merge_sibling_matmuls(graph)
                members = {op.index: sorted([i for i, j in remap.items() if j == op.index] or [op.index])
                           for op in merged.ops}
                graph = merged
            layout = []
            for op in graph.ops:
                idx = np.concatenate([np.arange(*self.slots[i]) for i in members[op.index]])
                layout.append((op.index, tuple(members[op.index]), op.repeat, idx))
            self.layouts[key] = layout
        return self.layouts[key]

    def _cost_missing(self, b, n, c, raw, missing, keys):
        """Build just the missing ops at this step, transform them as the recipe does, merge siblings, cost them."""
        only = {i for _, members in missing for i in members}
        part = apply_transforms(self.tpl.instantiate(b, n, c, only=only, raw=raw), self.recipe)
        by_index = {op.index: op for op in part.ops}
        for (index, members), key in zip(missing, keys):
            op = by_index[index] if len(members) == 1 else _merge([by_index[i] for i in members])
            cost = self.model.cost(op, self.power.f_max)
            self.memo[key] = (float(cost.compute_s), float(cost.memory_s), float(cost.overhead_s),
                              float(self.model.energy_flops(op)), float(cost.bytes), float(op.flops), float(sum(op.bytes.values())),
                              float(op.bytes.get("activation", 0)))
        return part.meta

    def __call__(self, batch: int, seq_len: int, context: int = 0) -> StepFigures:
        ph = Phase(self.recipe.phase, batch, seq_len, context)
        spec = self.recipe.spec
        if ph.positions > spec.max_positions or (self.windows and ph.positions > self.windows):
            raise Unsupported
        step = ph.step()
        b, n, c = step.batch, step.new_tokens, step.cached
        if not self.tpl.covers(b, n):
            raise Unsupported
        layout = self._layout(b, n, c)
        raw = self.tpl.values(b, n, c)
        keys = [(index, raw[idx].tobytes()) for index, _, _, idx in layout]
        missing = [(index, members) for (index, members, _, _), key in zip(layout, keys) if key not in self.memo]
        meta_key = raw[self.tpl.meta_at:].tobytes()
        if missing:
            meta = self._cost_missing(b, n, c, raw, missing, [k for k in keys if k not in self.memo])
            self.meta_memo[meta_key] = (meta["weight_storage_bytes"], meta["kv_cache_storage_bytes"])
        elif meta_key not in self.meta_memo:
            only = {layout[0][1][0]}
            meta = apply_transforms(self.tpl.instantiate(b, n, c, only=only, raw=raw), self.recipe).meta
            self.meta_memo[meta_key] = (meta["weight_storage_bytes"], meta["kv_cache_storage_bytes"])
        costs = [self.memo[k] for k in keys]
        reps = [r for _, _, r, _ in layout]
        power = self.power
        compute, memory, fixed, eflops, moved, flops, fused, act = zip(*costs)
        clocks, times, energies, latency, energy, clock, capped = one_step(power, compute, memory, fixed, reps,
                                                                           eflops, moved)
        by_bound = [0.0, 0.0, 0.0]
        peak = power.idle
        for c, m, o, f, t, e, r in zip(compute, memory, fixed, clocks, times, energies, reps):
            c = c * power.f_max / f
            by_bound[2 if o > max(c, m) else (0 if c >= m else 1)] += t * r
            if t > 0:
                peak = max(peak, min(e / t, power.cap))
        avg = energy / latency if latency else 0.0
        weights, kv = self.meta_memo[meta_key]
        needed = weights + kv + max(act)
        return StepFigures(latency, energy, avg, max(avg, peak), clock, capped, BOUNDS[by_bound.index(max(by_bound))],
                           bool(needed <= self.capacity) if self.capacity else True, float(needed), self.capacity,
                           sum(f * r for f, r in zip(flops, reps)), sum(b * r for b, r in zip(fused, reps)))
