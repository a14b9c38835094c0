"""A workload recipe: trace one phase, then apply the transforms, in a fixed order."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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
    """Trace one step of `model` (preset name, config.json path or ModelSpec) and apply the transforms.
    The graph carries its ModelSpec and this recipe, so later stages never resolve the model by name again."""
    from .capture import load_spec
    spec = load_spec(model) if isinstance(model, str) else model
    recipe = Workload(spec, phase, batch, seq_len, context, dtype, quant, kv_dtype, group_size, sparsity,
                      tuple(drop_layer_ids), tuple(drop_attention_ids), prefix,
                      tuple(expert_tokens) if expert_tokens is not None else None)
    graph = apply_transforms(trace(spec, phase, batch, seq_len, context, expert_tokens), recipe)
    graph.recipe = recipe
    return graph


def apply_transforms(graph: OpGraph, recipe: "Workload") -> OpGraph:
    """The recipe's transforms in their fixed order: precision, sparsity, layer and attention drops, prefix."""
    graph = apply_precision(graph, recipe.dtype, recipe.quant, recipe.kv_dtype, recipe.group_size)
    if recipe.sparsity:
        if recipe.sparsity != "2:4":
            raise HwsimError(f"unknown sparsity '{recipe.sparsity}'; the supported pattern is 2:4")
        graph = sparsify_2_4(graph)
    if recipe.drop_layer_ids:
        graph = drop_layers(graph, recipe.drop_layer_ids)
    if recipe.drop_attention_ids:
        graph = drop_attention(graph, recipe.drop_attention_ids)
    if recipe.prefix:
        graph = shared_prefix(graph, recipe.prefix)
    return graph


@dataclass(frozen=True)
class Workload:
    """The inputs of `build_workload`, kept with the graph it built (its `recipe`)."""
    spec: object
    phase: str = "prefill"
    batch: int = 1
    seq_len: int = 128
    context: int = 0
    dtype: str = "bf16"
    quant: str = "none"
    kv_dtype: Optional[str] = None
    group_size: Optional[int] = None
    sparsity: Optional[str] = None
    drop_layer_ids: tuple = ()
    drop_attention_ids: tuple = ()
    prefix: Optional[int] = None
    expert_tokens: Optional[tuple] = None

    def replace(self, **changes) -> "Workload":
        if changes.get("expert_tokens") is not None:
            changes["expert_tokens"] = tuple(int(n) for n in changes["expert_tokens"])
        return replace(self, **changes)

    def build(self) -> OpGraph:
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return build_workload(fields.pop("spec"), **fields)


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
