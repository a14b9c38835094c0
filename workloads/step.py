"""`Step`: the shape of one forward pass (no torch here, so planning code can use it cheaply)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass(frozen=True)
class Step:
    """One forward pass: `batch` sequences, each adding `new_tokens` after `cached` cached ones."""
    phase: str
    batch: int
    new_tokens: int
    cached: int = 0
    expert_tokens: Optional[Sequence[int]] = None   # tokens per routed expert, per MoE layer

    @property
    def absorb_mla(self) -> bool:
        return self.phase == "decode"

    def kv_slots(self, window: int) -> int:
        total = self.cached + self.new_tokens
        return min(total, window) if window else total

    def write_slot(self, window: int) -> int:
        slots = self.kv_slots(window)
        return min(self.cached, slots - min(self.new_tokens, slots))

    def kv_read_len(self, window: int) -> int:
        return self.kv_slots(window)

    def tokens_per_expert(self, tokens: int, experts: int, top_k: int) -> list:
        if self.expert_tokens is not None:
            return list(self.expert_tokens)
        routed = tokens * top_k
        return [routed // experts + (1 if e < routed % experts else 0) for e in range(experts)]
