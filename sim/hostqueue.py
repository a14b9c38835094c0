"""Two queues of an eager step: the host issues each op, the device runs what is queued.

    host clock    h_i = h_{i-1} + host_i                 (after a syncing op: h_i = d_i + sync)
    device clock  d_i = max(d_{i-1}, h_i) + device_i

The device idles only when the host has fallen behind (h_i > d_{i-1}); an op that forces a host-device sync
(`nonzero`, `.item()`) makes the host wait for the device before it issues more. The step ends when the last op
has run (eager-launch: the step is timed from its first issue to its last kernel, with events), and for
`generate()` (hf-generate) after the stopping check's sync and the host's own per-step work.

This is the closed form of what the engine does with a placed task graph's host and device lanes
(mapping/host_issue.py, sim/engine.py), used by `predict` on one device; tests compare the two. Times may be
numpy arrays (one entry per case of a batch sweep).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HostTiming:
    latency_s: object          # the step, as the stack times it
    device_busy_s: object      # the device's kernels
    host_busy_s: object        # the host's issuing (and per-step work)
    device_idle_s: object      # latency - device busy: the GPU waiting for the host


def sequence(graph) -> list:
    """Positions in graph.ops in execution order, each layer written out in model order (as the engine's unrolled
    chain: ops before the layers, each layer's ops, ops after)."""
    from mapping.taskgraph import layer_order
    pos = {op.index: i for i, op in enumerate(graph.ops)}
    pre, kinds, post = layer_order(graph)
    by_group = {g: [pos[op.index] for op in ops] for g, _, ops in kinds}
    layers = sorted((layer, g) for g, ids, _ in kinds for layer in ids)
    out = [pos[op.index] for op in pre]
    for _, g in layers:
        out += by_group[g]
    return out + [pos[op.index] for op in post]


def two_queues(order, host_s, device_s, syncs, sync_s: float, step_s: float = 0.0,
               per_step: bool = False, once: dict = None) -> HostTiming:
    """`order`: op positions in issue order; host_s / device_s / syncs: per position. Scalars or arrays.
    `once`: {position: host seconds} added the first time that position is issued (a layer's op is issued once per
    layer): one-off host work of the step, e.g. a first pass's cuDNN graph builds (hw_models/host.py)."""
    arrays = any(np.ndim(x) for x in list(host_s) + list(device_s))
    mx = np.maximum if arrays else max
    h = d = 0.0
    extra = dict(once or {})
    host_once = sum(extra.values())
    for i in order:
        h = h + host_s[i] + (extra.pop(i) if i in extra else 0.0)
        d = mx(d, h) + device_s[i]
        if syncs[i]:
            h = d + sync_s
    busy = sum(device_s[i] for i in order)
    host = sum(host_s[i] for i in order) + host_once
    latency = mx(d, h)
    if per_step:                 # the stopping check reads a value back (the queue drains), then Python runs
        latency = latency + sync_s + step_s
        host = host + step_s
    return HostTiming(latency, busy, host, latency - busy)
