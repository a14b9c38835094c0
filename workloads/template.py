"""Graph templates: a traced graph as exact polynomials of (batch b, new tokens n, cached tokens c).

Every FLOP count, byte count, shape and attribute of a dense decoder's step is a polynomial in b, n and c
(matmul FLOPs ~ b*n, prefill attention ~ b*n^2, decode KV reads ~ b*(c+1), weights constant). A template
is fitted to a handful of real traces of one (model, phase), checked to reproduce another trace exactly,
and stored on disk, so later steps of any size are instantiated in microseconds without importing torch.
Templates are not used where the polynomial form breaks: MoE models (which experts run depends on the
token count) and contexts past a sliding window.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from .graph import Kernel, Op, OpGraph

FORMAT = 4                 # 3: the body is checked against a digest and the shape validated on load; 4: chunked
#                            prefill has batch-free n*n and n*c terms (HF masks), float coefficients stored
MONOMIALS = {   # (b, n, c) -> value, per phase (prefill has c = 0, decode has n = 1)
    "prefill": ("1", "n", "b", "b*n", "b*n*n"),
    "decode": ("1", "c", "b", "b*c"),
    "chunked_prefill": ("1", "n", "c", "n*n", "n*c", "b", "b*n", "b*c", "b*n*n", "b*n*c"),
}
SAMPLES = {
    "prefill": [(1, 16), (2, 16), (1, 40), (3, 24), (2, 56), (1, 72)],
    "decode": [(1, 16), (2, 16), (1, 48), (3, 40), (2, 72)],
    "chunked_prefill": [(1, 8, 16), (2, 8, 16), (1, 16, 8), (3, 8, 24), (2, 24, 16), (1, 8, 40), (3, 16, 32),
                        (2, 32, 24), (1, 24, 48), (3, 40, 8), (1, 32, 16), (2, 16, 40)],
}
CHECK = {"prefill": (3, 88), "decode": (4, 100), "chunked_prefill": (4, 48, 56)}
MAX_POSITIONS = 104        # the most positions any sample or check trace reaches (a window must not be shorter)


def _mono(name, b, n, c):
    return {"1": 1, "n": n, "c": c, "n*n": n * n, "n*c": n * c, "b": b, "b*n": b * n, "b*c": b * c, "b*n*n": b * n * n,
            "b*n*c": b * n * c}[name]


def _shape(phase, point):
    """(batch, seq_len, context) trace arguments and the (b, n, c) of a sample point."""
    if phase == "prefill":
        b, n = point
        return (b, n, 0), (b, n, 0)
    if phase == "decode":
        b, c = point
        return (b, c, 0), (b, 1, c)
    b, n, c = point
    return (b, n, c), (b, n, c)


def _flatten(graph) -> tuple:
    """The numbers of a graph in a fixed order, and its structure (which must not change with size)."""
    nums, structure = [], []
    for op in graph.ops:
        attrs_num = {k: v for k, v in op.attrs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        attrs_fixed = {k: v for k, v in op.attrs.items() if k not in attrs_num}
        structure.append([op.index, op.name, op.kind, op.group, op.dtype, [k.aten for k in op.kernels],
                          sorted(attrs_num), attrs_fixed, [len(s) for s in op.input_shapes],
                          [len(s) for s in op.output_shapes], sorted(op.bytes), sorted(op.reads),
                          [sorted(k.bytes) for k in op.kernels]])
        nums.append(op.flops)
        nums += [op.bytes[c] for c in sorted(op.bytes)] + [op.reads[c] for c in sorted(op.reads)]
        for k in op.kernels:
            nums.append(k.flops)
            nums += [k.bytes[c] for c in sorted(k.bytes)]
        nums += [attrs_num[k] for k in sorted(attrs_num)]
        for shapes in (op.input_shapes, op.output_shapes):
            for s in shapes:
                nums += list(s)
    meta_num = {k: v for k, v in graph.meta.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    nums += [meta_num[k] for k in sorted(meta_num)]
    structure.append(["meta", sorted(meta_num)])
    return nums, structure


def regime(b: int, n: int) -> str:
    """Whether a kernel's operands have gaps can differ between one and several rows (a slice of a single
    row is gap-free), so those flags are kept per regime of (batch > 1, new tokens > 1)."""
    return f"{int(b > 1)}{int(n > 1)}"


def _snap(x) -> Fraction:
    """`Fraction(x).limit_denominator(64)`, without its cost for the near-whole values most coefficients are: a
    whole r within 1/128 of x is the closest fraction of denominator <= 64 (any other is >= 1/64 from r), and such
    an x that is not r has a power-of-two denominator >= 256, so limit_denominator would return r as well."""
    x = float(x)
    if x == x and abs(x) != float("inf"):
        r = round(x)
        if abs(x - r) < 1 / 128:
            return Fraction(r)
    return Fraction(x).limit_denominator(64)


def build(spec, phase: str, trace_fn):
    """Fit a template from real traces; None when the graph is not polynomial in the step's size."""
    names = MONOMIALS[phase]
    rows, values, structure, first, flags = [], [], None, None, {}
    for point in SAMPLES[phase] + [CHECK[phase]]:
        args, (b, n, c) = _shape(phase, point)
        graph = trace_fn(spec, phase, *args)
        nums, struct = _flatten(graph)
        strided = [[k.strided for k in op.kernels] for op in graph.ops]
        if flags.setdefault(regime(b, n), strided) != strided:
            return None
        if structure is None:
            structure, first = struct, graph
        elif struct != structure or len(nums) != len(values[0]):
            return None
        rows.append([_mono(m, b, n, c) for m in names])
        values.append(nums)
    A = np.array(rows[:-1], dtype=float)
    Y = np.array(values[:-1], dtype=float)
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    coef = [[_snap(x) for x in col] for col in coef]
    # per value, its coefficients: as ints where all are whole (exact and ~50x faster than Fractions)
    cols = [tuple(int(f) for f in col) if all(f.denominator == 1 for f in col) else col for col in zip(*coef)]
    for row, nums in zip(rows, values):           # must reproduce every sample and the check trace exactly
        for col, v in zip(cols, nums):
            if sum(co * r for co, r in zip(col, row)) != v:
                return None
    return {
        "format": FORMAT, "phase": phase, "monomials": list(names), "structure": structure,
        "coef": [[str(x) for x in col] for col in coef], "edges": [list(e) for e in first.graph.edges],
        "coef_float": [[float(x) for x in col] for col in coef],      # the same, cheap to load
        "strided": flags,
        "layer_groups": {str(g): list(v) for g, v in first.layer_groups.items()},
        "meta_fixed": {k: v for k, v in first.meta.items() if not isinstance(v, (int, float)) or isinstance(v, bool)},
    }


def _numbers(raw) -> list:
    """Values as Python numbers: whole ones (counts, shapes, bytes) as ints."""
    rounded = np.rint(raw)
    whole = np.abs(raw - rounded) < 1e-6
    return [int(r) if w else x for x, r, w in zip(raw.tolist(), rounded.tolist(), whole.tolist())]


class Template:
    def __init__(self, data: dict):
        self.d = data
        self.coef = np.array(data["coef_float"], dtype=float) if "coef_float" in data else \
            np.array([[float(Fraction(x)) for x in col] for col in data["coef"]])
        self.names = data["monomials"]

    def _plan(self):
        """Where each op's numbers sit in the value vector (computed once per template)."""
        plan, pos = [], 0
        for index, name, kind, group, dtype, kernel_names, attr_names, attrs_fixed, n_in, n_out, classes, \
                read_classes, kernel_classes in self.d["structure"][:-1]:
            flops_at = pos
            pos += 1
            bytes_at, pos = pos, pos + len(classes)
            reads_at, pos = pos, pos + len(read_classes)
            kernels = []
            for aten, kcl in zip(kernel_names, kernel_classes):
                kernels.append((aten, pos, tuple(kcl)))
                pos += 1 + len(kcl)
            attrs_at, pos = pos, pos + len(attr_names)
            shapes_in = []
            for rank in n_in:
                shapes_in.append((pos, pos + rank))
                pos += rank
            shapes_out = []
            for rank in n_out:
                shapes_out.append((pos, pos + rank))
                pos += rank
            plan.append((index, name, kind, group, dtype, flops_at, tuple(classes), bytes_at, tuple(read_classes),
                         reads_at, kernels, tuple(attr_names), attrs_at, attrs_fixed, shapes_in, shapes_out))
        return plan, pos

    def validate(self, phase: str):
        """Raise ValueError (or KeyError/TypeError...) unless this is a well-formed template of `phase` whose
        instantiation reproduces its own step shape: numbers out of place would give absurd steps."""
        d = self.d
        if d.get("format") != FORMAT or d.get("phase") != phase or list(self.names) != list(MONOMIALS[phase]):
            raise ValueError("template of another format or phase")
        plan, meta_at = self._plan()
        meta_names = d["structure"][-1][1]
        if d["structure"][-1][0] != "meta" or self.coef.shape != (len(self.names), meta_at + len(meta_names)):
            raise ValueError("coefficients do not match the structure")
        if not np.isfinite(self.coef).all():
            raise ValueError("non-finite coefficient")
        kernels = [len(entry[10]) for entry in plan]
        for flags in d["strided"].values():
            if [len(f) for f in flags] != kernels:
                raise ValueError("strided flags do not match the kernels")
        groups = {int(g): [int(x) for x in v] for g, v in d["layer_groups"].items()}
        if any(entry[3] is not None and entry[3] not in groups for entry in plan):
            raise ValueError("an op names an unknown layer group")
        indices = {entry[0] for entry in plan}
        if any(len(e) != 2 or e[0] not in indices or e[1] not in indices for e in d["edges"]):
            raise ValueError("an edge names an unknown op")
        self.plan, self.meta_at = plan, meta_at
        _, (_, n_check, c) = _shape(phase, CHECK[phase])
        for flag in d["strided"]:
            if len(flag) != 2 or set(flag) - {"0", "1"} or (phase == "decode" and flag[1] == "1"):
                raise ValueError("unknown regime")
            b, n = (2 if flag[0] == "1" else 1), (n_check if flag[1] == "1" else 1)
            meta = self.instantiate(b, n, c).meta
            if (meta.get("batch"), meta.get("new_tokens"), meta.get("context")) != (b, n, c):
                raise ValueError("the template does not reproduce its own step shape")

    def covers(self, b: int, n: int) -> bool:
        return regime(b, n) in self.d["strided"]

    def values(self, b: int, n: int, c: int):
        """Every number of the step at (b, n, c) as one vector (op slots in `plan` order, then the meta)."""
        return np.array([_mono(m, b, n, c) for m in self.names], dtype=float) @ self.coef

    def slots(self) -> dict:
        """op index -> (first, end) of its numbers in the value vector."""
        if not hasattr(self, "plan"):
            self.plan, self.meta_at = self._plan()
        starts = [p[5] for p in self.plan] + [self.meta_at]
        return {p[0]: (a, z) for p, a, z in zip(self.plan, starts, starts[1:])}

    def instantiate(self, b: int, n: int, c: int, only=None, raw=None, flags=None) -> OpGraph:
        """The step at (b, n, c); `only` keeps just the ops with those indices (their numbers computed from
        `raw`, the value vector, when given). `flags`: the kernels' strided flags when the caller chose them."""
        if not hasattr(self, "plan"):
            self.plan, self.meta_at = self._plan()
        flags = self.d["strided"][regime(b, n)] if flags is None else flags
        if raw is None:
            raw = self.values(b, n, c)
        if only is None:
            v = _numbers(raw)
        else:                                   # convert just the numbers of the ops kept and the meta
            v = [0] * len(raw)
            spans = self.slots()
            for a, z in [spans[i] for i in only] + [(self.meta_at, len(raw))]:
                v[a:z] = _numbers(raw[a:z])
        groups = {int(g): tuple(x) for g, x in self.d["layer_groups"].items()}
        ops = []
        for (index, name, kind, group, dtype, flops_at, classes, bytes_at, read_classes, reads_at, kernels,
             attr_names, attrs_at, attrs_fixed, shapes_in, shapes_out), op_flags in zip(self.plan, flags):
            if only is not None and index not in only:
                continue
            attrs = dict(zip(attr_names, v[attrs_at:attrs_at + len(attr_names)]))
            attrs.update(attrs_fixed)
            ops.append(Op(
                index=index, name=name, kind=kind, group=group,
                repeat=len(groups[group]) if group is not None else 1,
                input_shapes=tuple(tuple(v[a:z]) for a, z in shapes_in),
                output_shapes=tuple(tuple(v[a:z]) for a, z in shapes_out), dtype=dtype, flops=v[flops_at],
                bytes=dict(zip(classes, v[bytes_at:bytes_at + len(classes)])),
                reads=dict(zip(read_classes, v[reads_at:reads_at + len(read_classes)])),
                kernels=tuple(Kernel(aten, v[at], dict(zip(kcl, v[at + 1:at + 1 + len(kcl)])), strided)
                              for (aten, at, kcl), strided in zip(kernels, op_flags)),
                attrs=attrs))
        meta = dict(self.d["meta_fixed"])
        names = self.d["structure"][-1][1]
        meta.update(zip(names, v[self.meta_at:self.meta_at + len(names)]))
        meta["transforms"] = list(meta.get("transforms", []))
        return OpGraph(ops=ops, layer_groups=groups, meta=meta, edges=[tuple(e) for e in self.d["edges"]])

    def instantiate_many(self, b, n, c, V=None, flags=None) -> OpGraph:
        """One graph for many steps of one regime: every number is an array with an entry per step
        (for sweeps; cost models that use numpy arithmetic evaluate all steps at once). Shapes are left out.
        `V`: the value matrix [steps, values] when the caller computed it."""
        if not hasattr(self, "plan"):
            self.plan, self.meta_at = self._plan()
        b, n, c = (np.asarray(x, dtype=float) for x in (b, n, c))
        codes = np.unique((b > 1).astype(int) * 2 + (n > 1).astype(int))
        regimes = {f"{k // 2}{k % 2}" for k in codes.tolist()}
        if len(regimes) != 1 or not self.covers(int(b[0]), int(n[0])):
            raise ValueError("instantiate_many needs steps of one covered regime")
        flags = self.d["strided"][regimes.pop()] if flags is None else flags
        cols = {"1": np.ones_like(b), "n": n, "c": c, "n*n": n * n, "n*c": n * c, "b": b, "b*n": b * n, "b*c": b * c,
                "b*n*n": b * n * n, "b*n*c": b * n * c}
        if V is None:
            V = np.stack([cols[m] for m in self.names], axis=1) @ self.coef      # [steps, values]
        groups = {int(g): tuple(x) for g, x in self.d["layer_groups"].items()}
        ops = []
        for (index, name, kind, group, dtype, flops_at, classes, bytes_at, read_classes, reads_at, kernels,
             attr_names, attrs_at, attrs_fixed, _, _), op_flags in zip(self.plan, flags):
            attrs = {k: V[:, attrs_at + i] for i, k in enumerate(attr_names)}
            attrs.update(attrs_fixed)
            ops.append(Op(
                index=index, name=name, kind=kind, group=group, repeat=len(groups[group]) if group is not None else 1,
                input_shapes=(), output_shapes=(), dtype=dtype, flops=V[:, flops_at],
                bytes={cl: V[:, bytes_at + i] for i, cl in enumerate(classes)},
                reads={cl: V[:, reads_at + i] for i, cl in enumerate(read_classes)},
                kernels=tuple(Kernel(aten, V[:, at], {cl: V[:, at + 1 + i] for i, cl in enumerate(kcl)}, strided)
                              for (aten, at, kcl), strided in zip(kernels, op_flags)),
                attrs=attrs))
        meta = dict(self.d["meta_fixed"])
        names = self.d["structure"][-1][1]
        meta.update({k: V[:, self.meta_at + i] for i, k in enumerate(names)})
        return OpGraph(ops=ops, layer_groups=groups, meta=meta, edges=[tuple(e) for e in self.d["edges"]])


def cache_dir() -> Path:
    return Path(os.environ.get("HWSIM_CACHE") or Path.home() / ".cache" / "hwsim") / "templates"


_CODE_DIGEST = None


def code_digest() -> str:
    """A digest of the code that produces traces, so a template from older code is never reused."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        h = hashlib.sha1()
        root = Path(__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
        _CODE_DIGEST = h.hexdigest()[:16]
    return _CODE_DIGEST


def key(spec, phase: str, version: str, tag: str = "") -> str:
    """`tag`: another kind of template of the same model and phase ("moe": workloads/moe_template.py)."""
    return hashlib.sha1(f"{FORMAT}|{version}|{code_digest()}|{phase}{tag}|{spec!r}".encode()).hexdigest()[:20]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load(spec, phase: str, version: str, tag: str = "", make=None):
    """The cached template, or None when there is none or the file is not one this code wrote for this key
    (edited, truncated, swapped with another key's, or of the wrong shape): the caller then rebuilds it. `make`:
    the template class a tagged kind is read into (default `Template`; "moe": moe_template.MoETemplate)."""
    k = key(spec, phase, version, tag)
    try:
        doc = json.loads((cache_dir() / f"{k}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("key") != k \
                or not isinstance(doc.get("body"), str) or doc.get("digest") != _digest(doc["body"]):
            return None
        tpl = (make or Template)(json.loads(doc["body"]))
        tpl.validate(phase)
        return tpl
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, ZeroDivisionError):
        return None


def save(spec, phase: str, version: str, data: dict, tag: str = "") -> bool:
    """Best effort (an unwritable cache only costs speed); True when the template is on disk."""
    k = key(spec, phase, version, tag)
    body = json.dumps(data, sort_keys=True)
    doc = {"format": FORMAT, "key": k, "digest": _digest(body), "body": body}
    tmp = None
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, folder / f"{k}.json")
        return True
    except OSError:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        return False


def is_saved(spec, phase: str, version: str) -> bool:
    return (cache_dir() / f"{key(spec, phase, version)}.json").is_file()


def cache_problem():
    """Why templates cannot be saved (a one-line reason), or None when the cache folder takes files."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return f"the template cache {folder} does not take files ({exc.strerror or exc})"
    return None
