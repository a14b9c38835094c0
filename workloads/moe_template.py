"""Graph templates of MoE models: the routed experts as (at most) two classes of identical experts.

A MoE step's traced graph changes shape with its size (an expert that gets no token runs nothing, and each
expert is its own ops), so the dense template (workloads/template.py) cannot hold it. Under a routing rule
the experts fall into at most two classes of equal load, so the template is fitted to traces in which exactly
two experts run, with `ea` and `eb` rows: every number of the step is then an exact polynomial in
(b, n, c, ea, eb) (the router, shared experts and attention as in a dense model; an expert's FLOPs and bytes
linear in its rows). An instantiated step carries on each routed-expert op `attrs["experts"]`: how many identical
experts that op stands for (`Op.runs` = layers x experts; the cost paths multiply by it). Two things of an
expert op depend on its own rows rather than on (b, n): whether its kernels' operands have gaps (a slice of the
router weights is gap-free for one row), kept per (rows > 1); and, for its combine (which slices the router
weights), its input shapes (left out: no cost reads shapes) and its host-side view count (kept per regime of
(b, n): it differs when an expert takes every row of the step, which the template leaves to the trace).

Routing rules (`expert_classes`), for T = b x n tokens, top-k of E experts:
  even     the traced step's own rule (Step.tokens_per_expert): the T k routed rows spread evenly, r = Tk mod E
           experts with q + 1 rows and E - r with q = Tk div E (experts touched: min(E, Tk)). The template
           reproduces the traced step exactly.
  uniform  each token picks its k experts uniformly at random, independently of the other tokens: the expected
           number of distinct experts touched is u = E (1 - (1 - k/E)^T), each with Tk / u rows on average (one
           class, fractional). Fewer experts' weights are read than under `even` at small T (decode).
"""
from __future__ import annotations

import numpy as np

from .template import CHECK, MONOMIALS, SAMPLES, Template, _mono, _shape, _snap, regime

ROUTINGS = ("even", "uniform")
CLASS_NAMES = ("ea", "eb")


def expert_classes(tokens, top_k: int, experts: int, routing: str = "even"):
    """((rows a, count a), (rows b, count b)) for T tokens (a number or an array): the two classes of routed
    experts under `routing`. A class of count 0 is given 1 row (it costs nothing)."""
    t = np.asarray(tokens, dtype=float)
    if routing == "even":
        routed = t * top_k
        q, r = np.floor_divide(routed, experts), np.mod(routed, experts)
        rows_a, count_a = q + 1, r
        rows_b, count_b = np.where(q > 0, q, 1.0), np.where(q > 0, experts - r, 0.0)
    elif routing == "uniform":
        count_a = experts * (1.0 - (1.0 - top_k / experts) ** t)
        rows_a = t * top_k / count_a
        rows_b, count_b = np.ones_like(t), np.zeros_like(t)
    else:
        from .errors import HwsimError
        raise HwsimError(f"unknown MoE routing '{routing}'; use {' or '.join(ROUTINGS)}")
    return (rows_a, count_a), (rows_b, count_b)


DECODE_SAMPLES = [((1, 16), (1, 1)), ((2, 16), (1, 1)), ((1, 48), (1, 1)), ((3, 40), (2, 1)), ((2, 72), (1, 1)),
                  ((4, 24), (3, 1)), ((5, 32), (2, 4)), ((6, 20), (5, 3)), ((4, 56), (1, 2)), ((1, 88), (1, 1)),
                  ((6, 100), (4, 2))]
# (1, 88): a third step of one sequence, so that a regime fitted apart (MLA decode at b = 1, `_align`) has a row
# to check its fit on


def _samples(phase):
    """(trace point, (ea, eb)) pairs: the dense samples and three more with expert rows varied (below the step's
    tokens where it has more than one, so every expert takes rows of this device), the check point last. Decode
    has its own (a decode step has only b tokens, so b goes up to 6 for the rows to vary)."""
    if phase == "decode":
        return DECODE_SAMPLES
    points = list(SAMPLES[phase]) + list(SAMPLES[phase][1:4])
    out = []
    for i, point in enumerate(points + [CHECK[phase]]):
        _, (b, n, _) = _shape(phase, point)
        top = max(b * n - 1, 1)
        out.append((point, (1 + (5 * i + 1) % top, 1 + (3 * i) % top)))
    return out


def _class_of(name: str):
    """0 or 1 for an op of routed expert 0 or 1 (the two traced classes), else None."""
    for k in (0, 1):
        if name == f"mlp.gathers.{k}" or name == f"mlp.combines.{k}" or name.startswith(f"mlp.experts.{k}."):
            return k
    return None


def _role(name: str) -> str:
    """An expert op's name without its expert number (the same role in both classes)."""
    for k in (0, 1):
        for head in (f"mlp.gathers.{k}", f"mlp.combines.{k}", f"mlp.experts.{k}."):
            if name.startswith(head):
                return head.replace(str(k), "*") + name[len(head):]
    return name


STRIPPED = ("host_views",)


def _strip(graph):
    """The combine ops without their input shapes and host view counts (see the module docstring); returns the
    graph and {role: {attr: value}} of what was taken out."""
    ops, taken = [], {}
    for op in graph.ops:
        if op.name.startswith("mlp.combines."):
            taken[_role(op.name)] = {k: op.attrs[k] for k in STRIPPED if k in op.attrs}
            op = op.scaled(input_shapes=(), attrs={k: v for k, v in op.attrs.items() if k not in STRIPPED})
        ops.append(op)
    graph.ops = ops
    return graph, taken


def _nums_per_op(op) -> int:
    """How many numbers `_flatten` stores for one op."""
    from types import SimpleNamespace

    from .template import _flatten
    return len(_flatten(SimpleNamespace(ops=[op], meta={}))[0])


def _align(graph, ref):
    """`graph` laid out as `ref` (the trace with the most ops): its ops renumbered as their match in `ref`, and
    each op of `ref` that `graph` lacks put in as `ref`'s (a placeholder whose numbers are not fitted). Only data
    moves may be missing: a copy that a tensor already laid out contiguously does not need (MLA's decode at one
    sequence transposes a dimension of size 1). Returns (graph, [indices of the missing ops]) or None."""
    ops, missing, j = [], [], 0
    for r in ref.ops:
        if j < len(graph.ops) and graph.ops[j].name == r.name and graph.ops[j].kind == r.kind:
            ops.append(graph.ops[j].scaled(index=r.index))
            j += 1
        elif r.kind == "memcpy":
            ops.append(r)
            missing.append(r.index)
        else:
            return None
    if j != len(graph.ops):
        return None
    graph.ops = ops
    return graph, missing


def build(spec, phase: str, trace_fn):
    """Fit a class template from traces (trace_fn(spec, phase, batch, seq_len, context, (ea, eb, 0, ...))); None
    when the step is not polynomial in (b, n, c, ea, eb). Copies that a regime of (b, n) does not make (`_align`)
    are left out of that regime's steps (`absent`), whose numbers are fitted apart (`regime_coef`)."""
    from .template import FORMAT, _flatten
    names = tuple(MONOMIALS[phase]) + CLASS_NAMES
    rows, values, structure, flags, class_flags, class_attrs = [], [], None, {}, {}, {}
    zeros = (0,) * (spec.moe.num_experts - 2)
    traced = []
    for point, (ea, eb) in _samples(phase):
        args, (b, n, c) = _shape(phase, point)
        traced.append(((b, n, c), (ea, eb), _strip(trace_fn(spec, phase, *args, (ea, eb) + zeros))))
    first = max((t[2][0] for t in traced), key=lambda g: len(g.ops))
    width = [_nums_per_op(op) for op in first.ops]
    starts = dict(zip((op.index for op in first.ops), np.cumsum([0] + width[:-1]).tolist()))
    span = dict(zip((op.index for op in first.ops), width))
    absent, masks = {}, []
    for (b, n, c), (ea, eb), (graph, taken) in traced:
        aligned = _align(graph, first)
        if aligned is None:
            return None
        graph, missing = aligned
        if absent.setdefault(regime(b, n), missing) != missing:
            return None
        if class_attrs.setdefault(regime(b, n), taken) != taken:
            return None
        nums, struct = _flatten(graph)
        valid = np.ones(len(nums), dtype=bool)
        for i in missing:
            valid[starts[i]:starts[i] + span[i]] = False
        masks.append(valid)
        dense = []
        for op in graph.ops:
            strided = [k.strided for k in op.kernels]
            k = _class_of(op.name)
            if k is None:
                dense.append(strided)
                continue
            dense.append(None)
            key = str(int((ea, eb)[k] > 1))
            if class_flags.setdefault(key, {}).setdefault(_role(op.name), strided) != strided:
                return None
        if flags.setdefault(regime(b, n), dense) != dense:
            return None
        if structure is None:
            structure = struct
        elif struct != structure or len(nums) != len(values[0]):
            return None
        rows.append([_mono(m, b, n, c) for m in names[:-2]] + [ea, eb])
        values.append(nums)
    if not any(_class_of(op.name) == 1 for op in first.ops):
        return None
    # a regime with copies of its own is a different graph: its numbers are fitted on its traces alone (with the
    # monomials its steps can tell apart), the other regimes' on theirs
    regs = [regime(b, n) for (b, n, _), _, _ in traced]
    apart = sorted(k for k, v in absent.items() if v)
    fits = {}
    for reg in apart + [None]:
        sel = [i for i, r in enumerate(regs) if (r == reg if reg else r not in apart)]
        coef = _exact_fit(np.array(rows, dtype=float)[sel], [values[i] for i in sel], [masks[i] for i in sel])
        if coef is None:
            return None
        fits[reg] = coef
    coef = fits.pop(None)
    return {
        "format": FORMAT, "phase": phase, "monomials": list(names), "structure": structure, "moe_classes": True,
        "coef": [[str(x) for x in col] for col in coef], "edges": [list(e) for e in first.graph.edges],
        "coef_float": [[float(x) for x in col] for col in coef], "strided": flags, "class_strided": class_flags,
        "class_attrs": class_attrs, "absent": {k: absent[k] for k in apart},
        "regime_coef": {k: [[float(x) for x in col] for col in v] for k, v in fits.items()},
        "layer_groups": {str(g): list(v) for g, v in first.layer_groups.items()},
        "meta_fixed": {k: v for k, v in first.meta.items() if not isinstance(v, (int, float)) or isinstance(v, bool)},
        "moe": [spec.moe.num_experts, spec.moe.top_k],
    }


def _exact_fit(A, values, masks):
    """Rational coefficients [monomials][values] fitted on all rows but the last and reproducing every row exactly
    (numbers a row's mask leaves out aside), or None. Monomials the rows cannot tell apart (all steps of one
    sequence have b = 1) keep coefficient 0: the first of each dependent set is fitted."""
    from fractions import Fraction
    use = []
    for j in range(A.shape[1]):
        if np.linalg.matrix_rank(A[:-1, use + [j]]) > len(use):
            use.append(j)
    if len(A) <= len(use):
        return None                      # no row left to check the fit on
    Y = np.array(values, dtype=float)
    M = np.array(masks, dtype=bool)
    coef = np.zeros((A.shape[1], Y.shape[1]))
    for pattern in {tuple(col) for col in M[:-1].T.tolist()}:      # numbers some traces do not have
        rows = np.array(pattern, dtype=bool)
        cols = (M[:-1] == rows[:, None]).all(axis=0)
        if not rows.any():
            continue                     # numbers no trace of these steps has (ops they do not run): left at 0
        fit = A[:-1][rows][:, use]
        if np.linalg.matrix_rank(fit) < len(use):
            return None
        coef[np.ix_(use, cols)] = np.linalg.lstsq(fit, Y[:-1][rows][:, cols], rcond=None)[0]
    coef = [[_snap(x) for x in col] for col in coef]
    # per value, its coefficients as ints where all are whole (exact, and far cheaper than Fractions: template.build)
    cols = [tuple(int(f) for f in col) if all(f.denominator == 1 for f in col) else col for col in zip(*coef)]
    for row, nums, valid in zip(A.tolist(), values, masks):   # every sample and the check trace, exactly
        row = [int(r) if float(r).is_integer() else Fraction(r) for r in row]
        for col, v, ok in zip(cols, nums, valid):
            if ok and sum(co * r for co, r in zip(col, row)) != v:
                return None
    return coef


class MoETemplate(Template):
    """A class template: `instantiate`/`instantiate_many` take the routing rule; the expert ops carry their
    count in attrs["experts"]."""

    def __init__(self, data: dict):
        super().__init__(data)
        self.experts, self.top_k = data["moe"]
        self.classes = None
        self.regime_coef = {k: np.array(v, dtype=float) for k, v in data.get("regime_coef", {}).items()}

    def coef_for(self, reg: str):
        """The coefficient matrix of regime `reg` of (b, n): its own where that regime is a graph of its own
        (`absent`), else the shared one."""
        return self.regime_coef.get(reg, self.coef)

    def _class_ops(self):
        if self.classes is None:
            if not hasattr(self, "plan"):
                self.plan, self.meta_at = self._plan()
            self.classes = {p[0]: (_class_of(p[1]), _role(p[1])) for p in self.plan}
        return self.classes

    def validate(self, phase: str):
        d = self.d
        if not d.get("moe_classes") or d.get("phase") != phase or \
                list(self.names) != list(MONOMIALS[phase]) + list(CLASS_NAMES):
            raise ValueError("not a MoE class template of this phase")
        self.plan, self.meta_at = self._plan()
        if self.coef.shape != (len(self.names), self.meta_at + len(d["structure"][-1][1])):
            raise ValueError("coefficients do not match the structure")
        if not np.isfinite(self.coef).all():
            raise ValueError("non-finite coefficient")
        if set(self.regime_coef) != set(d.get("absent", {})) or \
                any(v.shape != self.coef.shape or not np.isfinite(v).all() for v in self.regime_coef.values()):
            raise ValueError("regime coefficients do not match the structure")
        kernels = [len(entry[10]) for entry in self.plan]
        classes = self._class_ops()
        for flags in d["strided"].values():
            if len(flags) != len(kernels) or any(f is not None and len(f) != k for f, k in zip(flags, kernels)):
                raise ValueError("strided flags do not match the kernels")
        for by_role in d["class_strided"].values():
            if any(role not in by_role for k, role in classes.values() if k is not None):
                raise ValueError("an expert op has no strided flags")
        if set(d["class_attrs"]) != set(d["strided"]):
            raise ValueError("expert attributes do not match the regimes")
        indices = {p[0] for p in self.plan}
        if not set(d.get("absent", {})) <= set(d["strided"]) or \
                any(not set(v) <= indices for v in d.get("absent", {}).values()):
            raise ValueError("absent ops name unknown regimes or ops")
        _, (_, n_check, c) = _shape(phase, CHECK[phase])
        for flag in d["strided"]:
            b, n = (2 if flag[0] == "1" else 1), (n_check if flag[1] == "1" else 1)
            meta = self.instantiate(b, n, c).meta
            if (meta.get("batch"), meta.get("new_tokens"), meta.get("context")) != (b, n, c):
                raise ValueError("the template does not reproduce its own step shape")

    def absent(self, reg: str) -> set:
        """Indices of the ops that steps of regime `reg` of (b, n) do not run (copies of a layout that is already
        contiguous there: workloads/moe_template.py `_align`)."""
        return set(self.d.get("absent", {}).get(reg, ()))

    def block(self, b, n, c, routing: str = "even"):
        """Per step, a code of what fixes the graph's flags (regime of (b, n), expert rows > 1 per class); -1
        where the template does not cover the step. Steps of one code instantiate together."""
        b, n = np.asarray(b, dtype=float), np.asarray(n, dtype=float)
        (ra, _), (rb, _) = expert_classes(b * n, self.top_k, self.experts, routing)
        code = (b > 1) * 8 + (n > 1) * 4 + (ra > 1) * 2 + (rb > 1)
        t = b * n
        (_, ka), (_, kb) = expert_classes(t, self.top_k, self.experts, routing)
        whole = (t > 1) & (((ka > 0) & (ra >= t)) | ((kb > 0) & (rb >= t)))     # an expert takes every row
        ok = np.zeros(np.shape(code), dtype=bool)
        for k in np.unique(code).tolist():
            ok |= (code == k) & self._covers(k)
        return np.where(ok & ~whole, code, -1)

    def _covers(self, code: int) -> bool:
        cf = self.d["class_strided"]
        return f"{code >> 3 & 1}{code >> 2 & 1}" in self.d["strided"] and str(code >> 1 & 1) in cf and \
            str(code & 1) in cf

    def covers(self, b: int, n: int, routing: str = "even") -> bool:
        return bool(self.block(b, n, 0, routing) >= 0)

    def _flags(self, code: int):
        dense = self.d["strided"][f"{code >> 3 & 1}{code >> 2 & 1}"]
        by_class = (self.d["class_strided"][str(code >> 1 & 1)], self.d["class_strided"][str(code & 1)])
        classes = self._class_ops()
        return [f if classes[p[0]][0] is None else by_class[classes[p[0]][0]][classes[p[0]][1]]
                for f, p in zip(dense, self.plan)]

    def _matrix(self, b, n, c, routing):
        b, n, c = (np.asarray(x, dtype=float) for x in (b, n, c))
        (ra, ka), (rb, kb) = expert_classes(b * n, self.top_k, self.experts, routing)
        cols = {"1": np.ones_like(b), "n": n, "c": c, "n*n": n * n, "n*c": n * c, "b": b, "b*n": b * n, "b*c": b * c,
                "b*n*n": b * n * n, "b*n*c": b * n * c, "ea": ra, "eb": rb}
        return np.stack([np.broadcast_to(cols[m], np.shape(b)) for m in self.names], axis=-1), (ka, kb)

    def values(self, b: int, n: int, c: int, routing: str = "even"):
        mono, _ = self._matrix(b, n, c, routing)
        return mono @ self.coef_for(regime(b, n))

    def instantiate(self, b: int, n: int, c: int, only=None, raw=None, routing: str = "even"):
        """The step at (b, n, c) under `routing`; an expert class of no experts is left out."""
        code = int(self.block(b, n, c, routing))
        if code < 0:
            raise ValueError("the MoE template does not cover this step")
        mono, counts = self._matrix(b, n, c, routing)
        if raw is None:
            raw = mono @ self.coef_for(regime(b, n))
        graph = super().instantiate(b, n, c, only=only, raw=raw, flags=self._flags(code))
        classes = self._class_ops()
        extra = self.d["class_attrs"][regime(b, n)]
        absent = self.absent(regime(b, n))
        counts = [float(k) for k in counts]
        ops, kept = [], set()
        for op in graph.ops:
            if op.index in absent:
                continue
            k = classes[op.index][0]
            if k is not None:
                if counts[k] == 0:
                    continue
                count = int(counts[k]) if counts[k].is_integer() else counts[k]
                op = op.scaled(attrs=dict(op.attrs, experts=count, **extra.get(classes[op.index][1], {})))
            ops.append(op)
            kept.add(op.index)
        graph.ops = ops
        graph._edges = [e for e in graph._edges if e[0] in kept and e[1] in kept]
        graph.meta["routing"] = routing
        return graph

    def instantiate_many(self, b, n, c, routing: str = "even"):
        """One graph for many steps of one `block` code (arrays); expert ops carry their per-step counts (0:
        that class is empty at that step)."""
        codes = np.unique(self.block(b, n, c, routing))
        if len(codes) != 1 or codes[0] < 0:
            raise ValueError("instantiate_many needs steps of one covered block")
        mono, counts = self._matrix(b, n, c, routing)
        reg = regime(int(np.ravel(b)[0]), int(np.ravel(n)[0]))
        graph = super().instantiate_many(b, n, c, V=mono @ self.coef_for(reg), flags=self._flags(int(codes[0])))
        classes = self._class_ops()
        extra = self.d["class_attrs"][reg]
        absent = self.absent(reg)
        if absent:
            graph.ops = [op for op in graph.ops if op.index not in absent]
            graph._edges = [e for e in graph._edges if e[0] not in absent and e[1] not in absent]
        graph.ops = [op.scaled(attrs=dict(op.attrs, experts=np.asarray(counts[classes[op.index][0]], dtype=float),
                                          **extra.get(classes[op.index][1], {})))
                     if classes[op.index][0] is not None else op for op in graph.ops]
        graph.meta["routing"] = routing
        return graph
