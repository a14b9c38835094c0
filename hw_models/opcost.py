"""`OpCost`: what one op costs on one engine."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpCost:
    time_s: float            # wall time of the op (all its kernels, overheads included)
    compute_s: float         # time at the compute roof (attained efficiency included)
    memory_s: float          # time at the memory roof
    overhead_s: float        # launch / latency floors
    flops: float
    bytes: float
    bound: str               # compute | memory | latency
    kernels: int = 1

    @property
    def attained_flops(self) -> float:
        return self.flops / self.time_s if self.time_s else 0.0

    @property
    def attained_bandwidth(self) -> float:
        return self.bytes / self.time_s if self.time_s else 0.0

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else float("inf")
