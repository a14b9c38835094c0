"""The strategy registry and `map_graph`: a strategy string becomes a `TaskGraph`.

A strategy is a function `(task graph, system, option) -> task graph` registered with `@strategy`. `single`
places the traced step on one device; every other strategy transforms the task graph it is given. Each
declares which strategies it may follow (`after`): a combination outside those is refused with one line
before anything runs, never simulated wrong.
"""
from __future__ import annotations

from dataclasses import dataclass

from workloads.errors import HwsimError


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: object
    description: str
    fraction: bool = False             # the option is a fraction in [0, 1] (None when not given)
    after: tuple = ("single",)         # strategies this one may follow
    option_of: str = None              # an option of another strategy (mb of pp), not a transform itself


_STRATEGIES: dict = {}
# strategies apply in this order whatever order they are written in
ORDER = ("single", "tp", "cp", "ep", "pp", "mb", "df11", "offload", "offload-overlap", "dp", "dataflow", "lmhost")


def strategy(name: str, description: str, fraction: bool = False, after=("single",), option_of: str = None):
    def register(fn):
        _STRATEGIES[name] = Strategy(name, fn, description, fraction, tuple(after), option_of)
        return fn
    return register


def strategies() -> dict:
    return {name: s.description for name, s in sorted(_STRATEGIES.items())}


def describe(spec: str) -> list:
    """[(name, option)] of a strategy string, checked for known names and well-formed options."""
    if not isinstance(spec, str):
        raise HwsimError(f"mapping must be a strategy string such as 'single', 'tp:8' or 'tp:4,pp:2' "
                         f"(`hwsim mappings`), got {type(spec).__name__}")
    items = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, colon, degree = part.partition(":")
        if name not in _STRATEGIES:
            raise HwsimError(f"unknown mapping '{name}'; run `hwsim mappings` for the list (e.g. single, tp:8)")
        if colon and not degree.strip():
            raise HwsimError(f"mapping '{part}': nothing after ':'; give a value (e.g. "
                             f"{name}:{'0.5' if _STRATEGIES[name].fraction else 8}) or drop the ':'")
        if _STRATEGIES[name].fraction:
            items.append((name, _fraction(part, degree)))
            continue
        try:
            n = int(degree) if degree else 1
        except ValueError:
            raise HwsimError(f"mapping '{part}': the degree must be an integer, e.g. tp:8") from None
        if n <= 0:
            raise HwsimError(f"mapping '{part}': the degree must be positive")
        items.append((name, n))
    if not items:
        raise HwsimError("no mapping given; e.g. --mapping single or --mapping tp:8")
    return items


def _fraction(part: str, text: str):
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise HwsimError(f"mapping '{part}': the option must be a fraction from 0 to 1, e.g. offload:0.5") from None
    if not 0.0 <= value <= 1.0:
        raise HwsimError(f"mapping '{part}': the option must be a fraction from 0 to 1, e.g. offload:0.5")
    return value


def _rank(name: str) -> int:
    return ORDER.index(name) if name in ORDER else len(ORDER)


def map_graph(graph, system, spec: str = "single"):
    """Apply a strategy string (e.g. `tp:4,pp:2,dp:2`) to a traced step: the placed `TaskGraph`.
    Pipelines and expert parallelism re-build the step at other sizes from the spec and recipe the graph
    carries (`OpGraph.rebuilt`)."""
    items = sorted(describe(spec), key=lambda item: _rank(item[0]))
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise HwsimError(f"mapping '{spec}' names a strategy twice")
    if "single" in names and len(names) > 1:
        raise HwsimError(f"mapping '{spec}': 'single' cannot be combined with other strategies")
    options = dict(items)
    tg = _STRATEGIES["single"].fn(graph, system, 1)
    for name, option in items:
        s = _STRATEGIES[name]
        if name == "single":
            continue
        if s.option_of:
            if s.option_of not in options:
                raise HwsimError(f"{name}:{option} only applies with {s.option_of}:N")
            continue
        wrong = [a for a in tg.applied if a not in s.after]
        if wrong:
            raise HwsimError(f"mapping '{spec}': {name} cannot follow {wrong[0]} (not modelled); {name} combines "
                             f"with {', '.join(x for x in s.after if x != 'single') or 'nothing else'}")
        extra = {o: options[o] for o, t in _STRATEGIES.items() if t.option_of == name and o in options}
        tg = s.fn(tg, system, option, **extra)
        tg = tg.with_(applied=tg.applied + (name,))
    tg = tg.with_(strategy=",".join(f"{n}:{o}" if o not in (1, None) else n for n, o in items))
    for group in {l.group for l in tg.lanes.values() if l.kind == "device"}:
        used = sum(l.count for l in tg.lanes.values() if l.kind == "device" and l.group == group)
        available = system.devices[group].count
        if used > available:
            raise HwsimError(f"mapping '{spec}' needs {used} devices but system {system.id} has {available} "
                             f"'{group}' devices")
    return tg
