"""The strategy registry and `MappedGraph`, the hand-over from mapping to the simulator."""
from __future__ import annotations

from dataclasses import dataclass, field

from workloads.errors import HwsimError

_STRATEGIES: dict = {}


@dataclass
class Collective:
    after: int                 # op index it follows
    kind: str                  # all_reduce_ring, all_gather, ...
    bytes: float               # buffer per participant
    participants: int
    link: str                  # system link name


@dataclass
class MappedGraph:
    graph: object              # the per-device graph (all devices of a symmetric group run the same shard)
    group: str                 # system device group
    devices: int               # devices running it
    strategy: str
    collectives: list = field(default_factory=list)


def strategy(name: str, description: str):
    def register(fn):
        _STRATEGIES[name] = (fn, description)
        return fn
    return register


def strategies() -> dict:
    return {name: desc for name, (_, desc) in sorted(_STRATEGIES.items())}


def describe(spec: str) -> list:
    items = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, degree = part.partition(":")
        if name not in _STRATEGIES:
            raise HwsimError(f"unknown mapping '{name}'; run `hwsim mappings` for the list (e.g. single, tp:8)")
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


def map_graph(graph, system, spec: str) -> MappedGraph:
    items = describe(spec)
    if len(items) > 1:
        raise HwsimError(f"mapping '{spec}': combining strategies is not supported yet; use one of them")
    name, degree = items[0]
    fn, _ = _STRATEGIES[name]
    return fn(graph, system, degree)
