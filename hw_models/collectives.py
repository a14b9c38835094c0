"""Collective communication costs on a link (alpha-beta models of NCCL's algorithms).

bytes: the buffer each participant holds; bandwidth in bytes/s per direction per device; latency in s.
"""
from __future__ import annotations

import math

from workloads.errors import HwsimError


def collective_time(kind: str, nbytes: float, n: int, bandwidth: float, latency: float) -> float:
    if n <= 1 or nbytes <= 0:
        return 0.0
    if kind == "all_reduce_ring":        # reduce-scatter + all-gather: 2(n-1) steps of nbytes/n
        return 2 * (n - 1) * (latency + nbytes / n / bandwidth)
    if kind == "all_reduce_tree":        # up and down a binary tree, whole buffer pipelined
        return 2 * math.ceil(math.log2(n)) * latency + 2 * nbytes / bandwidth
    if kind in ("all_gather", "reduce_scatter"):
        return (n - 1) * (latency + nbytes / n / bandwidth)
    if kind == "all_to_all":
        return (n - 1) * latency + (n - 1) / n * nbytes / bandwidth
    if kind == "p2p":
        return latency + nbytes / bandwidth
    raise HwsimError(f"unknown collective '{kind}'")


def link_collective_time(kind: str, nbytes: float, n: int, link, custom_all_reduce: bool = False) -> float:
    """A collective on a system link: NCCL's algorithm at the link's attained bandwidth; with a custom
    all-reduce (a serving stack's one-shot kernel, where the link defines one) below its size limit, the faster."""
    nccl = collective_time(kind, nbytes, n, link.bandwidth_gbps * 1e9 * link.efficiency, link.latency_us * 1e-6)
    custom = link.custom_all_reduce
    if custom_all_reduce and custom is not None and kind.startswith("all_reduce") and n > 1 and 0 < nbytes <= custom.max_bytes:
        return min(nccl, custom.latency_us * 1e-6 + nbytes / (custom.bandwidth_gbps * 1e9))
    return nccl


def bytes_on_links(kind: str, nbytes: float, n: int) -> float:
    """Bytes each participant sends for one collective (for conservation checks)."""
    if n <= 1:
        return 0.0
    return {"all_reduce_ring": 2 * (n - 1) / n * nbytes, "all_reduce_tree": 2 * nbytes,
            "all_gather": (n - 1) / n * nbytes, "reduce_scatter": (n - 1) / n * nbytes,
            "all_to_all": (n - 1) / n * nbytes, "p2p": nbytes}[kind]


def transfer_time(link, nbytes: float, pageable: bool = False) -> float:
    """One copy over a link: its latency plus the bytes at its bandwidth, or at its measured rate from
    pageable (unpinned) host memory where the system gives one (a synchronous cudaMemcpy from such memory)."""
    gbps = link.pageable_gbps if pageable and link.pageable_gbps is not None else link.bandwidth_gbps
    return link.latency_us * 1e-6 + nbytes / (gbps * 1e9)
