"""GPU costs of a linear step's ops (workloads/linear_step.py) for many steps at once, as arrays [steps, ops].

The formulas of `GPUModel._device_cost` applied to whole columns, with as few numpy calls as they allow (the
one-case path of `api.predict` runs this for a single row): the GEMMs of one dtype in one `gemm_compute_s` call,
every stream (a GEMM's or attention's operands, an unfused kernel's bytes, a fused op's bytes) in one `_stream`
call, all attention ops together. Attention mirrors `GPUModel._attention` and `_attention_prefill` (causal half,
windows, a serving stack's decode kernel); tests/test_linear_step.py checks every figure against the per-op path
on random steps, dense and MoE, eager and fused. Under a stack whose moe_kernel is grouped the routed experts' ops
are priced as their share of the grouped layer (`_grouped`, as hw_models/moe.py group_experts marks them on the full
path), from the expert classes' rows and counts. The model may be stacked (`GPUModel.stacked`: device numbers
[steps, 1]), so points on different devices are costed together.
"""
from __future__ import annotations

import math

import numpy as np

from workloads.graph import FFMA_FP32
from workloads.linear_step import matmul_rows

from .gpu import (_MM_DTYPE, banded_window, causal_tail_s, causal_tile_work, causal_waves, eager_kernel_eff,
                  eager_l2_share, head_dim_factor, kernel_energy_rel, kv8_convert_s, mask_factor, row_scaled_gemm,
                  splitk_tile_s, tiled_causal)
from .stacks import group_reread, kv8_conversion_bound

# GEMM dtypes whose output store is priced after the K loop (GPUModel.gemm_epilogue_s: FFMA fp32; 8-bit: mm_epilogue_fp8)
EPILOGUE_DTYPES = (FFMA_FP32, "fp8", "int8", "ternary")


def _first(*values):
    """The first value given that is set (`a or b or ...` for numbers; an array counts as set)."""
    for v in values:
        if v is not None and (np.ndim(v) or v):
            return v
    return values[-1]


def _hcat(parts):
    """Concatenate per-op parts along the op axis: 1-D when every part is, else [rows, ops] (a stacked model's
    parts are [rows, k], the others broadcast to its rows)."""
    parts = [np.asarray(x, dtype=float) for x in parts]
    if all(x.ndim <= 1 for x in parts):
        return np.concatenate([np.atleast_1d(x) for x in parts])
    rows = max(x.shape[0] for x in parts if x.ndim == 2)
    return np.concatenate([np.broadcast_to(np.atleast_2d(x), (rows, np.atleast_2d(x).shape[1])) for x in parts],
                          axis=1)


def _layout(steps: tuple, fused: bool):
    """What a GPU table of `steps` needs that no device changes (kept on the first step): the streams (fused: one
    per op, its bytes; eager: the GEMMs' and attention's operands and every kernel), the distinct ones among them,
    the eager kernels' incidence on ops, attention's flags and the GEMM groups' constant n, k, batch. Several
    steps (blocks of one structure, `same_structure`) share a table: their rows are costed together."""
    step = steps[0]
    cache = step.__dict__.setdefault("_gpu_layout", {})
    key = (fused, tuple(id(x) for x in steps[1:]))
    hit = cache.get(key)
    if hit is not None and all(a is b for a, b in zip(hit.steps, steps)):
        return hit
    from types import SimpleNamespace
    n_o, n_mm, n_attn = step.n_other, step.n_mm, step.n_attn
    b0, k1 = step.cols["bytes"], step.cols["kbytes"]
    lay = SimpleNamespace(steps=steps)
    if fused:
        lay.streams = b0
        sources = [np.zeros(len(step.ops)) for _ in steps]
    else:
        lay.streams = slice(b0.start + n_o, k1.stop)
        sources = [np.concatenate([np.zeros(n_mm + n_attn), 1.0 + x.kernel_strided + 4.0 * x.kernel_cat +
                                   8.0 * getattr(x, "kernel_masked", 0) + 16.0 * getattr(x, "kernel_atomic", 0)])
                   for x in steps]
        ns = n_mm + n_attn + len(step.kernel_op)
        inc = np.zeros((ns, len(step.ops)))
        inc[np.arange(n_mm + n_attn), n_o + np.arange(n_mm + n_attn)] = 1.0
        inc[n_mm + n_attn + np.arange(len(step.kernel_op)), step.kernel_op] = 1.0
        lay.incidence = inc
    # streams of the same bytes (the same Q column) at the same efficiency take the same time: each costed once
    # (eager steps repeat many: 74 streams, 40 distinct, in a Mixtral step)
    cols = np.arange(step.Q.shape[1])[lay.streams]
    key = np.vstack([x.Q[:, cols] for x in steps] + [src[None] for src in sources]).T
    _, first, back = np.unique(key, axis=0, return_index=True, return_inverse=True)
    lay.stream_first, lay.stream_cols = first, cols[first]
    lay.stream_back = back.reshape(-1) if len(first) < len(cols) else None
    lay.causal = np.array([c for _, c, _ in step.attn_fixed])
    lay.windowed = any(w for _, _, w in step.attn_fixed)
    # each attention op's head size (a model constant: its coefficient on the monomial 1), for head_dim_factor
    one = step.names.index("1") if "1" in step.names else None
    lay.head_dim = [_constant(op.attrs.get("d", 128), one) for op in step.ops[n_o + n_mm:]]
    # each attention op's explicit mask (a fixed attr: HF's SDPA calls), for mask_factor
    lay.masked = [bool(op.attrs.get("mask", False)) for op in step.ops[n_o + n_mm:]]
    # ... and whether the trace recorded it at all (else an eager window decides: GPUModel.window_masked)
    lay.mask_recorded = [op.attrs.get("mask") is not None for op in step.ops[n_o + n_mm:]]
    lay.head_dim_v = [_constant(op.attrs.get("dv", op.attrs.get("d", 128)), one) for op in step.ops[n_o + n_mm:]]
    # an 8-bit KV cache (attention ops' kv_bits, set by the kv dtype for the whole step)
    lay.kv8 = any(op.attrs.get("kv_bits", 16) <= 8 for op in step.ops[n_o + n_mm:])
    # GEMM groups whose n, k and batch are constants (only the monomial 1 in Q, the same in every step): those
    # numbers, else None
    lay.gemm_fixed = []
    for _, _, s, e in step.mm_groups:
        fixed = []
        for x in steps:
            one = x.names.index("1") if "1" in x.names else None
            others = np.arange(x.Q.shape[0]) != (one if one is not None else -1)
            parts = [x.Q[:, c][:, s:e] for c in (x.cols["n"], x.cols["k"], x.cols["batch"])]
            fixed.append(tuple(v[one] for v in parts) if one is not None and not any(v[others].any() for v in parts)
                         else None)
        same = fixed[0] is not None and all(f is not None and all(np.array_equal(a, b) for a, b in zip(f, fixed[0]))
                                             for f in fixed[1:])
        lay.gemm_fixed.append(fixed[0] if same else None)
    cache[(fused, tuple(id(x) for x in steps[1:]))] = lay
    return lay


def _constant(value, one):
    """A step attribute that does not depend on the step (the head size): its value, from a number or from its
    coefficients over the step's monomials (only the monomial 1 set)."""
    if np.ndim(value) == 0:
        return float(value)
    v = np.asarray(value, dtype=float)
    if one is None or np.count_nonzero(np.delete(v, one)):
        raise ValueError("an attention op's head size varies with the step")
    return float(v[one])


def same_structure(a, b) -> bool:
    """Whether two linear steps (blocks of one template) cost alike but for which eager kernels read strided
    operands, so that one table costs both blocks' rows (each row with its block's kernel efficiencies)."""
    return a.moe == b.moe and a.kinds == b.kinds and a.dtypes == b.dtypes and a.mm_groups == b.mm_groups and \
        a.attn_fixed == b.attn_fixed and a.cols == b.cols and a.Q.shape == b.Q.shape and \
        a.names == b.names and np.array_equal(a.kernel_op, b.kernel_op) and \
        np.array_equal(a.kernel_counts, b.kernel_counts) and np.array_equal(a.repeat, b.repeat) and \
        (a.expert_ops is None) == (b.expert_ops is None) and \
        (a.expert_ops is None or all(np.array_equal(x, y) for x, y in zip(a.expert_ops, b.expert_ops))) and \
        a.weight_storage == b.weight_storage and a.kv_factor == b.kv_factor and \
        [op.attrs.get("mask") for op in a.ops if op.kind == "attention"] == \
        [op.attrs.get("mask") for op in b.ops if op.kind == "attention"]


class GPUTable:
    """A model's per-op constants for one linear step at the top clock `clock` (MHz; [steps, 1] when stacked)."""

    def __init__(self, model, step, clock, also: tuple = ()):
        """`also`: further steps of the same structure (`same_structure`) whose rows `costs` takes too, each row
        naming its step (`block`: 0 for `step`, i for also[i - 1])."""
        self.model, self.step, self.clock = model, step, clock
        self.one = np.ndim(clock) == 0           # one device (not a stacked model)
        self.gemm_key, self.gemm_memo = None, {}
        p = model.p
        floor = p["kernel_floor_us"] * 1e-6
        n_o, n_mm, n_attn = step.n_other, step.n_mm, step.n_attn
        self.fused = model.profile == "fused"
        overs = [floor * np.ones(n_o)] if self.fused else [floor * np.maximum(step.kernel_counts, 1.0)]
        # FP8 GEMMs with per-row scales priced as the rowwise kernel (row_scaled_gemm) where the device sets it
        self.row_groups = [(s, e) for _, row, s, e in step.mm_groups if row and np.any(p["fp8_row_eff"])]
        for dtype, row, s, e in step.mm_groups:
            o = floor + p["mm_floor_us"] * 1e-6
            if row:
                o = o + p.get("fp8_row_us", 0.0) * 1e-6
            overs.append(o * np.ones(e - s))
        self.attn_over = floor + p["attn_floor_us"] * 1e-6
        overs.append(self.attn_over * np.ones(n_attn))
        self.over = _hcat(overs)
        # the streams: fused, one per op (its bytes); eager, the GEMMs' and attention's operands and every kernel
        lay = _layout((step,) + tuple(also), self.fused)
        self.streams, self.stream_cols, self.stream_back = lay.streams, lay.stream_cols, lay.stream_back
        if not self.fused:
            self.incidence = lay.incidence
        # each op's bytes as GPUModel counts them (OpCost.bytes, what e_byte is charged on): fused, or without
        # energy_kernel_bytes, the op's own bytes; eager with it, the GEMMs' and attention's operands and, for the
        # other ops, the sum of their kernels' bytes (an op with no kernels: its own bytes), a 0/1 map from Q's
        # bytes and kbytes columns
        self.byte_span, self.byte_map, self.kernel_bytes = step.cols["bytes"], None, p["energy_kernel_bytes"]
        self.l2 = not self.fused and bool(np.any(p["eager_l2_rel"]))       # eager_l2_share: the map's sums too
        if not self.fused and (np.any(self.kernel_bytes) or self.l2):
            n, nk = len(step.ops), len(step.kernel_op)
            self.byte_span = slice(step.cols["bytes"].start, step.cols["kbytes"].stop)
            bm = np.zeros((n + nk, n))
            own = np.concatenate([np.flatnonzero(step.kernel_counts == 0), n_o + np.arange(n_mm + n_attn)])
            bm[own, own] = 1.0
            bm[n + np.arange(nk), step.kernel_op] = 1.0
            self.byte_map = bm
        # non-vectorized kernels' extra energy per byte (GPUModel: kernel_energy_rel), each kernel's bytes x (rel - 1)
        # added to its op's: kernel_rel [kernels] (or [points, kernels]), kernel_map the kernels' 0/1 map to ops
        # (per step of the table: the steps of one structure can differ in their kernels' access classes)
        self.kernel_rel = None
        if not self.fused and len(step.kernel_op) and (np.any(p["e_nonvec_rel"]) or np.any(p["e_cat_rel"])):
            rels = [kernel_energy_rel(p, x.kernel_strided, x.kernel_cat) - 1.0 for x in (step,) + also]
            self.kernel_rel = rels[0]
            # [steps, (points,) kernels] where the table holds several steps
            self.kernel_rel_steps = np.stack(np.broadcast_arrays(*rels)) if len(rels) > 1 else None
            self.kernel_map = np.zeros((len(step.kernel_op), len(step.ops)))
            self.kernel_map[np.arange(len(step.kernel_op)), step.kernel_op] = 1.0
            self.kbytes = step.cols["kbytes"]
        bw_eff = p["bw_eff"]
        self.block_eff = []                   # per step, its streams' efficiencies (the distinct streams)
        for x in (step,) + tuple(also):
            if self.fused:
                effs = [bw_eff * np.ones(len(step.ops))]
            else:
                effs = [bw_eff * np.ones(n_mm + n_attn), eager_kernel_eff(p, x.kernel_strided, x.kernel_cat,
                                                                          getattr(x, "kernel_masked", False),
                                                                          getattr(x, "kernel_atomic", False))]
            self.block_eff.append(_hcat(effs)[..., lay.stream_first])
        self.stream_eff = self.block_eff[0]
        # one device, one block: GPUModel._stream's bandwidth and small-transfer size, taken once (`_costs`)
        self.stream_bw = model.bw * self.stream_eff if self.one and not also else None
        self.small_bw = p["small_bw_bytes"]
        # attention: causal ops, windows, tensor peak x efficiency
        if n_attn:
            self.causal, self.windowed = lay.causal, lay.windowed
            # each op's efficiency at its head size (GPUModel._attention_prefill: head_dim_factor)
            hd = [head_dim_factor(d, p) * mask_factor(mk, d, p) for d, mk in zip(lay.head_dim, lay.masked)]
            peaks = [model._peak(dt if dt in _MM_DTYPE else "bf16", clock) * (p["attn_eff"] * h)
                     for (dt, _, _), h in zip(step.attn_fixed, hd)]
            self.attn_den = _hcat(peaks)
            # an eager sliding window narrower than the keys reaches SDPA as an explicit mask (GPUModel.window_masked):
            # its rate over the unmasked kernel's, for the ops not already priced masked; which rows it applies to
            # depends on each row's keys (`_costs`)
            self.window_rel = None
            if lay.windowed and not self.fused:
                self.window_rel = _hcat([1.0 if known else mask_factor(True, d, p)
                                         for d, known in zip(lay.head_dim, lay.mask_recorded)])
            # the causal-tile model (GPUModel._attention_prefill): its own efficiency and floor where it applies
            self.tile = p.get("attn_causal_tile", 0)
            self.tile_any = bool(np.any(self.tile))
            # one row on one device (the one-case path): `_attn_work` in plain numbers (`_attn_work_one`)
            self.attn_one = isinstance(self.tile, (int, float)) and np.ndim(self.causal) == 1
            self.causal_list = [bool(x) for x in np.ravel(self.causal)]
            if self.tile_any:
                self.tile_den = _hcat([model._peak(dt if dt in _MM_DTYPE else "bf16", clock)
                                       * (p["attn_causal_eff"] * h) for (dt, _, _), h in zip(step.attn_fixed, hd)])
                self.tile_over = floor + p["attn_causal_floor_us"] * 1e-6
                self.tile_wave = p["attn_causal_wave_us"] * 1e-6      # per wave of CTAs (gpu.py causal_waves)
                self.wave_any = bool(np.any(self.tile_wave))
                self.tail = p.get("attn_causal_tail", 0)        # gpu.py causal_tail_s
                self.tail_any = bool(np.any(self.tail))
                self.head_dim, self.head_dim_v = np.asarray(lay.head_dim), np.asarray(lay.head_dim_v)
                self.head_dim_list = [float(x) for x in lay.head_dim]
                self.head_dim_v_list = [float(x) for x in lay.head_dim_v]
                self.tile_den_list = np.ravel(self.tile_den).tolist() if self.attn_one else None
            st = model.stack
            paged = p.get("paged_bw_eff") if st.decode_attention == "paged" else None
            f8 = p.get("paged_fp8_bw_eff") if lay.kv8 and st.kv8_dequant_bound and paged is not None else None
            if f8 is not None:                      # as GPUModel._attention: the split-K kernel measured here
                paged = np.where(np.asarray(f8) > 0, f8, paged) if np.ndim(f8) or np.ndim(paged) else (f8 or paged)
            self.decode_eff = _first(st.decode_attn_bw_eff, paged, p.get("decode_bw_eff"), p["bw_eff"])
            self.decode_over = floor + p.get("decode_attn_floor_us", p["attn_floor_us"]) * 1e-6
            # the split-K kernel's query tiles (GPUModel._attention: splitk_tile_s) where the stack runs it
            self.splitk_tiles = bool(st.splitk_query_tiles and np.any(p.get("paged_tile_eff", 0)))
            if self.splitk_tiles:
                self.attn_d, self.attn_dv = np.asarray(lay.head_dim, dtype=float), np.asarray(lay.head_dim_v,
                                                                                               dtype=float)
            self.group_sharing = st.kv_group_sharing
            self.kv8_convert = kv8_conversion_bound(st, lay.kv8)
            self.group_reread = group_reread(st, 8 if lay.kv8 else 16)    # as GPUModel._attention
        # energy_flops (GPUModel.energy_flops): a matmul's FLOPs weighted by `e_fp8_rel` for 8-bit types where the
        # device has it, else by its dtype's tensor rate against bf16; attention's by `e_attn_rel` (times the
        # share its kernel executes: `_attn_work`, in `_costs` and `attention_unexecuted`)
        per = model.tensor.ops_per_unit_per_clock
        rel8 = p.get("e_fp8_rel")
        num, den = [], []
        for kind, dtype in zip(step.kinds, step.dtypes):
            dt = _MM_DTYPE.get(dtype, dtype)
            if kind == "attention":
                num.append(p.get("e_attn_rel", 1.0))
                den.append(1.0)
                continue
            if kind == "matmul" and dt in ("fp8", "int8") and rel8 is not None and np.all(rel8):
                num.append(rel8)
                den.append(1.0)
                continue
            ok = kind == "matmul" and dt in per and "bf16" in per
            num.append(per["bf16"] if ok else 1.0)
            den.append(per[dt] if ok else 1.0)
        scalar = all(np.ndim(v) == 0 for v in per.values())
        self.e_num, self.e_den = (np.array(x, dtype=float) if scalar else _hcat(x) for x in (num, den))
        self.gemm_plans = {}
        self.tile_memo = {}                # (GEMM group, its tile counts) -> compute seconds (`_gemms`, one step)
        self.gemm_fixed = lay.gemm_fixed
        self.all_fixed = all(f is not None for f in self.gemm_fixed)
        # a grouped MoE layer (the stack's moe_kernel; hw_models/moe.py group_experts): the routed experts' GEMMs
        # priced as their share of one grouped GEMM per projection, the other expert ops' floors once per layer
        self.grouped = bool(step.moe and step.expert_gemms and model.stack.moe_kernel == "grouped")
        if self.grouped:
            from .moe import operand_bytes
            self.expert_other = np.flatnonzero((step.expert_ops[0] | step.expert_ops[1])[:n_o])
            dtypes = [next("bf16" if dt == FFMA_FP32 else dt for dt, _, s, e in step.mm_groups if s <= j < e)
                      for j in range(n_mm)]
            cols = step.cols
            mcol, ncol, kcol = (np.arange(step.Q.shape[1])[cols[key]] for key in ("m", "n", "k"))
            # per projection: (class a's GEMM positions, class b's, columns of rows a, rows b (or -1), the widths
            # of class a's GEMMs, k, dtype, (weight, activation) bytes per element)
            self.grouped_gemms = [(a, b, mcol[a[0]], mcol[b[0]] if b else -1, ncol[list(a)], kcol[a[0]], dtypes[a[0]],
                                   operand_bytes(step.ops[n_o + a[0]].attrs, dtypes[a[0]]))
                                  for a, b in step.expert_gemms if a]
            self.grouped_memo = {}
            self.grouped_cols = np.unique(np.concatenate(
                [np.concatenate([[ma, kc], [mb] if mb >= 0 else [], nc]) for _, _, ma, mb, nc, kc, _, _ in
                 self.grouped_gemms]).astype(int))

    def op_bytes(self, q, block=None):
        """Each op's bytes (OpCost.bytes) from the quantity rows q ([..., quantities]: `monomials @ step.Q`, or Q);
        `block`: each row's step where the table holds several (`also`), else the first step's."""
        own = q[..., self.step.cols["bytes"]]
        out = own
        if self.byte_map is not None and np.any(self.kernel_bytes):
            out = own + self.kernel_bytes * (q[..., self.byte_span] @ self.byte_map - own)
        if self.kernel_rel is not None:
            rel, every = self.kernel_rel, self.kernel_rel_steps
            if block is not None and every is not None:
                rel = every[block] if every.ndim == 2 else every[block, np.arange(len(block))]
            out = out + (q[..., self.kbytes] * rel) @ self.kernel_map
        return out

    def costs(self, q, eflops: bool = True, block=None, counts=None, work=None):
        """(compute, memory, overhead, energy-weighted FLOPs or None), each [steps, ops], from the quantity matrix
        q [steps, quantities] (`monomials @ step.Q`). A one-device caller may memoize the GEMMs' compute
        (`gemm_memo`: a dict, `gemm_key`: what their sizes depend on). `block`: each row's step (a table of
        several, `also`). `counts`: the MoE expert classes' counts (count a, count b), each [steps] or a number,
        which a grouped MoE layer needs (`self.grouped`). `work`: `_attn_work(q)` where the caller has it."""
        compute, memory, over, ef = self._costs(q, eflops, block, work)
        if self.grouped:
            compute, memory, over = self._grouped(q, compute, memory, over, counts)
        return compute, memory, over, ef

    def _grouped(self, q, compute, memory, over, counts):
        """The routed experts' ops of a grouped MoE layer, as `GPUModel._device_cost` prices the ops that
        `hw_models.moe.group_experts` marked: each GEMM its share of its projection's grouped GEMM (classes a
        and b of experts), the other expert ops' kernel floors divided by the experts with rows."""
        if counts is None:
            raise ValueError("a grouped MoE layer needs the expert classes' counts")
        P = q.shape[0]
        compute, memory = np.array(compute, dtype=float), np.array(memory, dtype=float)
        over = np.array(np.broadcast_to(over, memory.shape), dtype=float)
        memo = self.grouped_memo if P == 1 and np.ndim(self.clock) == 0 else None
        if memo is not None:
            # one device, one step (the one-case path): memoized on the sizes and counts it depends on
            key = (float(np.ravel(counts[0])[0]), float(np.ravel(counts[1])[0])) + \
                tuple(q[0, self.grouped_cols].tolist())
            hit = memo.get(key)
            if hit is None:
                if len(memo) > 4096:
                    memo.clear()
                hit = memo[key] = self._grouped_columns(q, counts)
        else:
            hit = self._grouped_columns(q, counts)
        at, c, m_, o, share = hit
        compute[:, at], memory[:, at], over[:, at] = c, m_, o
        if len(self.expert_other):
            over[:, self.expert_other] = over[:, self.expert_other] * share
        return compute, memory, over

    def _grouped_columns(self, q, counts):
        """(op positions of the expert GEMMs, their compute, memory and overhead [steps, GEMMs], each step's
        1 / experts with rows [steps, 1])."""
        from .moe import grouped_parts
        P, n_o = q.shape[0], self.step.n_other
        ka, kb = (np.reshape(np.asarray(x, dtype=float), (-1, 1)) * np.ones((P, 1)) for x in counts)
        total = ka + kb
        share = 1.0 / np.where(total > 0, total, 1.0)
        at, cols = [], [[], [], []]
        for a, b, ma, mb, nc, kc, dtype, (w_bytes, a_bytes) in self.grouped_gemms:
            ra = q[:, ma][:, None]
            rb = q[:, mb][:, None] if b else np.ones((P, 1))
            n = q[:, nc].sum(axis=1)[:, None]
            k = q[:, kc][:, None]
            parts = grouped_parts(self.model, [(ra, ka), (rb, kb if b else 0.0)], n, k, self.clock, dtype=dtype,
                                  w_bytes=w_bytes, a_bytes=a_bytes)
            parts = [np.broadcast_to(x, (P, 1))[:, 0] * share[:, 0] for x in parts]
            for members in (a, b):
                for j in members:
                    at.append(n_o + j)
                    for col, x in zip(cols, parts):
                        col.append(x / len(members))
        c, m_, o = (np.stack(col, axis=1) for col in cols)
        return np.array(at), c, m_, o, share

    def _costs(self, q, eflops, block, work=None):
        m, st, cols = self.model, self.step, self.step.cols
        n_o, n_mm, n_attn = st.n_other, st.n_mm, st.n_attn
        P = q.shape[0]
        eff = self.stream_eff
        if block is not None and len(self.block_eff) > 1:
            if all(e.ndim == 1 for e in self.block_eff):
                eff = np.stack(self.block_eff)[block]
            else:                              # a stacked model: [steps, streams] per block
                eff = self.block_eff[0]
                for i, e in enumerate(self.block_eff[1:], 1):
                    eff = np.where((block == i)[:, None], e, eff)
        if self.stream_bw is not None:            # GPUModel._stream, its bandwidth taken once
            x, sb = q[:, self.stream_cols], self.small_bw
            streams = x / self.stream_bw * (1.0 + sb / (x + sb) * 0.5)
        else:
            streams = m._stream(q[:, self.stream_cols], eff)
        if self.stream_back is not None:
            streams = streams[:, self.stream_back]
        memory = streams if self.fused else matmul_rows(streams, self.incidence)
        if self.l2:          # GPUModel._device_cost: an eager op's intermediates served by L2 where they fit
            own = q[:, cols["bytes"]]
            memory = memory * (1.0 - eager_l2_share(m.p, own, q[:, self.byte_span] @ self.byte_map))
        over = self.over
        pieces = [np.zeros((P, n_o))]
        if n_mm and P == 1 and self.one and self.all_fixed:
            pieces += self._gemms(q)           # one step: memoized on the GEMMs' tile counts (`_tile_time`)
        elif n_mm and self.gemm_key is not None:
            key = self.gemm_key(q)
            hit = self.gemm_memo.get(key)
            if hit is None:
                hit = self.gemm_memo[key] = self._gemms(q)
                if len(self.gemm_memo) > 4096:
                    self.gemm_memo.clear()
            pieces += hit
        elif n_mm:
            pieces += self._gemms(q)
        flops = q[:, cols["flops"]]
        if n_attn:
            sq = q[:, cols["sq"]]
            work, tiled = self._attn_work(q) if work is None else work
            attn_over = self.attn_over
            if tiled is not None:
                attn = flops[:, n_o + n_mm:] * work / np.where(tiled, self.tile_den, self.attn_den)
                if self.tail_any:
                    longest = self._tail_one(q) if P == 1 and self.attn_one else \
                        causal_tail_s(sq, self.head_dim, self.head_dim_v, self.tile, m.sms, self.tile_den)
                    attn = np.where(tiled, np.maximum(attn + self.tail * longest, longest), attn)
                if P == 1 and self.attn_one:
                    attn_over = self._tile_over_one(q, tiled)
                else:
                    tile_over = self.tile_over
                    if self.wave_any:
                        tile_over = tile_over + self.tile_wave * causal_waves(
                            flops[:, n_o + n_mm:], sq, q[:, cols["sk"]], self.head_dim, self.head_dim_v, self.tile,
                            m.sms)
                    attn_over = np.where(tiled, tile_over, self.attn_over)
                over = over[None].copy() if P == 1 and over.ndim == 1 else \
                    np.broadcast_to(over, (P, over.shape[-1])).copy()
                over[:, n_o + n_mm:] = attn_over
            else:
                attn = flops[:, n_o + n_mm:] * work / self.attn_den
            if self.window_rel is not None:
                banded = banded_window(q[:, cols["window"]], q[:, cols["sk"]])
                if banded.any():
                    attn = np.where(banded, attn / self.window_rel, attn)
            pieces.append(attn)
            if self.fused:
                kv = q[:, cols["kv"]]
                decode = (sq <= 1) & (kv > 0)
                if decode.any():
                    group = 1.0 if self.group_sharing else \
                        1.0 + self.group_reread * (q[:, cols["hq"]] / q[:, cols["hkv"]] - 1.0)
                    moved = q[:, self.streams][:, n_o + n_mm:] + kv * (group - 1.0)
                    tiles = 0.0
                    if self.splitk_tiles:
                        tiles = splitk_tile_s(m, flops[:, n_o + n_mm:], q[:, cols["hq"]], q[:, cols["hkv"]],
                                              q[:, cols["sk"]], self.attn_d, self.attn_dv, self.clock)
                    if self.kv8_convert:          # as GPUModel._attention: kv8_convert_s
                        tiles = np.maximum(tiles, kv8_convert_s(m, kv, q[:, cols["hq"]], q[:, cols["hkv"]],
                                                                self.clock))
                    pieces[-1] = np.where(decode, tiles, attn)
                    memory = memory.copy()
                    memory[:, n_o + n_mm:] = np.where(decode, m._stream(moved, self.decode_eff),
                                                      memory[:, n_o + n_mm:])
                    over = np.broadcast_to(over, memory.shape).copy()
                    over[:, n_o + n_mm:] = np.where(decode, self.decode_over, attn_over)
        compute = np.concatenate(pieces, axis=1) if len(pieces) > 1 else pieces[0]
        if self.row_groups:
            compute, memory, over = self._row_scaled(q, compute, memory, over)
        if not eflops:
            return compute, memory, over, None
        ef = flops * self.e_num / self.e_den
        if n_attn:           # attention: the FLOPs its kernel executes, as its time (GPUModel.energy_flops)
            ef = np.concatenate([ef[:, :n_o + n_mm], ef[:, n_o + n_mm:] * work], axis=1)
        return compute, memory, over, ef

    def _tail_one(self, q):
        """gpu.py causal_tail_s of one row on one device (`attn_one`) in plain numbers, as [1, attention ops]."""
        t = self.tile if self.tile > 0 else 1.0
        c = 2.0 * t * t * float(self.model.sms)
        return np.array([[math.ceil((a if a > 1 else 1) / t) * c * (d + dv) / r for a, d, dv, r in
                          zip(q[0, self.step.cols["sq"]].tolist(), self.head_dim_list, self.head_dim_v_list,
                              self.tile_den_list)]])

    def _tile_over_one(self, q, tiled):
        """The attention ops' overhead of one row on one device (`attn_one`): gpu.py causal_waves in plain numbers
        where the causal-tile model prices an op, as [1, attention ops] (numpy on an op or two costs more)."""
        cols, first = self.step.cols, self.step.n_other + self.step.n_mm
        row = q[0].tolist()
        t = self.tile if self.tile > 0 else 1.0
        base, wave, sms = float(self.tile_over), float(self.tile_wave), float(self.model.sms)
        out = []
        for f, a, b, d, dv, tl in zip(row[cols["flops"]][first:], row[cols["sq"]], row[cols["sk"]],
                                      self.head_dim_list, self.head_dim_v_list, tiled[0].tolist()):
            if not tl:
                out.append(self.attn_over)
            elif self.wave_any:
                den = 2.0 * (a * b) * (d + dv)
                heads = float(round(f / (den if den > 1.0 else 1.0)))
                out.append(base + wave * math.ceil(heads * math.ceil((a if a > 1 else 1) / t) / sms))
            else:
                out.append(base)
        return np.array([out])

    def _row_scaled(self, q, compute, memory, over):
        """The FP8 GEMMs with per-row scales, as GPUModel._device_cost prices them where the device sets fp8_row_eff
        (hw_models/gpu.py row_scaled_gemm: compute, memory and overhead of their own)."""
        cols, first = self.step.cols, self.step.n_other
        compute, memory = np.array(compute, dtype=float), np.array(memory, dtype=float)
        over = np.array(np.broadcast_to(over, memory.shape), dtype=float)
        for s, e in self.row_groups:
            at = slice(first + s, first + e)
            c, m_, o = row_scaled_gemm(self.model, *(q[:, cols[key]][:, s:e] for key in ("m", "n", "k", "batch")),
                                       self.clock, q[:, cols["bytes"]][:, at])
            compute[:, at], memory[:, at], over[:, at] = c, m_, o
        return compute, memory, over

    def _attn_work(self, q):
        """(the fraction of each attention op's counted FLOPs its kernel executes [steps, attention ops], where the
        causal-tile model prices it or None), from quantity rows q: GPUModel.attention_work over the columns."""
        if self.attn_one and q.shape[0] == 1:
            return self._attn_work_one(q)
        cols = self.step.cols
        sq, sk = q[:, cols["sq"]], q[:, cols["sk"]]
        square = (sq == sk) & (sq > 1) & self.causal
        work = np.where(square, 0.5, 1.0)
        if self.windowed:
            window = q[:, cols["window"]]
            banded = banded_window(window, sk)
            work = np.where(banded, 1.0 if self.model.profile == "eager" else np.minimum(work, window / sk), work)
        tiled = None
        if self.tile_any:
            a = {"causal": True, "sk": sk, "window": q[:, cols["window"]] if self.windowed else 0}
            tiled = tiled_causal(a, square, self.tile)
            work = np.where(tiled, causal_tile_work(sq, sk, self.tile), work)
        return work, tiled

    def _attn_work_one(self, q):
        """`_attn_work` of one row on one device (`attn_one`), from `attn_work_lists`."""
        work, tiled = self.attn_work_lists(q[0].tolist())
        return np.array([work]), (np.array([tiled]) if self.tile_any else None)

    def attn_work_lists(self, q):
        """`_attn_work` of one step on one device (`attn_one`) in plain numbers, from its quantities q (a list), as
        lists (a dozen numpy calls on an op or two cost more than the arithmetic): the same operations (gpu.py
        tiled_causal, causal_tile_work)."""
        cols = self.step.cols
        sq, sk = q[cols["sq"]], q[cols["sk"]]
        windows = q[cols["window"]] if self.windowed else [0.0] * len(sq)
        eager = self.model.profile == "eager"
        tile = self.tile
        t = tile if tile > 0 else 1.0
        work, tiled = [], []
        for a, b, win, causal in zip(sq, sk, windows, self.causal_list):
            square = a == b and a > 1 and causal
            w = 0.5 if square else 1.0
            banded = win > 0 and win < b
            if banded:
                r = win / b
                w = 1.0 if eager else (w if w < r else r)
            tl = square and tile > 0 and not banded
            if tl:
                nt = math.ceil((a if a > 1 else 1) / t)
                w = nt * (nt + 1) / 2 * t * t / (a * b if a * b > 1 else 1)
            work.append(w)
            tiled.append(tl)
        return work, tiled

    def attention_unexecuted(self, q):
        """[steps, ops]: the energy-weighted FLOPs each op counts but its kernel does not execute (a causal
        attention's masked half, `_attn_work`), from quantity rows q [steps, quantities]; 0 for the other ops.
        What a caller whose energy columns are linear in the step (linear_cost.energy_columns) takes off them."""
        st = self.step
        first = st.n_other + st.n_mm
        out = np.zeros((q.shape[0], first + st.n_attn))
        if st.n_attn:
            rel = np.broadcast_to(self.e_num / self.e_den, out.shape)[:, first:]
            out[:, first:] = q[:, st.cols["flops"]][:, first:] * rel * (1.0 - self._attn_work(q)[0])
        return out

    def _tile_time(self, g, qm, dtype):
        """GEMM group g's compute seconds for one step of rows qm [1, GEMMs], memoized: gemm_time reads m only as
        its tile counts ceil(m / tile rows), so steps of nearby sizes (a prompt one token longer) share it."""
        plan = self.gemm_plans.get(g)
        if plan is None:
            plan = self.gemm_plans[g] = self.model.gemm_plan(*self.gemm_fixed[g], dtype, self.clock, 2)
        key = (g, np.ceil(qm / plan[0]).tobytes())
        hit = self.tile_memo.get(key)
        if hit is None:
            if len(self.tile_memo) > 4096:
                self.tile_memo.clear()
            hit = self.tile_memo[key] = self.model.gemm_time(qm, plan)
        return hit

    def _gemms(self, q):
        """The GEMMs' compute seconds [steps, GEMMs] per dtype group. On one device, steps whose GEMMs have the
        same sizes (decode: the sizes follow the batch only) are costed once; a group whose n, k and batch do not
        depend on the step (weights) takes their part of the cost from a plan built once."""
        m, st, cols = self.model, self.step, self.step.cols
        one = self.one
        if one and q.shape[0] == 1 and self.all_fixed:       # one step, every group planned: only m is read
            qm = q[:, cols["m"]]
            return [self._tile_time(g, qm[:, s:e], dtype) if dtype not in EPILOGUE_DTYPES else
                    self._tile_time(g, qm[:, s:e], dtype) + m.gemm_epilogue_s(qm[:, s:e], q[:, cols["n"]][:, s:e],
                                                                             q[:, cols["batch"]][:, s:e], dtype)
                    for g, (dtype, _, s, e) in enumerate(st.mm_groups)]
        sizes = [q[:, cols[key]] for key in ("m", "n", "k", "batch")]
        inv = None
        if one and q.shape[0] > 64:
            distinct = distinct_rows(np.hstack(sizes))
            if distinct is not None:
                first, inv = distinct
                sizes = [x[first] for x in sizes]
        qm, qn, qk, qb = sizes
        out = []
        for g, (dtype, _, s, e) in enumerate(st.mm_groups):
            fixed = self.gemm_fixed[g]
            if fixed is None:
                out.append(m.gemm_compute_s(qm[:, s:e], qn[:, s:e], qk[:, s:e], qb[:, s:e], dtype, self.clock))
            else:
                plan = self.gemm_plans.get(g) if one else None
                if plan is None:
                    plan = m.gemm_plan(*fixed, dtype, self.clock, 2)
                    if one:
                        self.gemm_plans[g] = plan
                out.append(m.gemm_time(qm[:, s:e], plan))
            if dtype in EPILOGUE_DTYPES:
                # GPUModel.gemm_epilogue_s: the output stored after the K loop (FFMA: fp32; 8-bit: bf16, the
                # device's mm_epilogue_fp8 share of it, 0 where the preset leaves it unset)
                out[-1] = out[-1] + m.gemm_epilogue_s(qm[:, s:e], qn[:, s:e], qb[:, s:e], dtype)
        return out if inv is None else [x[inv] for x in out]


_HASH: dict = {}


def distinct_rows(a, most: float = 0.5):
    """(rows of `a`'s distinct rows, each row's index among them), or None where more than `most` of the rows are
    distinct (nothing to gain). Rows are told apart by a random projection, then checked equal exactly."""
    w = _HASH.get(a.shape[1])
    if w is None:
        w = _HASH[a.shape[1]] = np.random.default_rng(12345).uniform(0.5, 1.5, a.shape[1])
    _, first, inv = np.unique(a @ w, return_index=True, return_inverse=True)
    if len(first) > most * len(a):
        return None
    inv = inv.reshape(-1)
    if not np.array_equal(a[first][inv], a):            # two different rows projected alike: no shortcut
        return None
    return first, inv
