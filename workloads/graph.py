"""`Op` and `OpGraph`: the operator graph every later stage (mapping, cost, simulation) reads.

An `Op` is one logical operator (a matmul, a fused attention, a norm ...). Its `bytes` are
what a fused kernel moves (external inputs and final outputs); `kernels` keeps the aten
kernels eager PyTorch really launches, each with its own FLOPs and bytes, for unfused
cost models. Ops inside a decoder layer belong to a layer group; `repeat` is how many
layers share it, so identical layers are stored once.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

BYTE_CLASSES = ("weight", "activation", "kv_cache")
FFMA_FP32 = "fp32-ffma"
WEIGHT_ONLY = "-wq"      # suffix of a weight-only quantized GEMM's dtype (gemm_dtype): 16-bit math, narrower weights


def gemm_dtype(op) -> str:
    """The dtype a GEMM op is costed at: its own, or FFMA_FP32 for an fp32 GEMM traced to run without TF32 (attrs
    tf32 False: torch's default `torch.backends.cuda.matmul.allow_tf32 = False`, so cuBLAS runs `..._ffma` kernels
    on the CUDA cores, not the tensor cores), or the 16-bit dtype + WEIGHT_ONLY for a weight-only quantized GEMM
    (w4a16, w8a16: weights narrower than the 16-bit activations, workloads/transforms.py): those run as mixed-input
    kernels (Marlin, Machete, tinygemm) whose tiling differs from a plain 16-bit GEMM's (hw_models/gpu.py
    gemm_plan), so they form their own GEMM group."""
    if op.dtype == "fp32" and op.attrs.get("tf32") is False:
        return FFMA_FP32
    if op.dtype in ("bf16", "fp16") and op.attrs.get("weight_bits", 16) < op.attrs.get("act_bits", 16):
        return op.dtype + WEIGHT_ONLY
    return op.dtype


@dataclass(frozen=True)
class Kernel:
    aten: str
    flops: int
    bytes: dict                      # class -> bytes moved (read + written)
    strided: int = 0                 # how it reaches its operands (workloads/tracer.py _access): 0 vectorized, 1 an
                                     # operand with gaps (one half of a fused projection's output), 2 gap-free but
                                     # not vectorized (broadcast, mixed layouts, widening cast)


@dataclass(frozen=True)
class Op:
    index: int
    name: str                        # e.g. "attn.q_proj"
    kind: str                        # matmul | attention | elementwise | norm | softmax | embedding | memcpy
    group: Optional[int]             # layer group, None for ops outside the decoder layers
    repeat: int                      # layers sharing this op (1 outside the layers)
    input_shapes: tuple
    output_shapes: tuple
    dtype: str                       # compute dtype
    flops: int
    bytes: dict                      # class -> bytes, fused view (reads + writes)
    reads: dict = field(default_factory=dict)    # class -> bytes read, fused view
    kernels: tuple = ()
    attrs: dict = field(default_factory=dict)   # matmul m/n/k/batch; attention b/hq/hkv/sq/sk/d/dv ...

    @property
    def runs(self):
        """How many times the op runs in a step: its layers, times the identical routed experts it stands for
        (attrs["experts"], MoE class templates: workloads/moe_template.py; a number or an array per step)."""
        experts = self.attrs.get("experts")
        return self.repeat if experts is None else self.repeat * experts

    @property
    def total_bytes(self) -> int:
        return int(sum(self.bytes.values()))

    @property
    def intensity(self) -> float:
        return self.flops / self.total_bytes if self.total_bytes else float("inf")

    @property
    def writes(self) -> dict:
        return {c: self.bytes.get(c, 0) - self.reads.get(c, 0) for c in self.bytes}

    def scaled(self, **changes) -> "Op":
        return replace(self, **changes)


class OpGraph:
    """Ops in execution order plus their data dependencies (a networkx DiGraph, built on first use
    from the edge list so that commands that never look at it do not pay for importing networkx)."""

    def __init__(self, ops: list, graph=None, layer_groups: dict = None, meta: dict = None, edges=None,
                 spec=None, recipe=None):
        self.ops = ops
        self.spec = spec                            # the ModelSpec it was traced from (never re-resolved by name)
        self.recipe = recipe                        # the workloads.recipe.Workload that built it (for re-tracing)
        self._graph = graph
        self._edges = edges
        self.layer_groups = layer_groups or {}      # group -> tuple of layer indices
        self.meta = meta or {}                      # model, phase, batch, seq_len, params, kv bytes, transforms ...

    @property
    def graph(self):
        if self._graph is None:
            import networkx as nx
            g = nx.DiGraph()
            for op in self.ops:
                g.add_node(op.index, op=op)
            g.add_edges_from(self._edges or ())
            self._graph = g
        return self._graph

    @graph.setter
    def graph(self, value):
        self._graph = value

    def with_ops(self, ops, layer_groups=None, **meta_changes) -> "OpGraph":
        """A copy with new ops (same indices, so the dependency graph stays valid)."""
        groups = dict(self.layer_groups if layer_groups is None else layer_groups)
        meta = dict(self.meta, **meta_changes)
        def repeat(op):
            return len(groups.get(op.group, ())) if op.group is not None else 1
        ops = [op if op.repeat == repeat(op) else replace(op, repeat=repeat(op)) for op in ops]
        return OpGraph(ops=ops, graph=self._graph, layer_groups=groups, meta=meta, edges=self._edges,
                       spec=self.spec, recipe=self.recipe)

    def rebuilt(self, **changes) -> "OpGraph":
        """The same workload re-built with some inputs changed (e.g. batch=2 for a pipeline micro-batch,
        expert_tokens for an expert-parallel shard), from the spec and recipe this graph carries."""
        if self.recipe is None:
            from .errors import HwsimError
            if self.meta.get("traced_from") == "torch-module":
                raise HwsimError(f"this mapping re-traces the step at another batch, which a traced torch module "
                                 f"({self.meta.get('model')}) cannot be; use single or dp:N")
            raise HwsimError("this graph was not built by workloads.build_workload, so it cannot be re-built at "
                             "another batch; build it with build_workload(...)")
        return self.recipe.replace(**changes).build()

    def memory_needed(self) -> float:
        """Weights + KV cache held + the largest op's activations: a lower bound on what a device running this
        step must hold."""
        largest = max((op.bytes.get("activation", 0) for op in self.ops), default=0)
        return self.meta["weight_storage_bytes"] + self.meta["kv_cache_storage_bytes"] + largest

    def totals(self) -> dict:
        flops = sum(op.flops * op.runs for op in self.ops)
        by_class = {c: sum(op.bytes.get(c, 0) * op.runs for op in self.ops) for c in BYTE_CLASSES}
        unfused = sum(sum(sum(k.bytes.values()) for k in op.kernels) * op.runs for op in self.ops)
        return {
            "params": self.meta["params"],
            "flops": int(flops),
            "weight_bytes": int(by_class["weight"]),
            "activation_bytes": int(by_class["activation"]),
            "kv_cache_bytes": int(by_class["kv_cache"]),
            "total_bytes": int(sum(by_class.values())),
            "unfused_bytes": int(unfused),
            "kernels": int(sum(len(op.kernels) * op.repeat for op in self.ops)),
            "weight_storage_bytes": int(self.meta["weight_storage_bytes"]),
            "kv_bytes_per_token": self.meta["kv_bytes_per_token"],
            "kv_cache_storage_bytes": self.meta["kv_cache_storage_bytes"],
        }

    def rows(self) -> list:
        """One dict per op (per layer group), for tables, DataFrames and JSON."""
        rows = []
        for op in self.ops:
            rows.append({
                "index": op.index, "name": op.name, "kind": op.kind,
                "layers": "-" if op.group is None else _span(self.layer_groups[op.group]),
                "count": op.repeat, "dtype": op.dtype, "flops": op.flops,
                **{f"{c}_bytes": int(op.bytes.get(c, 0)) for c in BYTE_CLASSES},
                "intensity": round(op.intensity, 3) if op.total_bytes else None,
                "kernels": len(op.kernels), "input_shapes": [list(s) for s in op.input_shapes],
                "output_shapes": [list(s) for s in op.output_shapes], "attrs": op.attrs,
            })
        return rows


def _span(indices) -> str:
    """Compact layer list: 0-31, or 0,2,4..40 for strided groups."""
    indices = list(indices)
    if not indices:
        return "none"
    if len(indices) == 1:
        return str(indices[0])
    step = indices[1] - indices[0]
    if all(b - a == step for a, b in zip(indices, indices[1:])):
        return f"{indices[0]}-{indices[-1]}" if step == 1 else f"{indices[0]}-{indices[-1]}/{step}"
    return ",".join(map(str, indices))
