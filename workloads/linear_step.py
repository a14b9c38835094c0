"""A templated step as a linear map: every number the cost models read, for any (batch, new tokens, cached
tokens), is one row of monomials times a fixed matrix.

A graph template (workloads/template.py; MoE class templates, workloads/moe_template.py) holds each number of a
step as a polynomial: value vector = monomials(b, n, c[, ea, eb]) @ coef. The precision and sparsity transforms
scale byte classes by constant factors and the stacks' sibling merge adds ops up, so after them every op's FLOPs,
bytes, GEMM shape and attention sizes are still linear in the template's values. `LinearStep` is that map for
one (template, block of steps with the same graph structure and kernel flags, recipe, merge): it is built once by
running the real transforms and merge on the template instantiated at its coefficient rows (a graph whose
numbers are the coefficient vectors), then checked against the step the full path builds at one real point.
Evaluating a step is then `quantities = monomials @ Q` (one matrix product, for one step or many).

Layout of the ops (not the graph's order): the ops that are neither GEMMs nor attention, then GEMMs grouped by
dtype, then attention ops. Quantity columns (`cols[name]` a slice of Q's columns): flops, act (activation bytes)
per op; m, n, k, batch per GEMM; sq, sk, hq, hkv, window, kv (KV-cache bytes read) per attention op;
kv_storage (the KV cache held, before the dtype factor); last bytes (fused view) per op and kbytes per unfused
kernel of the other ops. Per op: repeat and, for MoE routed
experts, the class (0 or 1) whose expert count multiplies its runs.

Not linear, so not compiled (callers take the full path): shared prefixes, layer and attention drops, per-expert
token lists.
"""
from __future__ import annotations

import numpy as np

from .graph import gemm_dtype
from .template import Template

MONO = {"1": lambda b, n, c: 1, "n": lambda b, n, c: n, "c": lambda b, n, c: c, "n*n": lambda b, n, c: n * n,
        "n*c": lambda b, n, c: n * c, "b": lambda b, n, c: b, "b*n": lambda b, n, c: b * n,
        "b*c": lambda b, n, c: b * c, "b*n*n": lambda b, n, c: b * n * n, "b*n*c": lambda b, n, c: b * n * c}


def matmul_rows(a, b, rows: int = 256):
    """a @ b in blocks of `rows` rows. Small products mostly stay on one BLAS thread this way: OpenBLAS threads
    larger ones, which on a machine whose cores are busy (a sweep runs one worker per core) costs 10-100x the
    product's own time (measured here: a [1271, 57] x [57, 19] product, 13 ms threaded, 0.2 ms in blocks).
    OpenBLAS keeps one thread up to M x N x K = 262,144, which some 256-row blocks pass ([256, 7] x [7, 206]):
    sweeps also set one BLAS thread around each chunk (sim/dse/blas.py)."""
    if a.shape[0] <= rows:
        return a @ b
    out = np.empty((a.shape[0],) + b.shape[1:], dtype=np.result_type(a, b))
    for i in range(0, a.shape[0], rows):
        np.matmul(a[i:i + rows], b, out=out[i:i + rows])
    return out


class NotLinear(Exception):
    """The recipe or step cannot be compiled to a linear map (use the full path)."""


def moe_code(tpl, b: int, n: int):
    """Scalar twin of MoETemplate.block for the traced (even) routing: (block code or -1, (rows a, count a),
    (rows b, count b)) of a step of b x n tokens, in plain Python numbers."""
    t = b * n
    q, r = divmod(t * tpl.top_k, tpl.experts)
    ra, ka = q + 1, r
    rb, kb = (q, tpl.experts - r) if q > 0 else (1, 0)
    code = (b > 1) * 8 + (n > 1) * 4 + (ra > 1) * 2 + (rb > 1)
    whole = t > 1 and ((ka > 0 and ra >= t) or (kb > 0 and rb >= t))
    if whole or not tpl._covers(code):
        code = -1
    return code, (ra, ka), (rb, kb)


def step_code(tpl, b: int, n: int):
    """(block code or -1, expert classes or None) of one step: the dense template's regime as a number, or the
    MoE template's block."""
    if hasattr(tpl, "block"):
        code, a, bb = moe_code(tpl, b, n)
        return code, (a, bb)
    return (int(b > 1) * 2 + int(n > 1) if tpl.covers(b, n) else -1), None


def block_codes(tpl, b, n, c):
    """Per step (arrays), the block code (-1: not covered), as `step_code`."""
    if hasattr(tpl, "block"):
        return tpl.block(b, n, c)
    code = (b > 1).astype(int) * 2 + (n > 1).astype(int)
    covered = np.array([f"{k // 2}{k % 2}" in tpl.d["strided"] for k in range(4)])
    return np.where(covered[code], code, -1)


def monomials(tpl, b, n, c):
    """The monomial matrix [steps, M] of array steps (MoE: with the even routing's expert rows), and the MoE
    class counts (count a, count b) or None."""
    b, n, c = (np.asarray(x, dtype=float) for x in (b, n, c))
    if hasattr(tpl, "_matrix"):
        mono, counts = tpl._matrix(b, n, c, "even")
        return mono, counts
    return np.stack([np.broadcast_to(np.asarray(MONO[m](b, n, c), dtype=float), b.shape) for m in tpl.names],
                    axis=-1), None


def mono_row(names, b: int, n: int, c: int, classes=None) -> list:
    """One step's monomials as a list (scalar path)."""
    row = [MONO[m](b, n, c) for m in names if m in MONO]
    if classes is not None:
        row += [classes[0][0], classes[1][0]]
    return row


def _layout(ops):
    """(GEMMs by dtype, attention ops, the rest) of a graph's ops, by op index."""
    mm = [op for op in ops if op.kind == "matmul" and "m" in op.attrs]
    mm.sort(key=lambda op: (gemm_dtype(op), str(op.attrs.get("scaling")), op.index))
    attn = [op for op in ops if op.kind == "attention" and not (op.kind == "matmul" and "m" in op.attrs)]
    taken = {op.index for op in mm} | {op.index for op in attn}
    return mm, attn, [op for op in ops if op.index not in taken]


def _columns(mm, attn, other, kv_storage):
    """[(name, [value per entry])] in Q's column order; an op may be None (not in this graph: NaN entries)."""
    nan = float("nan")

    def each(ops, f):
        return [f(op) if op is not None else nan for op in ops]
    ops = other + mm + attn
    out = [("flops", each(ops, lambda op: op.flops)), ("act", each(ops, lambda op: op.bytes.get("activation", 0)))]
    out += [(key, each(mm, lambda op, key=key: op.attrs[key])) for key in ("m", "n", "k")]
    out.append(("batch", each(mm, lambda op: op.attrs.get("batch", 1))))
    out += [(key, each(attn, lambda op, key=key: op.attrs.get(key, 0))) for key in ("sq", "sk", "hq", "hkv", "window")]
    out.append(("kv", each(attn, lambda op: op.reads.get("kv_cache", 0))))
    out.append(("kv_storage", [kv_storage]))
    # last, side by side: the op bytes (fused view: one stream per op) and the unfused kernels' bytes, so that
    # the streams of either kernel granularity are one slice: all ops' bytes, or the GEMMs', attention's and
    # the other ops' kernels'
    out.append(("bytes", each(ops, lambda op: sum(op.bytes.values()))))
    out.append(("kbytes", [sum(k.bytes.values()) for op in other if op is not None for k in op.kernels]))
    return out


class LinearStep:
    def __init__(self, tpl, code: int, recipe, merge: bool, probe):
        from .moe_template import _class_of, _role
        if recipe.prefix or recipe.drop_layer_ids or recipe.drop_attention_ids or recipe.expert_tokens is not None:
            raise NotLinear("shared prefix, drops and expert token lists are not linear in the step's size")
        moe = hasattr(tpl, "block")
        self.names = list(tpl.names)
        m_count = len(self.names)
        if not hasattr(tpl, "plan"):
            tpl.plan, tpl.meta_at = tpl._plan()
        if moe:
            flags = tpl._flags(code)
            reg = f"{code >> 3 & 1}{code >> 2 & 1}"
        else:
            reg = f"{code // 2}{code % 2}"
            flags = tpl.d["strided"][reg]
        rb, rn = (2.0 if reg[0] == "1" else 1.0), (2.0 if reg[1] == "1" else 1.0)
        # the template at its coefficient rows: each number becomes its vector of coefficients
        sym = Template.instantiate_many(tpl, np.full(m_count, rb), np.full(m_count, rn), np.zeros(m_count),
                                        V=tpl.coef_for(reg) if moe else tpl.coef, flags=flags)
        if moe and tpl.absent(reg):                    # copies this regime does not make (MLA decode at b = 1)
            sym.ops = [op for op in sym.ops if op.index not in tpl.absent(reg)]
        kv_raw = sym.meta["kv_cache_storage_bytes"]
        expert_class = {}
        if moe:
            extra = tpl.d["class_attrs"][reg]
            ops = []
            for op in sym.ops:
                k = _class_of(op.name)
                if k is not None:
                    expert_class[op.index] = k
                    op = op.scaled(attrs=dict(op.attrs, **extra.get(_role(op.name), {})))
                ops.append(op)
            sym.ops = ops
        graph = self._transformed(sym, recipe, merge)
        mm, attn, other = _layout(graph.ops)
        self.ops = other + mm + attn
        self.index = [op.index for op in self.ops]
        self.order = np.argsort(np.asarray(self.index), kind="stable")   # the layout's positions in program order
        self.n_other, self.n_mm, self.n_attn = len(other), len(mm), len(attn)
        one = np.zeros(m_count)
        one[self.names.index("1")] = 1.0
        blocks, self.cols, pos = [], {}, 0
        for name, values in _columns(mm, attn, other, kv_raw):
            blocks += [np.asarray(v, dtype=float) if np.ndim(v) else one * float(v) for v in values]
            self.cols[name] = slice(pos, pos + len(values))
            pos += len(values)
        self.Q = np.stack(blocks, axis=1)
        self.kernel_op = np.array([i for i, op in enumerate(other) for _ in op.kernels], dtype=int)
        self.kernel_strided = np.array([int(k.strided) for op in other for k in op.kernels], dtype=int)   # _access
        self.kernel_cat = np.array([k.aten == "cat" for op in other for k in op.kernels], dtype=bool)
        self.kernel_masked = np.array([k.aten.startswith("masked_fill") for op in other for k in op.kernels], dtype=bool)
        self.kernel_atomic = np.array([k.aten.startswith("index_add") for op in other for k in op.kernels], dtype=bool)
        self.kernel_counts = np.array([len(op.kernels) for op in other], dtype=float)
        self.mm_groups = []                # (dtype, row scaling, start, end) among the GEMMs
        for i, op in enumerate(mm):
            key = (gemm_dtype(op), op.attrs.get("scaling") == "row")
            if self.mm_groups and tuple(self.mm_groups[-1][:2]) == key:
                self.mm_groups[-1] = (*key, self.mm_groups[-1][2], i + 1)
            else:
                self.mm_groups.append((*key, i, i + 1))
        self.attn_fixed = [(op.dtype, bool(op.attrs.get("causal")), "window" in op.attrs) for op in attn]
        self.dtypes = [op.dtype for op in self.ops]
        self.kinds = [op.kind for op in self.ops]
        self.repeat = np.array([op.repeat for op in self.ops], dtype=float)
        cls = [expert_class.get(i) for i in self.index]
        self.expert_ops = [np.array([c == k for c in cls]) for k in (0, 1)] if moe else None
        # the routed experts' GEMMs by projection, for a grouped MoE layer (hw_models/moe.py group_experts): per
        # input width k (a constant: the same coefficient vector), (class a's GEMMs, class b's) as positions among
        # the GEMMs
        self.expert_gemms = []
        if moe:
            by_k = {}
            for j, op in enumerate(mm):
                k = expert_class.get(op.index)
                if k is not None:
                    key = np.asarray(op.attrs["k"], dtype=float).tobytes()
                    by_k.setdefault(key, ([], []))[k].append(j)
            self.expert_gemms = [(tuple(a), tuple(b)) for a, b in by_k.values()]
        self.moe = moe
        self.code = code
        self._check(recipe, tpl, probe, merge)

    @staticmethod
    def _transformed(graph, recipe, merge):
        from .fusion import merge_sibling_matmuls
        from .recipe import apply_transforms
        graph = apply_transforms(graph, recipe)
        return merge_sibling_matmuls(graph)[0] if merge else graph

    def _check(self, recipe, tpl, probe, merge):
        """The stored weights (constant) and the KV dtype factor, from the full path's graph at `probe`; every
        quantity checked there (the linear map must give the numbers the full path builds)."""
        from .transforms import DTYPE_BITS
        b, n, c = probe
        graph = self._transformed(tpl.instantiate(b, n, c), recipe, merge)
        self.weight_storage = float(graph.meta["weight_storage_bytes"])
        self.kv_factor = DTYPE_BITS[recipe.kv_dtype or recipe.dtype] / 16
        classes = step_code(tpl, b, n)[1]
        q = np.asarray(mono_row(self.names, b, n, c, classes), dtype=float) @ self.Q
        if np.floor(q[self.cols["kv_storage"]][0] * self.kv_factor) != graph.meta["kv_cache_storage_bytes"]:
            raise NotLinear("the KV-cache storage is not the dtype factor of the template's")
        by_index = {op.index: op for op in graph.ops}
        present = [i for i, op in zip(self.index, self.ops) if self._present(i, classes)]
        if sorted(by_index) != sorted(present):
            raise NotLinear("the full path builds other ops")
        real = [by_index.get(i) for i in self.index]
        other, mm = real[:self.n_other], real[self.n_other:self.n_other + self.n_mm]
        attn = real[self.n_other + self.n_mm:]
        for name, values in _columns(mm, attn, other, float("nan")):
            if name == "kv_storage":
                continue
            values = np.array(values, dtype=float)
            got = q[self.cols[name]]
            if name == "kbytes":          # kernels of the ops present only
                keep = np.array([op is not None for op in other])[self.kernel_op] if len(self.kernel_op) else []
                got = got[keep]
            ok = np.isnan(values) | np.isclose(got, values, rtol=1e-12, atol=1e-6)
            if not ok.all():
                raise NotLinear(f"{name} of the linear map differs from the full path's at {probe}")

    def _present(self, i, classes):
        if not self.moe:
            return True
        j = self.index.index(i)
        for k in (0, 1):
            if self.expert_ops[k][j]:
                return classes[k][1] > 0
        return True

    def runs(self, counts):
        """Runs of each op per step [steps, ops] (MoE: repeat x the class's expert count), or [ops]."""
        if not self.moe:
            return self.repeat
        ka, kb = (np.asarray(x, dtype=float).reshape(-1, 1) for x in counts)
        return self.repeat * np.where(self.expert_ops[0], ka, np.where(self.expert_ops[1], kb, 1.0))
