"""A design-space study declared as data: axes, constraints, objectives.

A study is a small Python file that defines `study = Study(...)` (or YAML with the same fields):

    from sim.dse import Study
    study = Study(
        name="hbm-vs-compute",
        axes={"model": ["llama-3.1-70b"], "device": ["h100"],
              "hw.hbm.bandwidth": ["3.35TB/s", "6.7TB/s"], "hw.sm_count": [66, 132],
              "phase": ["decode"], "batch": [1, 8, 64], "seq_len": [2048]},
        constraints=["fits", "latency_s <= 0.1"],
        objectives={"latency_s": "min", "usd_per_mtoken": "min"})

Axes (the grid is their cartesian product, the last axis varying fastest; a point's id is its position):
  model, device (a preset or PRESET+KEY=VALUE...), phase (prefill | decode | chunked_prefill | serve), batch,
  seq_len, context, output_len (serve), dtype, quant, kv_dtype, profile, host (a host preset or probe-host
  file) and host_speed (its speed factor: what a faster CPU buys) for host-issued profiles, system + mapping (multi-device,
  through the discrete-event engine), and `hw.KEY` axes: overrides applied to the device (`hw.hbm.bandwidth`,
  `hw.sm_count`, `hw.tdp` for a power-cap axis ... see hw_models/overrides.py).
`zip=[("seq_len", "context")]` makes axes vary together (equal lengths) instead of crossing.
`where(point) -> bool` drops combinations before they are evaluated (they are recorded as skipped).
Constraints: "fits" or "COLUMN OP NUMBER" (OP one of <=, <, >=, >, ==) or a callable(DataFrame) -> bool mask;
points that break one stay in the results with feasible = False and are kept off the Pareto front.
Objectives: {column: "min" | "max"}, any result column (see evaluate.RESULT_COLUMNS).
"""
from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from workloads.errors import HwsimError

from .axes import DEFAULTS, INT_AXES, KNOWN_AXES  # noqa: F401  (also read from here)
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass
class Range:
    """A continuous (or integer) axis for search: Optuna samples it; a grid takes `steps` points on it."""
    low: float
    high: float
    log: bool = False
    integer: bool = False
    steps: int = 5

    def grid(self) -> list:
        if self.log:
            vals = np.geomspace(self.low, self.high, self.steps)
        else:
            vals = np.linspace(self.low, self.high, self.steps)
        return sorted({int(round(v)) for v in vals}) if self.integer else [float(v) for v in vals]


@dataclass
class Study:
    name: str
    axes: Dict[str, Union[Sequence, Range]]
    constraints: List[Union[str, Callable]] = field(default_factory=lambda: ["fits"])
    objectives: Dict[str, str] = field(default_factory=lambda: {"latency_s": "min", "energy_j": "min"})
    zip: List[Tuple[str, ...]] = field(default_factory=list)
    where: Optional[Callable] = None
    description: str = ""
    findings: Optional[Callable] = None  # findings(results DataFrame) -> text: the study's conclusions vs its paper
    chunk_size: int = 0                # points per chunk (0: chosen from the grid's shape)
    source: str = ""                   # the study file's text (set by load_study; shipped to Dask workers)
    path: str = ""

    def __post_init__(self):
        self.validate()

    # --- validation ----------------------------------------------------------------------------------
    def validate(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name or ""):
            raise HwsimError(f"study name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not isinstance(self.axes, dict) or not self.axes:
            raise HwsimError(f"study {self.name}: axes must be a non-empty mapping of axis name to values")
        for name, values in self.axes.items():
            if name not in KNOWN_AXES and not name.startswith("hw."):
                raise HwsimError(f"study {self.name}: unknown axis '{name}'; use {', '.join(KNOWN_AXES)} or hw.KEY "
                                 f"(a device override)")
            if isinstance(values, Range):
                for field_name in ("low", "high"):
                    v = getattr(values, field_name)
                    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                        raise HwsimError(f"study {self.name}: axis {name}: Range {field_name} must be a number, got "
                                         f"{v!r}")
                if isinstance(values.steps, bool) or not isinstance(values.steps, (int, np.integer)) or values.steps < 1:
                    raise HwsimError(f"study {self.name}: axis {name}: Range steps must be a whole number of at least "
                                     f"1, got {values.steps!r}")
                if not (self.low_ok(values)):
                    raise HwsimError(f"study {self.name}: axis {name}: Range needs 0 < low < high (got "
                                     f"{values.low}, {values.high})")
                continue
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not len(values):
                raise HwsimError(f"study {self.name}: axis {name} must be a non-empty list of values")
            if name in INT_AXES and any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0
                                        for v in values):
                raise HwsimError(f"study {self.name}: axis {name} takes non-negative whole numbers, got {list(values)!r}")
        if "model" not in self.axes:
            raise HwsimError(f"study {self.name}: give a 'model' axis")
        if "device" not in self.axes and "system" not in self.axes:
            raise HwsimError(f"study {self.name}: give a 'device' (or 'system') axis")
        if "system" in self.axes and "mapping" not in self.axes:
            raise HwsimError(f"study {self.name}: a 'system' axis needs a 'mapping' axis (e.g. ['tp:8'])")
        if isinstance(self.zip, (str, bytes)) or not isinstance(self.zip, (list, tuple)) or \
                any(isinstance(g, (str, bytes)) or not isinstance(g, (list, tuple)) for g in self.zip):
            raise HwsimError(f"study {self.name}: zip must be a list of axis groups, e.g. [[seq_len, context]], "
                             f"got {self.zip!r}")
        for group in self.zip:
            missing = [a for a in group if a not in self.axes]
            if missing:
                raise HwsimError(f"study {self.name}: zip names axes that are not declared: {', '.join(missing)}")
            if len({len(self.axis_values(a)) for a in group}) != 1:
                raise HwsimError(f"study {self.name}: zipped axes {', '.join(group)} must have equal lengths")
        seen = [a for g in self.zip for a in g]
        if len(seen) != len(set(seen)):
            raise HwsimError(f"study {self.name}: an axis appears in two zip groups")
        if isinstance(self.constraints, (str, bytes)) or not isinstance(self.constraints, (list, tuple)):
            raise HwsimError(f"study {self.name}: constraints must be a list, e.g. ['fits', 'latency_s <= 0.05'], "
                             f"got {self.constraints!r}")
        for c in self.constraints:
            if callable(c):
                continue
            if not isinstance(c, str) or (c.strip() != "fits" and not _CONSTRAINT.match(c)):
                raise HwsimError(f"study {self.name}: constraint {c!r} must be 'fits', 'COLUMN OP NUMBER' "
                                 f"(e.g. 'latency_s <= 0.05') or a function of the results table")
        from .evaluate import RESULT_COLUMNS
        if not isinstance(self.objectives, dict) or not self.objectives:
            raise HwsimError(f"study {self.name}: objectives must map result columns to 'min' or 'max'")
        for col, sense in self.objectives.items():
            if col not in RESULT_COLUMNS:
                raise HwsimError(f"study {self.name}: objective '{col}' is not a result column; use one of "
                                 f"{', '.join(RESULT_COLUMNS)}")
            if sense not in ("min", "max"):
                raise HwsimError(f"study {self.name}: objective {col} must be 'min' or 'max', got {sense!r}")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 0:
            raise HwsimError(f"study {self.name}: chunk_size must be a non-negative whole number")

    def check_inputs(self):
        """Every model, device, override, system, mapping and format the grid names must exist: a typo is one
        line before anything is computed or written (points that merely fail, e.g. a dtype a device lacks, are
        recorded per point instead)."""
        from hw_models import load_device
        from hw_models.stacks import STACKS
        from workloads.capture import PHASES, load_spec
        from workloads.transforms import COMPUTE_DTYPES, KV_DTYPES, scheme

        def check(axis, value, fn):
            try:
                fn(value)
            except HwsimError as exc:
                raise HwsimError(f"study {self.name}: axis {axis}: {exc}") from None
        for axis, fn in (("model", load_spec), ("device", load_device), ("quant", scheme)):
            if axis in self.axes and not isinstance(self.axes[axis], Range):
                for v in self.axis_values(axis):
                    check(axis, str(v), fn)
        if "system" in self.axes:
            from hw_models.systems import load_system
            for v in self.axis_values("system"):
                check("system", str(v), load_system)
        if "mapping" in self.axes:
            from mapping.registry import describe
            for v in self.axis_values("mapping"):
                check("mapping", str(v), describe)
        allowed = {"phase": PHASES + ("serve",), "dtype": COMPUTE_DTYPES, "kv_dtype": KV_DTYPES + ("",),
                   "profile": tuple(STACKS)}
        for axis, values in allowed.items():
            if axis in self.axes:
                bad = [v for v in self.axis_values(axis) if v not in values]
                if bad:
                    raise HwsimError(f"study {self.name}: axis {axis}: {bad[0]!r} is not one of "
                                     f"{', '.join(v for v in values if v)}")
        bases = [str(v) for v in self.axis_values("device")] if "device" in self.axes else \
            [str(v) for v in self.axis_values("system")]
        for axis in (a for a in self.axes if a.startswith("hw.")):
            for v in self.axis_values(axis):
                for base in bases:
                    text = f"{base}+{axis[3:]}={v}"
                    if "system" in self.axes:
                        from hw_models.systems import load_system
                        check(axis, text, load_system)
                    else:
                        check(axis, text, load_device)

    @staticmethod
    def low_ok(r: Range) -> bool:
        return 0 < r.low < r.high and math.isfinite(r.high)

    # --- the grid --------------------------------------------------------------------------------------
    def axis_values(self, name) -> list:
        v = self.axes[name]
        return v.grid() if isinstance(v, Range) else list(v)

    def dims(self) -> List[Tuple[Tuple[str, ...], list]]:
        """The grid's dimensions in order: (axis names, list of value tuples); zipped axes share one."""
        out, done = [], set()
        for name in self.axes:
            if name in done:
                continue
            group = next((tuple(g) for g in self.zip if name in g), (name,))
            cols = [self.axis_values(a) for a in group]
            out.append((group, list(zip(*cols))))
            done.update(group)
        return out

    @property
    def shape(self) -> tuple:
        return tuple(len(v) for _, v in self.dims())

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def points(self, start: int, stop: int):
        """Points start..stop-1 as a DataFrame (index = point id), axes as columns, in grid order."""
        import pandas as pd
        ids = np.arange(start, min(stop, self.size), dtype=np.int64)
        idx = np.unravel_index(ids, self.shape) if len(ids) else [np.array([], int)] * len(self.shape)
        cols = {}
        for (group, values), at in zip(self.dims(), idx):
            for j, name in enumerate(group):
                cols[name] = _column([v[j] for v in values])[at]
        df = pd.DataFrame(cols, index=pd.Index(ids, name="point"))
        return df

    def chunk(self) -> int:
        """Points per chunk: the study's, else whole fastest-varying axes up to at least 4,096 points (at most
        65,536): a chunk then holds whole (batch x length) blocks that evaluate as arrays."""
        if self.chunk_size:
            return self.chunk_size
        block = 1
        for n in reversed(self.shape):
            if block >= 4096:
                break
            block *= n
        return int(min(block, 65536))

    # --- constraints -------------------------------------------------------------------------------
    def feasible(self, df):
        ok = np.array(df["status"] == "ok", dtype=bool)
        if isinstance(self.constraints, (str, bytes)) or not isinstance(self.constraints, (list, tuple)):
            raise HwsimError(f"study {self.name}: constraints must be a list, e.g. ['fits', 'latency_s <= 0.05'], "
                             f"got {self.constraints!r}")
        for c in self.constraints:
            if callable(c):
                mask = np.asarray(c(df), dtype=bool)
            elif c.strip() == "fits":
                mask = np.asarray(df["fits"].fillna(False), dtype=bool)
            else:
                col, op, num = _CONSTRAINT.match(c).groups()
                if col not in df:
                    raise HwsimError(f"study {self.name}: constraint {c!r} names no result column")
                mask = np.asarray(_OPS[op](df[col].astype(float), float(num)).fillna(False), dtype=bool)
            ok &= mask
        return ok

    # --- identity ----------------------------------------------------------------------------------
    def digest(self) -> str:
        """What must match for a resumed run: the grid, chunking and the hwsim version (not constraints or
        objectives, which apply after evaluation)."""
        from .. import __version__
        desc = {"axes": {k: (v.__dict__ if isinstance(v, Range) else [str(x) for x in v]) for k, v in self.axes.items()},
                "zip": [list(g) for g in self.zip], "chunk": self.chunk(), "version": __version__,
                "where": self.source if self.where else ""}
        return hashlib.sha1(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description, "points": self.size,
                "axes": {k: (f"Range({v.low}, {v.high}, log={v.log})" if isinstance(v, Range) else
                             [str(x) for x in v]) for k, v in self.axes.items()},
                "zip": [list(g) for g in self.zip],
                "constraints": [c if isinstance(c, str) else getattr(c, "__name__", "function") for c in self.constraints],
                "objectives": dict(self.objectives)}


def _column(values: list) -> np.ndarray:
    """An axis as an array: integers, floats, or text (mixed or other values are written as text, so the
    results table has one type per column)."""
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in values):
        return np.asarray(values, dtype=float)
    return np.asarray([str(x) for x in values], dtype=object)


# --- loading ------------------------------------------------------------------------------------------
def _from_mapping(raw: dict, where: str) -> Study:
    if not isinstance(raw, dict):
        raise HwsimError(f"{where}: a study file must be a mapping with name, axes, constraints, objectives")
    allowed = {"name", "axes", "constraints", "objectives", "zip", "description", "chunk_size"}
    extra = set(raw) - allowed
    if extra:
        raise HwsimError(f"{where}: unknown study field(s) {', '.join(sorted(extra))}; use {', '.join(sorted(allowed))}")
    if not isinstance(raw.get("axes") or {}, dict):
        raise HwsimError(f"{where}: axes must be a mapping of axis name to a list of values")
    axes = {}
    for k, v in (raw.get("axes") or {}).items():
        if isinstance(v, dict) and {"low", "high"} <= set(v):
            v = dict(v)
            for bound in ("low", "high"):        # YAML 1.1 reads 1e12 (no dot, no sign) as text
                if isinstance(v[bound], str):
                    try:
                        v[bound] = float(v[bound])
                    except ValueError:
                        pass                     # Study.validate names it
            try:
                v = Range(**v)
            except TypeError:
                raise HwsimError(f"{where}: axis {k}: a range takes low, high, log, integer, steps") from None
        axes[k] = v
    kw = {k: raw[k] for k in ("constraints", "objectives", "description", "chunk_size") if k in raw}
    zipped = raw.get("zip") or []
    if isinstance(zipped, list) and all(isinstance(g, list) for g in zipped):
        zipped = [tuple(g) for g in zipped]        # else Study.validate says what a zip must be
    return Study(name=raw.get("name") or Path(where).stem, axes=axes, zip=zipped, **kw)


_LOADED: dict = {}


def study_from_source(text: str, path: str = "<study>") -> Study:
    """A study from a file's text (Python or YAML); cached by content (workers load each study once)."""
    key = hashlib.sha1((path + "\0" + text).encode()).hexdigest()
    if key in _LOADED:
        return _LOADED[key]
    if path.endswith((".yaml", ".yml")):
        import yaml
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise HwsimError(f"{path}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
        study = _from_mapping(raw, path)
    else:
        scope = {"__name__": "hwsim_study", "__file__": path}
        try:
            code = compile(text, path, "exec")
            exec(code, scope)                     # noqa: S102 - the user's own study file
        except HwsimError:
            raise
        except SyntaxError as exc:
            raise HwsimError(f"{path}: syntax error at line {exc.lineno}: {exc.msg}") from None
        except Exception as exc:                  # noqa: BLE001 - a study file's own bug, reported in one line
            raise HwsimError(f"{path}: the study file failed: {type(exc).__name__}: {exc}") from None
        study = scope.get("study")
        if callable(study) and not isinstance(study, Study):
            study = study()
        if isinstance(study, dict):
            study = _from_mapping(study, path)
        if not isinstance(study, Study):
            raise HwsimError(f"{path}: define `study = Study(...)` (from sim.dse import Study)")
    study.source, study.path = text, path
    _LOADED[key] = study
    return study


def load_study(path: str) -> Study:
    p = Path(path)
    if p.is_dir():
        raise HwsimError(f"study '{path}' is a folder; pass a .py or .yaml study file (see studies/)")
    if not p.is_file():
        raise HwsimError(f"study file '{path}' not found; pass a .py or .yaml study (see studies/)")
    if p.suffix not in (".py", ".yaml", ".yml"):
        raise HwsimError(f"study file '{path}' must be .py or .yaml")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HwsimError(f"cannot read study file {path}: {exc}") from None
    return study_from_source(text, str(p))
