"""A workload recipe: trace one phase, then apply the transforms, in a fixed order."""
from __future__ import annotations

from typing import Optional, Sequence

from .capture import trace
from .errors import HwsimError
from .graph import OpGraph
from .transforms import apply_precision, drop_attention, drop_layers, shared_prefix, sparsify_2_4


def build_workload(model, phase: str = "prefill", batch: int = 1, seq_len: int = 128, context: int = 0,
                   dtype: str = "bf16", quant: str = "none", kv_dtype: Optional[str] = None,
                   group_size: Optional[int] = None, sparsity: Optional[str] = None,
                   drop_layer_ids: Sequence[int] = (), drop_attention_ids: Sequence[int] = (),
                   prefix: Optional[int] = None, expert_tokens: Optional[Sequence[int]] = None) -> OpGraph:
    graph = trace(model, phase, batch, seq_len, context, expert_tokens)
    graph = apply_precision(graph, dtype, quant, kv_dtype, group_size)
    if sparsity:
        if sparsity != "2:4":
            raise HwsimError(f"unknown sparsity '{sparsity}'; the supported pattern is 2:4")
        graph = sparsify_2_4(graph)
    if drop_layer_ids:
        graph = drop_layers(graph, drop_layer_ids)
    if drop_attention_ids:
        graph = drop_attention(graph, drop_attention_ids)
    if prefix:
        graph = shared_prefix(graph, prefix)
    return graph


def parse_index_list(text: str, what: str = "layer") -> list:
    """'0,5-7' -> [0, 5, 6, 7]."""
    out = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise HwsimError(f"bad {what} list '{text}'; write indices like 0,5-7") from None
    return out
