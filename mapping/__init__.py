"""Mapping strategies: place a traced step on a system's devices (and split it), chosen by name.

A strategy string is a comma-separated list of `name[:degree]` items, e.g. `single`, `tp:8`.
Strategies register themselves with `@strategy(name, description)`.
"""
from .registry import MappedGraph, describe, map_graph, strategy, strategies

from . import expert_parallel, fpga_dataflow, offload, tensor_parallel  # noqa: E402,F401  (registration)

__all__ = ["MappedGraph", "map_graph", "strategy", "strategies", "describe"]
