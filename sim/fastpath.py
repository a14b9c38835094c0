"""The one-case fast path of `predict`: a workload compiled once per (model, workload options, phase, device,
stack) into linear steps (workloads/linear_step.py), then each step is one row of monomials times a matrix,
costed as columns (hw_models/gpu_table.py) and solved under the power cap in closed form
(hw_models/power_solve.py) by `sim.linear_cost.figures`; a step under the cap at the top clock (most) is
answered by `sim.linear_cost.figures_one` in plain numbers without the solve, its runs' energy, FLOPs and bytes
summed by extra columns of the block's matrix (`linear_cost.run_sums`).

Why: serving, sweeps and notebooks call `predict` for one step at a time, millions of times. Nothing is built
per call (no graph, no op objects, no pandas): the step's block (regime of the graph's kernel flags; for MoE
models also the expert classes) picks a compiled linear step, whose per-device constants are prepared once.
Exactly the figures of the full path (`sim.predict.predict`) up to rounding; tests/test_api.py and
tests/test_linear_step.py compare them on random steps, dense and MoE.

Not compiled (the caller falls back to the full path): GPUs only; host-issued stacks (eager-launch,
hf-generate: two-queue timing); shared prefixes, layer and
attention drops and per-expert token lists (not linear in the step's size); sliding windows beyond the template's
reach and steps outside a template's blocks (MoE: one expert taking every token of a multi-token step; MLA decode).
"""
from __future__ import annotations

import numpy as np

from hw_models.costs import cost_model
from hw_models.gpu import GPUModel
from hw_models.gpu_table import GPUTable
from hw_models.power import PowerModel
from hw_models.power_solve import power_arrays
from hw_models.stacks import STACKS
from workloads.capture import MAX_SIZE, Phase, _template, _template_reach, moe_template, window_limit
from workloads.linear_step import LinearStep, NotLinear, mono_row, step_code

from .linear_cost import BOUNDS, energy_columns, figures, figures_one, run_sums


class Unsupported(Exception):
    """This workload cannot take the fast path; use the full one."""


# the result's numbers, in this order (api.PredictResult's fields from latency_s to bytes)
FIELDS = ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "power_capped", "bound", "fits",
          "memory_needed_bytes", "memory_capacity_bytes", "flops", "bytes")


class CompiledStep:
    def __init__(self, recipe, device, profile: str = "eager"):
        spec = recipe.spec
        windows = [k.window for k in spec.layer_kinds if k.window]
        if recipe.expert_tokens is not None or recipe.drop_layer_ids or recipe.drop_attention_ids or \
                recipe.prefix or (windows and min(windows) < _template_reach()):
            raise Unsupported
        if profile in STACKS and STACKS[profile].host_queue:     # two-queue timing: the full path
            raise Unsupported
        self.model = cost_model(device, profile)
        if not isinstance(self.model, GPUModel):
            raise Unsupported
        self.power = PowerModel(device)
        self.tpl = moe_template(spec, recipe.phase) if spec.moe is not None else \
            _template(spec, recipe.phase, recipe.impl)
        if self.tpl is None or (spec.moe is not None and recipe.impl != "hwsim"):
            raise Unsupported
        self.recipe, self.device, self.profile = recipe, device, profile
        self.phase, self.max_positions = recipe.phase, spec.max_positions
        self.moe_chunk_without_context = spec.moe is not None and recipe.phase == "chunked_prefill"
        self.windows = min(windows) if windows else None
        self.merge = STACKS[profile].merge_projections if profile in STACKS else False
        self.pw = power_arrays([self.power])
        self.capacity = (device.main_memory.capacity_gb or 0) * 1e9
        self.blocks = {}           # block code -> (linear step, GPU table, [Q | energy columns]) or None (not linear)
        self.memo = {}             # (batch, seq_len, context) -> figures (bounded)
        self.sums = {}             # block code -> (runs basis R, [Qx | summed columns]) (linear_cost.run_sums)
        self.scalar = True         # steps first take linear_cost.figures_one (tests turn it off to compare)

    def _block(self, code, probe):
        if code not in self.blocks:
            try:
                step = LinearStep(self.tpl, code, self.recipe, self.merge, probe)
                table = GPUTable(self.model, step, self.power.f_max)
                sizes = slice(step.cols["m"].start, step.cols["batch"].stop)      # what GEMM costs depend on
                table.gemm_key = lambda q, sizes=sizes: q[0, sizes].tobytes()
                Qx = np.hstack([step.Q, energy_columns(step, table, self.pw)])
                R, S = run_sums(step, Qx)
                self.sums[code] = (R, np.hstack([Qx, S]))
                self.blocks[code] = (step, table, Qx)
            except NotLinear:
                self.blocks[code] = None
        return self.blocks[code]

    def __call__(self, batch: int, seq_len: int, context: int = 0) -> tuple:
        """The step's figures as a tuple in FIELDS order (memoized: a repeated step is a dict lookup)."""
        key = (batch, seq_len, context)
        hit = self.memo.get(key)
        if hit is None:
            hit = self._figures(batch, seq_len, context)
            if len(self.memo) >= 4096:
                self.memo.clear()
            self.memo[key] = hit
        return hit

    def _figures(self, batch, seq_len, context):
        phase = self.phase
        if type(batch) is not int or type(seq_len) is not int or type(context) is not int or batch <= 0 or \
                seq_len <= 0 or context < 0 or (context and phase != "chunked_prefill") or batch > MAX_SIZE or \
                seq_len > MAX_SIZE:
            Phase(phase, batch, seq_len, context)            # the one-line error of bad input (or the full path)
            raise Unsupported
        if phase == "prefill":
            b, n, c = batch, seq_len, 0
        elif phase == "decode":
            b, n, c = batch, 1, seq_len
        else:
            b, n, c = batch, seq_len, context
        if n + c > self.max_positions or (self.windows and n + c >= window_limit(self.windows, self.recipe.impl)):
            raise Unsupported
        if self.moe_chunk_without_context and c == 0:
            raise Unsupported      # MoE chunked prefill with no context: its template misses the step by ~1e-5
        code, classes = step_code(self.tpl, b, n)
        if code < 0:
            raise Unsupported
        block = self._block(code, (b, n, c))
        if block is None:
            raise Unsupported
        step, table, Qx = block
        row = mono_row(step.names, b, n, c, classes)
        nq = step.Q.shape[1]
        if self.scalar:       # uncapped: the top clock's figures as plain numbers, no operating-point solve
            R, Qs = self.sums[code]
            qx = np.array(row, dtype=float) @ Qs
            ne = Qx.shape[1]
            s = qx[ne:].tolist()
            if classes is None:
                runs, sums = step.repeat, (s[0], s[3], s[6])
            else:
                ka, kb = classes[0][1], classes[1][1]
                runs = R @ np.array([1.0, ka, kb])
                sums = (s[0] + ka * s[1] + kb * s[2], s[3] + ka * s[4] + kb * s[5], s[6] + ka * s[7] + kb * s[8])
            qx = qx[:ne]
            # attention's energy: the FLOPs it executes, not linear in the step (decode executes all it counts)
            masked = step.n_attn and (n > 1 or table.windowed)
            if masked:
                cut = table.attention_unexecuted(qx[None, :nq])[0] * self.pw.e_f
                qx[nq:] -= cut
                sums = (sums[0] - float(cut @ runs),) + sums[1:]
            costs = table.costs(qx[None, :nq], False, counts=None if classes is None else
                                (classes[0][1], classes[1][1]))
            f = figures_one(step, table, self.pw, qx[:nq], runs, self.capacity, qx[nq:], sums, costs)
            if f is not None:
                return f
        else:
            qx = np.array(row, dtype=float) @ Qx
            if step.n_attn and (n > 1 or table.windowed):
                qx[nq:] -= table.attention_unexecuted(qx[None, :nq])[0] * self.pw.e_f
            costs = None
        runs = step.runs((classes[0][1], classes[1][1])) if classes is not None else step.repeat
        q = qx[None]
        f = figures(step, table, self.pw, q[:, :nq], runs, self.capacity, E=q[:, nq:], costs=costs,
                    counts=None if classes is None else (classes[0][1], classes[1][1]))
        return (float(f["latency_s"][0]), float(f["energy_j"][0]), float(f["avg_power_w"][0]),
                float(f["peak_power_w"][0]), float(f["clock_mhz"][0]), bool(f["power_capped"][0]),
                str(BOUNDS[f["bound"][0]]), bool(f["fits"][0]), float(f["memory_needed_bytes"][0]), self.capacity,
                float(f["flops"][0]), float(f["bytes"][0]))
