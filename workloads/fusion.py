"""Horizontal fusion of sibling projections, as serving stacks do it.

Hugging Face decoders run q/k/v (and gate/up) as separate nn.Linear modules; vLLM (QKVParallelLinear,
MergedColumnParallelLinear) and TensorRT-LLM store them as one weight and launch one GEMM. Matmuls that read
the same input (same producer, same M and K, same dtype, in the same layer group) become one op whose N is
the sum: the weights and outputs add up, the shared input is read once, and one kernel floor is paid.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .graph import OpGraph


def _h(x):
    """A hashable view of a shape attribute (template graphs hold one array entry per swept case)."""
    return x if np.ndim(x) == 0 else tuple(np.ravel(x).tolist())


def _key(op, preds):
    a = op.attrs
    if op.kind != "matmul" or not a.get("weight_operand") or "m" not in a or len(preds) != 1:
        return None
    return (op.group, preds[0], _h(a["m"]), _h(a["k"]), _h(a.get("batch", 1)), op.dtype, op.repeat)


def _merge(ops):
    first = ops[0]
    act_in = first.reads.get("activation", 0)
    bytes_, reads = {}, {}
    for op in ops:
        for c, v in op.bytes.items():
            bytes_[c] = bytes_.get(c, 0) + v
        for c, v in op.reads.items():
            reads[c] = reads.get(c, 0) + v
    # the shared input is read once, not once per sibling
    bytes_["activation"] -= act_in * (len(ops) - 1)
    reads["activation"] -= act_in * (len(ops) - 1)
    prefix = first.name.rsplit(".", 1)[0] + "." if "." in first.name else ""
    name = prefix + "+".join(op.name.rsplit(".", 1)[-1] for op in ops)
    n = sum(op.attrs["n"] for op in ops)
    out = tuple(s for op in ops for s in op.output_shapes)
    return replace(first, name=name, flops=sum(op.flops for op in ops), bytes=bytes_, reads=reads,
                   kernels=tuple(k for op in ops for k in op.kernels), output_shapes=out,
                   attrs={**first.attrs, "n": n, "merged": len(ops)})


def merge_sibling_matmuls(graph: OpGraph):
    """(graph with sibling projections merged, {old op index: merged op index})."""
    edges = list(graph._edges) if graph._edges is not None else list(graph.graph.edges)
    preds = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    families = {}
    for op in graph.ops:
        key = _key(op, preds.get(op.index, []))
        if key is not None:
            families.setdefault(key, []).append(op)
    remap = {}
    merged = {}
    for members in families.values():
        if len(members) > 1:
            head = members[0]
            merged[head.index] = _merge(members)
            for op in members:
                remap[op.index] = head.index
    if not merged:
        return graph, {}
    ops = [merged.get(op.index, op) for op in graph.ops if remap.get(op.index, op.index) == op.index]
    new_edges = sorted({(remap.get(a, a), remap.get(b, b)) for a, b in edges if remap.get(a, a) != remap.get(b, b)})
    out = OpGraph(ops=ops, layer_groups=dict(graph.layer_groups), meta=dict(graph.meta), edges=new_edges,
                  spec=graph.spec, recipe=graph.recipe)
    return out, remap
