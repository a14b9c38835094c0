"""The strategy registry and `MappedGraph`, the hand-over from mapping to the simulator."""
from __future__ import annotations

from dataclasses import dataclass, field

from workloads.errors import HwsimError

_STRATEGIES: dict = {}
_FRACTIONAL: set = set()       # strategies whose option is a fraction in [0, 1] (None when not given)


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
    stages: int = 1            # pipeline stages (each a TP group)
    microbatches: int = 1
    replicas: int = 1          # data-parallel copies of the whole pipeline
    micro_graph: object = None # the per-device graph at the micro-batch size (pipeline)
    offload_link: str = None   # weights stream from host memory over this link (offload)
    weight_ratio: float = 1.0  # stored/transferred weight size relative to the traced dtype (df11)
    residency: object = None   # which weights stay on the device when offloading (mapping.residency.Residency)
    offload_overlap: bool = False   # transfers overlap compute (pinned, double-buffered) instead of Accelerate's sync copies
    ep: int = 1                # expert-parallel degree (MoE)
    expert_shard: tuple = ()
    dataflow: object = None    # FPGA layer-by-layer streaming plan (mapping `dataflow`)

    @property
    def total_devices(self) -> int:
        return self.devices * self.stages * self.replicas


def strategy(name: str, description: str, fraction: bool = False):
    def register(fn):
        _STRATEGIES[name] = (fn, description)
        if fraction:
            _FRACTIONAL.add(name)
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
        if name in _FRACTIONAL:
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


ORDER = ("single", "tp", "ep", "pp", "mb", "df11", "offload", "offload-overlap", "dp", "dataflow", "lmhost")     # strategies apply in this order


def map_graph(graph, system, spec: str, rebuild=None) -> MappedGraph:
    """Apply a strategy string (e.g. `tp:4,pp:2,dp:2`). `rebuild(batch)` re-traces the workload at another
    batch size (pipeline micro-batches); without it, pipelines need one micro-batch."""
    items = sorted(describe(spec), key=lambda item: ORDER.index(item[0]) if item[0] in ORDER else len(ORDER))
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise HwsimError(f"mapping '{spec}' names a strategy twice")
    if "single" in names and len(names) > 1:
        raise HwsimError(f"mapping '{spec}': 'single' cannot be combined with other strategies")
    mapped = None
    for name, degree in items:
        if mapped is None and name not in ("single", "tp"):
            mapped = _STRATEGIES["single"][0](graph, system, 1)
        mapped = _STRATEGIES[name][0](graph if mapped is None else mapped, system, degree)
    if mapped.ep > 1:
        from .expert_parallel import shard
        ep = mapped
        mapped = shard(mapped, system, rebuild)
        mapped.replicas, mapped.stages = ep.replicas, ep.stages
    group = mapped.group
    available = system.devices[group].count
    if mapped.total_devices > available:
        raise HwsimError(f"mapping '{spec}' needs {mapped.total_devices} devices but system {system.id} has "
                         f"{available} '{group}' devices")
    if mapped.stages > 1:
        batch = graph.meta["batch"]
        if batch % mapped.microbatches:
            raise HwsimError(f"batch {batch} does not split into {mapped.microbatches} micro-batches; "
                             f"use a batch that {mapped.microbatches} divides")
        if rebuild is None and mapped.microbatches > 1:
            raise HwsimError("pipeline micro-batches need the workload to be re-traced; use the CLI or pass rebuild=")
        small = rebuild(batch // mapped.microbatches) if mapped.microbatches > 1 else graph
        sub = _STRATEGIES["tp"][0](small, system, mapped.devices) if mapped.devices > 1 else \
            _STRATEGIES["single"][0](small, system, 1)
        mapped.micro_graph = sub.graph
        mapped.collectives = sub.collectives
    return mapped
