"""A request's state while it is served (one object per request; slots keep the hot loop lean)."""
from __future__ import annotations


class Req:
    __slots__ = (
        "id", "arrival", "prompt", "output", "prefix", "prefix_tokens", "cache_key", "parent", "think",
        # serving state
        "replica", "computed", "generated", "nodes", "shared_blocks", "private_blocks", "reserved", "hit_tokens",
        "j0", "kv0", "gen0", "epoch", "on_host", "grows", "in_window",
        # record
        "admitted_at", "first_token_at", "finish_at", "preemptions", "swaps", "runs", "extra_tokens", "rejected",
        "prefill_replica", "transfer_s",
    )

    def __init__(self, rid: int, arrival: float, prompt: int, output: int, prefix=(), cache_key=None, parent=-1,
                 think=0.0):
        self.id = rid
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.prefix = tuple(prefix)
        self.prefix_tokens = sum(t for _, t in self.prefix)
        self.cache_key = cache_key
        self.parent = parent
        self.think = think
        self.replica = None
        self.computed = 0            # prompt(+regenerated) tokens whose KV is in the cache
        self.generated = 0           # output tokens emitted
        self.nodes = []              # prefix-cache nodes held
        self.shared_blocks = 0       # blocks owned by those nodes
        self.private_blocks = 0      # blocks this request owns alone (exact outside the decode set)
        self.reserved = 0            # blocks reserved up front (Orca-style), counted in private_blocks
        self.hit_tokens = 0          # prefix-cache hit of the latest admission
        self.j0 = self.kv0 = self.gen0 = 0     # decode-set entry: decode step, KV length and tokens at entry
        self.epoch = 0               # bumps when the request leaves the decode set (stale heap entries)
        self.grows = False           # decoding: counted among the requests that take a block every block_size steps
        self.in_window = False       # decoding, sliding-window model: context still under the window
        self.on_host = False
        self.admitted_at = None
        self.first_token_at = None
        self.finish_at = None
        self.preemptions = 0
        self.swaps = 0
        self.runs = []               # (replica, first decode step, last decode step) of each stay in a decode set
        self.extra_tokens = []       # times of tokens emitted by a prefill (the first, and after a recompute)
        self.rejected = None         # reason, if it can never be served
        self.prefill_replica = None
        self.transfer_s = 0.0

    @property
    def target(self) -> int:
        """Tokens a prefill must have in the cache before the next token: the prompt and what was generated."""
        return self.prompt + self.generated

    def kv_len(self) -> int:
        """Tokens with KV in the cache while decoding (the newest token's KV is written by the next step)."""
        return self.prompt + self.generated - 1
