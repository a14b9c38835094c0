"""The one-case fast path of `predict`: a workload compiled once per (model, workload options, phase, device,
stack) into linear steps (workloads/linear_step.py), then each step is one row of monomials times a matrix,
costed as columns (hw_models/gpu_table.py) and solved under the power cap in closed form
(hw_models/power_solve.py) by `sim.linear_cost.figures`. One step is answered in plain Python lists
(`sim.linear_one.figures_lists`): under the cap, the top clock's figures without a solve; over it, the one step's
solve (hw_models/power_one.py: the H100's sliding cap window, cap_sequence; the H200's window without it; none). Its
quantities, ops' energy (and the FLOP part of it) and its runs' energy, FLOPs and bytes come from one product
with extra columns of the block's matrix (`linear_cost.run_sums`); attention's work is taken once, in plain
numbers, and the GEMMs' times are memoized on their tile counts (hw_models/gpu_table.py).

Why: serving, sweeps and notebooks call `predict` for one step at a time, millions of times. Nothing is built
per call (no graph, no op objects, no pandas): the step's block (regime of the graph's kernel flags; for MoE
models also the expert classes) picks a compiled linear step, whose per-device constants are prepared once.
Exactly the figures of the full path (`sim.predict.predict`) up to rounding; tests/test_api.py and
tests/test_linear_step.py compare them on random steps, dense and MoE, tests/test_one_case_speed.py the plain
lists with the numpy row solver (capped prefills included).

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

from .linear_cost import BOUNDS, _joined_in_order, energy_columns, figures, run_sums
from .linear_one import figures_lists


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
        self.attn_rel = {}         # block code -> the attention ops' energy-weighted FLOP factor (a list)
        self.runs_list = {}        # block code -> the ops' runs (dense steps), a list
        self.scalar = True         # steps first take the plain lists (`_one`; tests turn it off to compare)

    def _block(self, code, probe):
        if code not in self.blocks:
            try:
                step = LinearStep(self.tpl, code, self.recipe, self.merge, probe)
                table = GPUTable(self.model, step, self.power.f_max)
                sizes = slice(step.cols["m"].start, step.cols["batch"].stop)      # what GEMM costs depend on
                table.gemm_key = lambda q, sizes=sizes: q[:, sizes].tobytes()   # every row: a several-row call keys on all
                Qx = np.hstack([step.Q, energy_columns(step, table, self.pw)])
                R, S = run_sums(step, Qx)
                EF = step.Q[:, step.cols["flops"]] * (table.e_num / table.e_den * self.pw.e_f)   # E's FLOP part
                self.sums[code] = (R, np.hstack([Qx, S, EF]))
                a = step.n_other + step.n_mm        # the attention ops' energy weight (attention_unexecuted)
                self.attn_rel[code] = np.broadcast_to(table.e_num / table.e_den, (len(step.ops),))[a:].tolist()
                self.runs_list[code] = step.repeat.tolist()
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
        if self.scalar:       # plain numbers: the top clock's figures, or the capped step's solve (sim/linear_one.py)
            f, qx, costs = self._one(step, table, code, classes, row, n)
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

    def _one(self, step, table, code, classes, row, n):
        """(the step's figures or None, its quantities [Q | E], its costs): one matrix product gives the step's
        quantities, its ops' energy (E) and FLOP energy (EF), and E, FLOPs and bytes summed over the runs
        (`run_sums`); then plain lists. Attention's energy is the FLOPs it executes, not linear in the step
        (decode executes all it counts): `table.attention_unexecuted`'s cut, on the attention ops only, their
        work shared with `table.costs`. None where the row path must answer (a step of no time)."""
        R, Qs = self.sums[code]
        qv = np.array(row, dtype=float) @ Qs
        nq, cols, pw = step.Q.shape[1], step.cols, self.pw
        no = len(step.ops)
        ql = qv.tolist()                                # Q's quantities, E [ops], the 9 run sums, EF [ops]
        E, s, EF = ql[nq:nq + no], ql[nq + no:nq + no + 9], ql[nq + no + 9:]
        if classes is None:
            rl = self.runs_list[code]
            K, flops, nbytes = s[0], s[3], s[6]
        else:
            ka, kb = classes[0][1], classes[1][1]
            rl = (R @ np.array([1.0, ka, kb])).tolist()
            K, flops, nbytes = s[0] + ka * s[1] + kb * s[2], s[3] + ka * s[4] + kb * s[5], s[6] + ka * s[7] + kb * s[8]
        q1 = qv[None, :nq]
        work = None
        if step.n_attn and (n > 1 or table.windowed):
            a = step.n_other + step.n_mm
            if table.attn_one:
                wl, tl = table.attn_work_lists(ql)
                work = (np.array([wl]), np.array([tl]) if table.tile_any and True in tl else None)   # none tiled: as untiled
            else:
                work = table._attn_work(q1)
                wl = work[0][0].tolist()
            e_f = pw.e_f
            for j, (fa, rel, w) in enumerate(zip(ql[cols["flops"]][a:], self.attn_rel[code], wl)):
                cut = fa * rel * (1.0 - w) * e_f
                E[a + j] -= cut
                EF[a + j] -= cut
                K -= cut * rl[a + j]
        costs = table.costs(q1, False, counts=None if classes is None else (ka, kb), work=work)
        compute, memory, over, _ = costs
        over = over[0] if over.ndim == 2 else over
        f = figures_lists(step, pw, compute[0].tolist(), memory[0].tolist(), over.tolist(), rl, E,
                          ql[cols["act"]], ql[cols["kv_storage"].start], self.capacity, K, flops,
                          nbytes, _joined_in_order(step), EF)
        qx = None if f is not None else np.concatenate([qv[:nq], E])
        return f, qx, costs
