"""Paged KV cache of one replica: capacity, block accounting, prefix caching (radix tree, LRU eviction).

Capacity (per device, as vLLM sizes it; every default overridable):

    KV bytes = device memory x utilization - weights - activation peak - runtime overhead

- device memory: what CUDA reports as the device total, where measured (`VISIBLE_GIB`: an "80 GB" H100
  shows 79.22 GiB, vLLM PR #10511 memory-profiling log `total_gpu_memory 79.22GiB`); elsewhere the preset's
  capacity in 10^9 bytes, as `predict` reads it.
- utilization 0.90: vLLM's default `gpu_memory_utilization` (same log).
- weights: the mapped per-device graph's weight storage (dtype/quantization and TP applied).
- activation peak: the largest op's activations in a forward pass at the full token budget (vLLM profiles a
  dummy batch of `max_num_batched_tokens` and reserves its peak; the log above shows 1.26 GiB for
  Llama-3-8B at 8,192 tokens).
- runtime overhead (CUDA context, cuBLAS workspaces, NCCL buffers): 1.79 GiB at TP1 and 3.58 GiB at TP2
  in the same log (`non_torch_memory`); 1.79 GiB on one device and 3.58 GiB with any TP here.

Blocks hold `block_size` tokens (vLLM's default 16). A request owns its blocks privately, except full blocks of
a shared prefix, which prefix caching keeps in a radix tree of segments (SGLang's RadixAttention; vLLM's
automatic prefix caching works on the same full blocks): a node is one prefix segment, owns the full blocks
that end inside it, and is counted by the requests that use it. Nodes nobody uses stay cached until space is
needed and are evicted least recently used first, leaves before their parents.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from workloads.errors import HwsimError

GIB = 2 ** 30
VISIBLE_GIB = {"h100-sxm-80gb": 79.22}   # vLLM PR #10511 log: total_gpu_memory 79.22GiB on an H100 80GB
GPU_MEMORY_UTILIZATION = 0.90      # vLLM default gpu_memory_utilization
OVERHEAD_GIB = {1: 1.79, 2: 3.58}  # vLLM PR #10511 non_torch_memory at TP1 / TP2 (Llama-3-8B, H100)
BLOCK_SIZE = 16                    # vLLM default block size
SWAP_SPACE_GIB = 4.0               # vLLM default swap_space per GPU (host memory for swapped-out KV)
WATERMARK = 0.01                   # vLLM v0 BlockSpaceManager watermark: blocks kept free at admission


@dataclass(frozen=True)
class Capacity:
    device_bytes: float
    usable_bytes: float
    weight_bytes: float
    activation_bytes: float
    overhead_bytes: float
    kv_bytes: float
    kv_bytes_per_token: float      # per device
    block_size: int
    blocks: int

    @property
    def tokens(self) -> int:
        return self.blocks * self.block_size

    def summary(self) -> dict:
        return {"device_gib": self.device_bytes / GIB, "usable_gib": self.usable_bytes / GIB,
                "weights_gib": self.weight_bytes / GIB, "activation_gib": self.activation_bytes / GIB,
                "overhead_gib": self.overhead_bytes / GIB, "kv_gib": self.kv_bytes / GIB,
                "kv_bytes_per_token": self.kv_bytes_per_token, "block_size": self.block_size, "blocks": self.blocks,
                "tokens": self.tokens}


def capacity(cost, block_size: int = BLOCK_SIZE, utilization: float = GPU_MEMORY_UTILIZATION,
             overhead_gib: float = None, activation_gib: float = None, memory_gib: float = None,
             budget_tokens: int = None, kv_blocks: int = None) -> Capacity:
    """KV capacity of one replica of a `StepCost` (see the module docstring for the defaults)."""
    if block_size <= 0:
        raise HwsimError(f"block_size (KV block tokens) must be positive, got {block_size}", arguments=("block_size",))
    if not 0 < utilization <= 1:
        raise HwsimError(f"memory utilization must be in (0, 1], got {utilization}")
    gb = cost.device.main_memory.capacity_gb or 0
    visible = _visible_gib(cost.device)
    device = memory_gib * GIB if memory_gib else (visible * GIB if visible else gb * 1e9)
    usable = device * utilization
    weights = cost.weight_bytes
    act = activation_gib * GIB if activation_gib is not None else cost.activation_peak_bytes(budget_tokens or 2048)
    over = (overhead_gib if overhead_gib is not None else OVERHEAD_GIB[1 if cost.devices == 1 else 2]) * GIB
    per_token = cost.kv_bytes_per_token * cost.kv_share
    kv = usable - weights - act - over
    blocks = int(kv_blocks) if kv_blocks else max(0, int(kv // (per_token * block_size)))
    if kv_blocks is None and blocks == 0:
        raise HwsimError(f"{cost.model_name} does not fit on {cost.device.name} with {cost.mapping}: weights "
                         f"{weights / GIB:.1f} GiB + activations {act / GIB:.1f} GiB + overhead {over / GIB:.1f} GiB "
                         f"leave no KV cache in {usable / GIB:.1f} GiB; use more devices (tp), quant (e.g. fp8) or a "
                         f"larger GPU", arguments=("quant",))
    return Capacity(device, usable, weights, act, over, max(kv, 0.0), per_token, block_size, blocks)


def _visible_gib(device):
    """The measured CUDA total of `device`'s preset, also for a hypothetical device made from it (`h100+hbm.bandwidth=
    6.7TB/s`, whose id differs) unless the override changed its memory; None where nothing was measured."""
    base = device.id.split("+")[0]
    visible = VISIBLE_GIB.get(base)
    if visible is None or base == device.id:
        return visible
    from hw_models import load_device
    same = load_device(base).main_memory.capacity_gb == device.main_memory.capacity_gb
    return visible if same else None


class Node:
    __slots__ = ("key", "parent", "blocks", "covered", "refs", "children", "used")

    def __init__(self, key, parent, blocks, covered):
        self.key, self.parent, self.blocks, self.covered = key, parent, blocks, covered
        self.refs, self.children, self.used = 0, 0, 0


class KVCache:
    """Block accounting of one replica. `used` never exceeds `total` (checked by the tests)."""

    def __init__(self, total_blocks: int, block_size: int = BLOCK_SIZE, prefix_caching: bool = False,
                 host_blocks: int = 0, window_blocks: int = None):
        self.total = int(total_blocks)
        self.bs = int(block_size)
        # sliding-window models whose every layer has the window: a sequence holds at most this many blocks (vLLM v0
        # BlockSpaceManagerV1: block_sliding_window = ceil(sliding_window / block_size), later blocks reuse earlier ones)
        self.window_blocks = int(window_blocks) if window_blocks else None
        if self.window_blocks:
            self.blocks_for = self._window_blocks_for
        self.prefix_caching = prefix_caching
        self.free = self.total
        self.nodes: dict = {}
        self.idle = 0                  # blocks of cached nodes nobody uses (reclaimable)
        self._heap = []
        self._tick = 0
        self.host_total = int(host_blocks)
        self.host_free = int(host_blocks)
        self.hits = 0                  # prefix tokens served from the cache
        self.lookups = 0               # prefix tokens looked up
        self.evicted = 0

    @property
    def used(self) -> int:
        return self.total - self.free

    def available(self) -> int:
        return self.free + self.idle

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.bs)

    def _window_blocks_for(self, tokens: int) -> int:
        return min(-(-tokens // self.bs), self.window_blocks)

    def allocate(self, n: int) -> bool:
        """Take n blocks, evicting idle cached prefixes if needed; False (and nothing taken) if they do not fit."""
        if n <= self.free:
            self.free -= n
            return True
        if n > self.free + self.idle:
            return False
        while self.free < n:
            self._evict_one()
        self.free -= n
        return True

    def release(self, n: int):
        self.free += n
        assert self.free <= self.total, "KV blocks released twice"

    # --- prefix cache -----------------------------------------------------------------------------------
    def match(self, prefix, prompt: int) -> tuple:
        """(nodes of the longest cached prefix, tokens they cover), at most prompt - 1 tokens (the last prompt
        token is always computed, so the step yields a token)."""
        if not self.prefix_caching or not prefix:
            return [], 0
        nodes, covered, parent = [], 0, None
        for key, _ in prefix:
            node = self.nodes.get(key)
            if node is None or node.parent is not parent:
                break
            nodes.append(node)
            parent = node
        while nodes and nodes[-1].covered > prompt - 1:
            nodes.pop()
        covered = nodes[-1].covered if nodes else 0
        self.lookups += sum(t for _, t in prefix)
        self.hits += covered
        return nodes, covered

    def acquire(self, nodes):
        self._tick += 1
        for node in nodes:
            if node.refs == 0:
                self.idle -= node.blocks
            node.refs += 1
            node.used = self._tick

    def unref(self, nodes):
        self._tick += 1
        for node in reversed(nodes):
            node.refs -= 1
            node.used = self._tick
            if node.refs == 0:
                self.idle += node.blocks
                if node.children == 0:
                    heapq.heappush(self._heap, (node.used, -node.covered, id(node), node))

    def insert(self, prefix, start_node_count: int, nodes: list, upto: int) -> int:
        """Make the request's prefix segments from index `start_node_count` cached nodes it holds, covering
        tokens up to `upto` (those with KV). Returns how many of the request's private blocks left its hands
        (taken over by new nodes, or given back where another request cached the same segment meanwhile)."""
        if not self.prefix_caching:
            return 0
        moved = 0
        parent = nodes[-1] if nodes else None
        cum = parent.covered if parent else 0
        pos = sum(t for _, t in prefix[:start_node_count])
        for key, tokens in prefix[start_node_count:]:
            pos += tokens
            end = min(pos, upto)
            covered = (end // self.bs) * self.bs
            if covered <= cum:
                break
            blocks = (covered - cum) // self.bs
            node = self.nodes.get(key)
            if node is not None and node.parent is parent:
                if node.refs == 0:
                    self.idle -= node.blocks
                node.refs += 1
                self.free += blocks          # our copy of these blocks duplicates the cached one: give it back
            else:
                node = Node(key, parent, blocks, covered)
                node.refs = 1
                self.nodes[key] = node
                if parent is not None:
                    parent.children += 1
            moved += blocks
            self._tick += 1
            node.used = self._tick
            nodes.append(node)
            parent, cum = node, covered
            if end < pos:
                break
        return moved

    def _evict_one(self):
        while self._heap:
            used, _, _, node = heapq.heappop(self._heap)
            if node.refs or node.children or self.nodes.get(node.key) is not node or used != node.used:
                continue
            del self.nodes[node.key]
            self.free += node.blocks
            self.idle -= node.blocks
            self.evicted += node.blocks
            parent = node.parent
            if parent is not None:
                parent.children -= 1
                if parent.children == 0 and parent.refs == 0:
                    heapq.heappush(self._heap, (parent.used, -parent.covered, id(parent), parent))
            return
        raise AssertionError("KV: idle blocks counted but nothing to evict")

    def check(self):
        """Invariants (tests): counts add up, nothing over capacity."""
        assert 0 <= self.free <= self.total
        assert self.idle == sum(n.blocks for n in self.nodes.values() if n.refs == 0)
        assert all(n.refs >= 0 for n in self.nodes.values())
        assert 0 <= self.host_free <= self.host_total
