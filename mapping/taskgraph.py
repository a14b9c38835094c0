"""`TaskGraph`: the one output of every mapping — a placed, untimed execution graph.

A node is work placed on a *lane* (a device lane, which stands for `count` identical devices running the same
program in lockstep, or a link lane), with the nodes it waits for and a repeat count (a decoder layer kind is
placed once and replayed `repeat` times back to back). Node kinds:
  op          ops of a device program (a layer's op, or a block of ops run back to back), timed by the device's
              cost and power models at the program's operating point
  segment     FPGA dataflow: ops whose off-chip streams overlap their compute by the segment's `overlap` rule
  collective  a collective (all-reduce, all-gather, all-to-all ...) of `participants` devices on a link lane
  transfer    bytes over a link (host->device weight copies, stage-to-stage activations, a hand-over to a host)
  decompress  weights decompressed on a device before they run (DFloat11)
  fixed       a host step of a sourced duration (`seconds`), e.g. a driver's per-token work
  task        a heterogeneous-schedule task holding one or more named resources for a duration its builder
              took from the hardware models (NeuPIMs, Lamina, mllm-NPU schedules)
  host        the host issuing the next node (its program ops or collective), a sync, or generate()'s per-step
              work (`rate` "sync" / "step"), on the host lane of an eager stack (mapping/host_issue.py), timed
              by the host model
The graph also says what each device holds in memory (`resident_bytes`), so fit checks need no timing.
Nothing here times anything: `sim.engine` does, through `hw_models`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from workloads.errors import HwsimError

NODE_KINDS = ("op", "segment", "collective", "transfer", "decompress", "fixed", "task", "host")


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    lane: str                        # the lane (resource) it holds while it runs
    deps: tuple = ()                 # ids of nodes that must finish first
    repeat: int = 1                  # runs back to back this many times (a replayed layer kind)
    program: Optional[str] = None    # op/segment/decompress: the device program whose ops it runs
    ops: tuple = ()                  # op indices into the program's graph
    nbytes: float = 0.0              # collective buffer per participant, transfer or decompressed bytes
    collective: Optional[str] = None # all_reduce_ring, all_gather, all_to_all ...
    participants: int = 1
    link: Optional[str] = None       # the system link a collective or transfer uses
    rate: str = "bandwidth"          # transfer: the link's "bandwidth", or "pageable" (unpinned host copies)
    overlap: object = True           # segment: True (streams hide behind compute), False (they add), "serial"
    seconds: float = 0.0             # fixed / task: duration
    holds: tuple = ()                # task: further resources held together with the lane
    priority: float = 0.0            # among ready nodes waiting for one lane, lower goes first
    layer: Optional[int] = None      # first layer it belongs to (traces)
    block: Optional[int] = None      # the layer group (kind) it belongs to, for unrolling replayed layers
    label: Optional[str] = None      # display name (traces)


@dataclass(frozen=True)
class Lane:
    kind: str                        # "device", "link", "host" (the CPU issuing an eager stack's work), or
    #                                  "resource" (a named resource of a heterogeneous schedule)
    group: Optional[str] = None      # device lanes: the system device group whose models time its nodes
    members: tuple = ()              # device labels of one replica it stands for (reports)
    count: int = 1                   # devices (device lane) or link groups (link lane) over all replicas
    link: Optional[str] = None       # link lanes: the system link
    idle_power: bool = True          # the device's static power counts while the lane waits (a host's does not)


@dataclass(frozen=True)
class Program:
    group: str                       # system device group whose device runs it
    graph: object                    # the op (shard) graph, an OpGraph
    params: Optional[dict] = None    # cost-model parameters (an FPGA design)
    dvfs: bool = True                # False: a fixed clock (an FPGA bitstream, a host CPU): no power cap


@dataclass(frozen=True)
class TaskGraph:
    nodes: tuple
    lanes: dict                      # lane name -> Lane
    programs: dict                   # program name -> Program
    source: object                   # the traced step before placement (OpGraph: its spec and recipe)
    strategy: str = "single"         # the strategy string applied
    applied: tuple = ()              # strategy names in the order they were applied
    resident_bytes: dict = field(default_factory=dict)   # device group -> bytes each of its devices holds
    tp: int = 1                      # tensor-parallel degree of each device program
    info: dict = field(default_factory=dict)             # placement facts for reports (residency, plans)

    @property
    def devices(self) -> int:
        return sum(l.count for l in self.lanes.values() if l.kind == "device")

    @property
    def graph(self):
        """The main device program's graph (the shard one device runs)."""
        return self.programs[self.main].graph

    @property
    def collectives(self) -> list:
        """The collectives of the placement, each with the op it follows (`Collective`), for callers that cost
        a tensor-parallel step themselves (the serving simulator's step tables). Each layer kind's once."""
        by_id = {n.id: n for n in self.nodes}
        out = []
        for n in self.nodes:
            if n.kind == "collective":
                prev = by_id.get(n.deps[0]) if n.deps else None
                while prev is not None and prev.kind == "collective":
                    prev = by_id.get(prev.deps[0]) if prev.deps else None
                if prev is not None and prev.ops:
                    out.append(Collective(prev.ops[-1], n.collective, n.nbytes, n.participants, n.link))
        return out

    @property
    def residency(self):
        """Which weights stay on the device (offload mappings; mapping.residency.Residency), else None."""
        return self.info.get("residency")

    @property
    def dataflow(self):
        """The FPGA dataflow plan (mapping `dataflow`; mapping.fpga_dataflow.DataflowPlan), else None."""
        return self.info.get("dataflow")

    @property
    def main(self) -> str:
        return next(iter(self.programs))

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def is_chain(self) -> bool:
        """Every node waits for the one before it and nothing else: no two nodes can overlap."""
        prev = None
        for n in self.nodes:
            if n.deps != ((prev,) if prev else ()):
                return False
            prev = n.id
        return True

    def with_(self, **changes) -> "TaskGraph":
        return replace(self, **changes)

    def unrolled(self) -> "TaskGraph":
        """The same graph with replayed layer kinds written out layer by layer in model order (for traces and
        exact power timelines). Only chains are unrolled; other graphs already name each run."""
        if not self.is_chain() or all(n.repeat == 1 for n in self.nodes):
            return self
        graph = self.programs[self.main].graph
        layered = [i for i, n in enumerate(self.nodes) if n.block is not None]
        if not layered:
            return self
        lo, hi = layered[0], layered[-1]
        by_block = {}
        for n in self.nodes[lo:hi + 1]:
            by_block.setdefault(n.block, []).append(n)
        order = sorted((layer, g) for g, ids in graph.layer_groups.items() for layer in ids if g in by_block)
        body = [replace(n, id=f"{n.id}@{layer}", repeat=1, layer=layer) for layer, g in order for n in by_block[g]]
        return self.with_(nodes=_chained(list(self.nodes[:lo]) + body + list(self.nodes[hi + 1:])))


def _chained(nodes: list) -> tuple:
    out, prev = [], None
    for n in nodes:
        out.append(replace(n, deps=(prev,) if prev else ()))
        prev = n.id
    return tuple(out)


def layer_order(graph):
    """(pre, kinds, post): ops before the decoder layers, [(group, layer ids, ops)] per layer kind in the
    order of its first layer, and ops after the layers."""
    layered = [op for op in graph.ops if op.group is not None]
    first = min((op.index for op in layered), default=None)
    pre = [op for op in graph.ops if op.group is None and (first is None or op.index < first)]
    post = [op for op in graph.ops if op.group is None and first is not None and op.index > first]
    by_group = {}
    for op in layered:
        by_group.setdefault(op.group, []).append(op)
    kinds = [(g, ids, by_group.get(g, [])) for g, ids in sorted(graph.layer_groups.items(), key=lambda kv: min(kv[1]))]
    return pre, kinds, post


@dataclass
class Task:
    """A task of a heterogeneous schedule (NeuPIMs, Lamina, mllm-NPU): `resource` (a name, or a tuple of names
    held together) for `duration` seconds once the tasks named in `deps` have finished; among tasks waiting
    for one resource the lowest `priority` goes first. `sim.schedule.run_tasks` runs a list of them."""
    name: str
    resource: object
    duration: float
    deps: list = field(default_factory=list)
    priority: float = 0.0


def task_graph(tasks: list, strategy: str, source=None, info: dict = None) -> "TaskGraph":
    """A heterogeneous schedule's tasks as a TaskGraph of `task` nodes: each task's first resource is its lane,
    the others are held with it. The lanes are named resources (an NPU, PIM units, a bus, a network direction)
    rather than system devices, so the engine schedules them without a device model (`sim.engine.schedule`)."""
    nodes, lanes = [], {}
    for t in tasks:
        names = (t.resource,) if isinstance(t.resource, str) else tuple(t.resource)
        for r in names:
            lanes.setdefault(r, Lane("resource"))
        nodes.append(Node(t.name, "task", names[0], tuple(t.deps), seconds=t.duration, holds=names[1:],
                          priority=t.priority, label=t.name))
    return TaskGraph(tuple(nodes), lanes, {}, source, strategy, (strategy,), {}, 1, dict(info or {}))


@dataclass(frozen=True)
class Collective:
    """A collective that follows an op of a device program (placed on the lane's link by `chain`)."""
    after: int                       # op index it follows
    kind: str
    bytes: float                     # buffer per participant
    participants: int
    link: str                        # system link name


def chain(program: str, graph, lane: str, collectives=(), link_lanes: dict = None, tag: str = "",
          layers=None, pre: bool = True, post: bool = True) -> list:
    """Op nodes of a device program in execution order, each layer kind once with its repeat count, and a
    collective node after each op a collective follows. `layers` limits the decoder layers (a pipeline stage);
    `pre`/`post` keep the ops before/after the layers. Nodes are chained one after another."""
    after = {}
    for c in collectives:
        after.setdefault(c.after, []).append(c)
    head, kinds, tail = layer_order(graph)
    nodes = []

    def add(op, repeat, layer, block):
        node_id = f"{tag}op{op.index}"
        nodes.append(Node(node_id, "op", lane, (nodes[-1].id,) if nodes else (), program=program, ops=(op.index,),
                          repeat=repeat, layer=layer, block=block, label=op.name))
        for k, c in enumerate(after.get(op.index, ())):
            link_lane = (link_lanes or {}).get(c.link, c.link)
            nodes.append(Node(f"{tag}c{op.index}.{k}", "collective", link_lane, (nodes[-1].id,), nbytes=c.bytes,
                              collective=c.kind, participants=c.participants, link=c.link, repeat=repeat, layer=layer,
                              block=block, label=c.kind))

    if pre:
        for op in head:
            add(op, 1, None, None)
    for g, ids, ops in kinds:
        mine = [i for i in ids if layers is None or i in layers]
        if mine:
            for op in ops:
                add(op, len(mine), min(mine), g)
    if post:
        for op in tail:
            add(op, 1, None, None)
    return nodes


def device_labels(group: str, start: int, n: int) -> tuple:
    return tuple(f"{group}{i}" for i in range(start, start + n))


def check_fit(tg: TaskGraph, system) -> None:
    """Refuse a placement whose devices cannot hold what the mapping puts on them (one line)."""
    for group, needed in tg.resident_bytes.items():
        capacity = (system.device(group).main_memory.capacity_gb or 0) * 1e9
        if capacity and needed > capacity:
            raise HwsimError(f"{tg.source.meta['model']} with {tg.strategy} needs {needed / 1e9:.1f}GB per device "
                             f"but a {group} has {capacity / 1e9:.0f}GB; use more devices (e.g. a larger tp degree), "
                             f"--quant, or a smaller batch/context")
