"""Mapping strategies: place a traced step on a system's devices as a `TaskGraph`, chosen by name.

A strategy string is a comma-separated list of `name[:degree]` items, e.g. `single`, `tp:8`, `tp:4,pp:2,mb:8`.
A strategy is one file: a function registered with `@strategy(name, description, after=...)` that transforms
the task graph (see registry.py).
"""
from .registry import describe, map_graph, strategies, strategy
from .taskgraph import Lane, Node, Program, TaskGraph, check_fit

from . import (context_parallel, expert_parallel, fpga_dataflow, offload, pipeline,  # noqa: E402,F401  (registration)
               tensor_parallel)

__all__ = ["TaskGraph", "Node", "Lane", "Program", "map_graph", "strategy", "strategies", "describe", "check_fit"]
