"""Replica schedulers: which requests run in the next iteration, and how many of their tokens.

Each scheduler is a `Policy` in a registry (`SCHEDULERS`, `scheduler(name, **overrides)`); the replica
(`sim/serving/replica.py`) runs the policy. The knobs:

- `chunked`: long prompts are split into chunks that fit the step's token budget (Sarathi-Serve);
- `mixed`: prefills and decodes share an iteration (Orca's iteration-level batching); otherwise an iteration
  is all prefill or all decode (vLLM v0 without chunked prefill);
- `priority`: which side fills an iteration first: `prefill` (new requests start as soon as they fit, decodes
  wait: best TTFT) or `decode` (running requests never stall: best inter-token latency). Decodes run all together
  or not at all;
- `reserve`: KV for the whole request (prompt + output) is reserved when it starts (Orca, FasterTransformer)
  instead of paged block by block as it grows (vLLM's PagedAttention);
- `preemption`: when a growing decode finds no free block, the latest-arrived running request is preempted,
  by `recompute` (its KV dropped, its prompt and output so far prefilled again later) or `swap` (its blocks
  copied to host memory over the host link and back when space frees; recompute if host space runs out);
- `max_seqs` (running requests), `max_tokens` (tokens per iteration; None: max(max context, 2048) as vLLM v0
  sets it without chunked prefill).

`static` is FasterTransformer/TensorRT-LLM `gptSessionBenchmark`-style static batching: a batch of up to
`max_seqs` waiting requests is prefilled together (padded to its longest prompt) and decoded until its longest
output is done (padded, finished requests keep their slot), then the next batch starts.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from workloads.errors import HwsimError


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    chunked: bool = False
    mixed: bool = False
    priority: str = "prefill"
    reserve: bool = False
    preemption: str = "recompute"
    max_seqs: int = 256
    max_tokens: int = None
    static: bool = False
    batch_timeout_s: float = 0.0     # static: wait this long for a full batch before starting a smaller one
    source: str = ""

    def budget(self, max_context: int) -> int:
        return self.max_tokens or max(max_context, 2048)

    def validate(self):
        if self.priority not in ("prefill", "decode"):
            raise HwsimError(f"priority must be prefill or decode, got '{self.priority}'", arguments=("priority",))
        if self.preemption not in ("recompute", "swap"):
            raise HwsimError(f"preemption must be recompute or swap, got '{self.preemption}'", arguments=("preemption",))
        if self.max_seqs <= 0 or (self.max_tokens is not None and self.max_tokens <= 0):
            raise HwsimError("max sequences and max batched tokens must be positive")
        if self.chunked and not self.mixed:
            raise HwsimError("chunked prefill runs chunks beside decodes; it needs mixed batches")
        return self


SCHEDULERS = {}


def register(policy: Policy):
    SCHEDULERS[policy.name] = policy.validate()
    return policy


register(Policy(
    "vllm", "vLLM v0 default: paged KV, a step is all prefill or all decode, new prompts first (prefill priority), "
    "recompute preemption", max_seqs=256,
    source="vLLM EngineArgs defaults: max_num_seqs 256, max_num_batched_tokens max(max_model_len, 2048) without "
           "chunked prefill, preemption by recompute"))
register(Policy(
    "vllm-chunked", "vLLM with chunked prefill (V1 default): decodes first, prompt chunks fill a 2,048-token budget",
    chunked=True, mixed=True, priority="decode", max_seqs=256, max_tokens=2048,
    source="vLLM SchedulerConfig with chunked prefill: 2,048 batched tokens (512 when it was introduced, PR #4580)"))
register(Policy(
    "sarathi", "Sarathi-Serve: stall-free batching, decodes first, prompt chunks fill a 512-token budget",
    chunked=True, mixed=True, priority="decode", max_seqs=256, max_tokens=512,
    source="Sarathi-Serve (OSDI'24): token budget 512 for strict TBT SLOs (2,048 for relaxed ones)"))
register(Policy(
    "orca", "Orca iteration-level batching: whole prompts join running decodes, KV reserved for prompt + output",
    mixed=True, priority="decode", reserve=True, max_seqs=128,
    source="Orca (OSDI'22); batch cap 128 as Vidur's Orca scheduler defaults"))
register(Policy(
    "static", "static batching (FasterTransformer / TensorRT-LLM gptSessionBenchmark): a batch is prefilled and "
    "decoded to its longest output before the next", static=True, reserve=True, max_seqs=128,
    source="FasterTransformer static batching; batch cap 128 as Vidur's FasterTransformer scheduler defaults"))


def scheduler(name: str, **overrides) -> Policy:
    base = SCHEDULERS.get(name)
    if base is None:
        raise HwsimError(f"unknown scheduler '{name}'; use one of {', '.join(SCHEDULERS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes.get("chunked") and not base.mixed:
        changes.setdefault("mixed", True)
        changes.setdefault("priority", "decode")
    return replace(base, **changes).validate()
