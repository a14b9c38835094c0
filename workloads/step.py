"""`Step`: the shape of one forward pass, and `Phase`, the user-facing step it comes from (no torch here, so
planning code can use them cheaply)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from .errors import HwsimError


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


PHASES = ("prefill", "decode", "chunked_prefill")
MAX_SIZE = 2 ** 31 - 1      # a batch or sequence length beyond this would overflow the traced tensors' element counts


@dataclass(frozen=True)
class Phase:
    """prefill: `seq_len` prompt tokens. decode: one new token after `seq_len` cached ones.
    chunked_prefill: a chunk of `seq_len` tokens after `context` cached ones."""
    kind: str
    batch: int
    seq_len: int
    context: int = 0

    def __post_init__(self):
        if self.kind not in PHASES:
            raise HwsimError(f"unknown phase '{self.kind}'; use one of {', '.join(PHASES)}")
        for name in ("batch", "seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise HwsimError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
            if value > MAX_SIZE:                 # torch indexes tensors with 64-bit sizes: keep products traceable
                raise HwsimError(f"{name.replace('_', '-')} {value} is beyond what can be traced (at most {MAX_SIZE:,})")
        if isinstance(self.context, bool) or not isinstance(self.context, int) or self.context < 0:
            raise HwsimError(f"context must be a non-negative integer, got {self.context!r}")
        if self.context and self.kind != "chunked_prefill":
            hint = "for decode, --seq-len is the cached context" if self.kind == "decode" else \
                "use chunked_prefill for a prompt chunk after cached tokens"
            raise HwsimError(f"context applies to chunked_prefill only ({hint}); drop it for {self.kind}")

    def step(self, expert_tokens=None) -> Step:
        if self.kind == "prefill":
            return Step("prefill", self.batch, self.seq_len, 0, expert_tokens)
        if self.kind == "decode":
            return Step("decode", self.batch, 1, self.seq_len, expert_tokens)
        return Step("chunked_prefill", self.batch, self.seq_len, self.context, expert_tokens)

    @property
    def positions(self) -> int:
        """Positions the longest sequence reaches in this step."""
        step = self.step()
        return step.cached + step.new_tokens
