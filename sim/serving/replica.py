"""One serving replica: its queues, KV cache and iterations, run by a scheduler policy.

The decode set is kept without touching each decoding request every iteration (10k-request runs have
tens of thousands of iterations of a hundred or more sequences): a request that enters the decode set at
decode step j0 with KV length kv0 holds kv0 + (k - j0) tokens at decode step k, needs a new block exactly
when that is a multiple of the block size (k = j0 - kv0 mod block size, so requests are counted by that
residue), and finishes at the step its output is complete (a heap keyed by that step). The summed context
of a step is then one running sum. Requests are touched only when they join, leave or are preempted.

Sliding-window models (docs/serving.md): window layers attend to at most `window` tokens, so a step also carries
the decodes' context clipped to the window: requests whose context is still under it add kv0 - j0 + k + 1, the
others the window; a request crosses over at a known step (a second heap). Where every layer has the window,
a request also stops taking blocks once it holds ceil(window / block size) of them (vLLM v0's block manager:
`block_sliding_window`), again at a known step; runs of decode steps end before either event.
"""
from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from array import array
from collections import deque

import numpy as np

from workloads.errors import HwsimError

from .kv import WATERMARK, KVCache
from .step_cost import Batch

LOG_FIELDS = ("start_s", "time_s", "prefill_tokens", "chunks", "decodes", "kv_blocks", "kv_cached_blocks",
              "energy_j", "power_w", "clock_mhz", "preempted", "running", "waiting", "swap_blocks")


class Plan:
    __slots__ = ("chunks", "decodes", "d", "ctx", "wctx", "swap_blocks", "preempted", "static_members", "prefill_tokens",
                 "extra_ends", "run_cum", "run_energy", "run_dt", "run_rows")

    def __init__(self):
        self.chunks = []
        self.decodes = False
        self.d = 0
        self.ctx = 0
        self.wctx = None             # sliding-window models: the decodes' context clipped to the window
        self.swap_blocks = 0
        self.preempted = 0
        self.static_members = None
        self.prefill_tokens = 0
        self.extra_ends = None
        self.run_cum = self.run_energy = self.run_dt = self.run_rows = None


class Replica:
    def __init__(self, rid: int, cost, capacity, policy, prefix_caching: bool = False, role: str = "both",
                 swap_gib: float = 4.0, host_gbps: float = None, name: str = None):
        self.id = rid
        self.name = name or f"replica{rid}"
        self.cost = cost
        self.capacity = capacity
        self.policy = policy
        self.role = role                      # both | prefill | decode (disaggregation)
        self.bs = capacity.block_size
        bytes_per_block = capacity.kv_bytes_per_token * self.bs
        host_blocks = int(swap_gib * 2 ** 30 // bytes_per_block) if policy.preemption == "swap" else 0
        # sliding windows: the window layers' context is clipped at `swa`; with every layer windowed a request holds
        # at most `window_blocks` blocks (vLLM v0 BlockSpaceManagerV1 reuses them past ceil(window / block size))
        self.swa = cost.swa if cost.swa_mode else 0
        window_blocks = -(-self.swa // self.bs) if cost.swa_mode == "all" else None
        if window_blocks and prefix_caching:
            raise HwsimError(f"prefix caching with {cost.model_name}'s sliding-window KV cache is not modelled (vLLM "
                             f"v0 refuses the pair too); drop prefix caching")
        self.kv = KVCache(capacity.blocks, self.bs, prefix_caching, host_blocks, window_blocks)
        self.wbase = 0                        # sum of kv0 - j0 over decodes whose context is under the window
        self.n_in = 0                         # ... how many of them
        self.n_out = 0                        # decodes whose context has reached the window
        self.events = []                      # (decode step, epoch, id, kind, r): 0 reaches the window, 1 stops growing
        self.block_bytes = bytes_per_block    # per device
        self.host_bw = (host_gbps or _host_gbps(cost)) * 1e9
        self.budget = policy.budget(cost.max_context)
        self.max_seqs = policy.max_seqs
        self.watermark = 0 if policy.reserve else int(math.ceil(WATERMARK * capacity.blocks))
        self.waiting = deque()
        self.prefilling = []
        self.swapped = deque()
        self.decoding = {}
        self.incoming = deque()              # decode role: requests whose KV arrived, waiting for blocks
        self.dstep = 0
        self.ctx_base = 0
        self.cnt = [0] * self.bs
        self.heap = []
        self.busy = False
        self.plan = None
        self.outstanding = 0                  # tokens of work queued or running (routers read it)
        self.log = array("d")                 # LOG_FIELDS per iteration, flat
        # a public hook for outside control (sim/cluster's power controllers): called with the start time before every
        # iteration is planned and costed, so that whatever it sets on `cost` (a clock or power cap) applies to it
        self.before_step = None
        self.dstep_end = array("d")
        self.static_batch = None
        self.energy_j = 0.0
        self.busy_s = 0.0
        # pipeline-parallel virtual engines (sim/serving/pipeline.py): the stages this engine shares with the replica's
        # other engines, and its share of the replica's devices (metrics count idle power and devices by it)
        self.pipeline = None
        self.devices = cost.devices

    # --- requests in ---------------------------------------------------------------------------------
    def reject_reason(self, r):
        if r.prompt + r.output > self.cost.max_context:
            return f"prompt + output = {r.prompt + r.output} tokens exceed the max context {self.cost.max_context}"
        # its whole context must fit at its last step (paged) or from the start (reserved)
        need = self.kv.blocks_for(r.prompt + r.output - (0 if self.policy.reserve else 1))
        if need + self.watermark > self.kv.total:
            return f"needs {need} KV blocks of {self.bs} tokens, the replica holds {self.kv.total}"
        if not self.policy.chunked and self.role != "decode" and r.prompt + r.output > self.budget:
            return (f"prompt + output = {r.prompt + r.output} tokens are over the step budget of {self.budget} tokens "
                    f"(a preempted request is prefilled again with its output)")
        return None

    def enqueue(self, r):
        r.replica = self.id
        self.waiting.append(r)
        self.outstanding += r.prompt + r.output

    def receive(self, r):
        """Decode role: a request whose prompt KV arrives from a prefill replica."""
        r.replica = self.id
        self.incoming.append(r)
        self.outstanding += r.output - r.generated

    def log_columns(self) -> dict:
        import numpy as np
        data = np.frombuffer(self.log, dtype=float).reshape(-1, len(LOG_FIELDS)) if len(self.log) else \
            np.zeros((0, len(LOG_FIELDS)))
        return {f: data[:, i] for i, f in enumerate(LOG_FIELDS)}

    def state(self) -> str:
        return (f"waiting {len(self.waiting)}, prefilling {len(self.prefilling)}, decoding {len(self.decoding)}, "
                f"swapped {len(self.swapped)}, incoming {len(self.incoming)}, KV free {self.kv.free} idle "
                f"{self.kv.idle} of {self.kv.total}")

    def has_work(self) -> bool:
        return bool(self.waiting or self.prefilling or self.decoding or self.swapped or self.incoming
                    or self.static_batch)

    @property
    def running(self) -> int:
        return len(self.decoding) + len(self.prefilling)

    # --- KV bookkeeping of the decode set --------------------------------------------------------------------
    def _join(self, r):
        r.j0 = self.dstep
        r.kv0 = r.prompt + r.generated - 1
        r.gen0 = r.generated
        self.decoding[r.id] = r
        r.grows = not r.reserved
        cap = self.kv.window_blocks
        if r.grows and cap:
            # at step k it holds kv0 + k - j0 tokens; the step at which that reaches cap blocks takes no block
            stop = r.j0 + cap * self.bs - r.kv0
            if stop <= r.j0:
                r.grows = False
            else:
                heapq.heappush(self.events, (stop, r.epoch, r.id, 1, r))
        if r.grows:
            self.cnt[(r.j0 - r.kv0) % self.bs] += 1
        self.ctx_base += r.kv0 - r.j0
        if self.swa:
            # step k attends to kv0 + k - j0 + 1 tokens: the window from step j0 + window - 1 - kv0 on
            reach = r.j0 + self.swa - 1 - r.kv0
            r.in_window = reach > r.j0
            if r.in_window:
                self.wbase += r.kv0 - r.j0
                self.n_in += 1
                heapq.heappush(self.events, (reach, r.epoch, r.id, 0, r))
            else:
                self.n_out += 1
        heapq.heappush(self.heap, (r.output - r.gen0 + r.j0 - 1, r.epoch, r.id, r))

    def _window_events(self):
        """Apply the sliding-window events of decode steps up to the current one."""
        events = self.events
        while events and events[0][0] <= self.dstep:
            _, epoch, _, kind, r = heapq.heappop(events)
            if r.epoch != epoch or r.id not in self.decoding:
                continue
            if kind == 0:
                r.in_window = False
                self.wbase -= r.kv0 - r.j0
                self.n_in -= 1
                self.n_out += 1
            else:
                r.grows = False
                self.cnt[(r.j0 - r.kv0) % self.bs] -= 1

    def _next_event(self) -> int:
        """The decode step of the next valid sliding-window event (a large number if none)."""
        events = self.events
        while events and (events[0][1] != events[0][4].epoch or events[0][4].id not in self.decoding):
            heapq.heappop(events)
        return events[0][0] if events else 1 << 62

    def _window_ctx(self, k):
        """The decodes' context clipped to the window at decode step k (a number or an array of steps)."""
        return self.wbase + self.n_in * (k + 1) + self.swa * self.n_out

    def _leave(self, r):
        """Take r out of the decode set; its generated count and private blocks become exact again."""
        del self.decoding[r.id]
        steps = self.dstep - r.j0
        if r.grows:
            self.cnt[(r.j0 - r.kv0) % self.bs] -= 1
        if not r.reserved:
            r.private_blocks = self.kv.blocks_for(r.kv0 + steps) - r.shared_blocks
        self.ctx_base -= r.kv0 - r.j0
        if self.swa:
            if r.in_window:
                self.wbase -= r.kv0 - r.j0
                self.n_in -= 1
            else:
                self.n_out -= 1
        r.generated = r.gen0 + steps
        if steps > 0:
            r.runs.append((self.id, r.j0, self.dstep - 1))
        r.epoch += 1

    def _free(self, r):
        self.kv.release(r.private_blocks)
        self.kv.unref(r.nodes)
        r.nodes, r.shared_blocks, r.private_blocks, r.reserved = [], 0, 0, 0

    @staticmethod
    def _ids(reqs):
        return {x.id for x in reqs}

    def _victim(self, exclude):
        best = None
        for r in self.decoding.values():
            if r.id not in exclude and (best is None or r.arrival > best.arrival):
                best = r
        for r in self.prefilling:
            if r.id not in exclude and (best is None or r.arrival > best.arrival):
                best = r
        return best

    def _preempt(self, r, plan):
        plan.preempted += 1
        r.preemptions += 1
        if r.id in self.decoding:
            self._leave(r)
            if self.policy.preemption == "swap" and r.private_blocks <= self.kv.host_free:
                self.kv.release(r.private_blocks)
                self.kv.host_free -= r.private_blocks
                plan.swap_blocks += r.private_blocks
                r.on_host = True
                r.swaps += 1
                self.swapped.append(r)
                return
        else:
            self.prefilling.remove(r)
            r.epoch += 1
        self.outstanding += r.computed
        self._free(r)
        r.computed = 0
        self.waiting.appendleft(r)

    def _grow_decodes(self, plan, exclude=()):
        """Blocks for this step's decode tokens, preempting the latest arrivals until they fit."""
        while self.decoding:
            need = self.cnt[self.dstep % self.bs]
            if self.kv.allocate(need):
                return True
            victim = self._victim(exclude)
            if victim is None:
                return False
            self._preempt(victim, plan)
        return False

    def _swap_in(self, plan):
        while self.swapped and self.running < self.max_seqs:
            r = self.swapped[0]
            if not self.kv.allocate(r.private_blocks):
                return
            self.swapped.popleft()
            self.kv.host_free += r.private_blocks
            plan.swap_blocks += r.private_blocks
            r.on_host = False
            self._join(r)

    def _admit_incoming(self, now):
        while self.incoming and self.running < self.max_seqs:
            r = self.incoming[0]
            need = self.kv.blocks_for(r.prompt + (r.output if self.policy.reserve else r.generated - 1))
            if self.kv.available() - need < self.watermark or not self.kv.allocate(need):
                return
            self.incoming.popleft()
            r.private_blocks = need
            r.reserved = need if self.policy.reserve else 0
            r.computed = r.prompt + r.generated - 1
            self._join(r)

    # --- planning ----------------------------------------------------------------------------------------
    def _chunks(self, plan, budget, now):
        """Continue partial prefills, then admit waiting requests FCFS while tokens, seats and blocks last."""
        kv, chunked, reserve = self.kv, self.policy.chunked, self.policy.reserve
        for r in list(self.prefilling):
            if budget <= 0:
                return budget
            if r not in self.prefilling:
                continue                       # preempted for an earlier request's chunk
            n = min(r.target - r.computed, budget)
            if not reserve:
                need = kv.blocks_for(r.computed + n) - r.shared_blocks - r.private_blocks
                while not kv.allocate(need):
                    scheduled = {x.id for x, _ in plan.chunks}
                    # as vLLM V1: preempt the latest arrival (possibly r itself) until the chunk fits
                    victim = self._victim(scheduled)
                    if victim is None:
                        return 0
                    self._preempt(victim, plan)
                    if victim is r:
                        break
                if r not in self.prefilling:
                    continue
                r.private_blocks += need
            plan.chunks.append((r, n))
            budget -= n
        # a step that had to preempt admits nobody new (vLLM V1): the preempted would be readmitted at once
        while self.waiting and budget > 0 and self.running < self.max_seqs and not plan.preempted:
            r = self.waiting[0]
            nodes, hit = kv.match(r.prefix, r.target)
            n = r.target - hit
            if n > budget:
                if not chunked:
                    break
                n = budget
            tokens = r.prompt + r.output if reserve else hit + n
            need = kv.blocks_for(tokens) - hit // self.bs
            pinned = sum(x.blocks for x in nodes if x.refs == 0)
            if kv.available() - pinned - need < self.watermark:
                break
            kv.acquire(nodes)
            kv.allocate(need)
            self.waiting.popleft()
            r.nodes, r.shared_blocks, r.private_blocks = list(nodes), hit // self.bs, need
            r.reserved = need if reserve else 0
            r.computed = r.hit_tokens = hit
            kv.hits += hit
            kv.lookups += r.prefix_tokens
            self.outstanding -= hit
            if r.admitted_at is None:
                r.admitted_at = now
            self.prefilling.append(r)
            plan.chunks.append((r, n))
            budget -= n
        return budget

    def _plan(self, now) -> Plan:
        if self.policy.static:
            return self._plan_static(now)
        P = self.policy
        plan = Plan()
        if self.events:
            self._window_events()
        if self.swapped:
            self._swap_in(plan)
        if self.incoming:
            self._admit_incoming(now)
        budget = self.budget
        if not P.mixed:
            if self.waiting and self.role != "decode" and (P.priority == "prefill" or not self.decoding) \
                    and not self.swapped:
                self._chunks(plan, budget, now)
                if plan.chunks:
                    return plan
            plan.decodes = self._grow_decodes(plan)
        elif P.priority == "decode":
            plan.decodes = self._grow_decodes(plan)
            budget -= len(self.decoding) if plan.decodes else 0
            if self.role != "decode" and not self.swapped:
                self._chunks(plan, budget, now)
        else:
            if self.role != "decode" and not self.swapped:
                budget = self._chunks(plan, budget, now)
            if self.decoding and budget >= len(self.decoding):
                plan.decodes = self._grow_decodes(plan, exclude={r.id for r, _ in plan.chunks})
        if plan.decodes:
            plan.d = len(self.decoding)
            plan.ctx = self.ctx_base + plan.d * (self.dstep + 1)
            if self.swa:
                plan.wctx = self._window_ctx(self.dstep)
        return plan

    def _plan_static(self, now) -> Plan:
        plan = Plan()
        batch = self.static_batch
        if batch is None:
            if not self.waiting:
                return plan
            P = self.policy
            if len(self.waiting) < P.max_seqs and P.batch_timeout_s and now < self.waiting[0].arrival + P.batch_timeout_s:
                plan.static_members = ("wait", self.waiting[0].arrival + P.batch_timeout_s)
                return plan
            members = []
            while self.waiting and len(members) < P.max_seqs:
                r = self.waiting[0]
                trial = members + [r]
                p, o = max(x.prompt for x in trial), max(x.output for x in trial)
                need = len(trial) * self.kv.blocks_for(p + o)           # every slot padded to the longest
                if need > self.kv.total:
                    break
                members.append(self.waiting.popleft())
            if not members:
                return plan
            p, o = max(x.prompt for x in members), max(x.output for x in members)
            blocks = len(members) * self.kv.blocks_for(p + o)
            self.kv.allocate(blocks)
            for r in members:
                r.admitted_at = now
                r.computed = r.prompt
            self.static_batch = {"members": members, "prompt": p, "output": o, "step": 0, "blocks": blocks}
            plan.chunks = [(r, p) for r in members]
            plan.static_members = "prefill"
            return plan
        b = len(batch["members"])
        plan.decodes = True
        plan.d = b
        plan.ctx = b * (batch["prompt"] + batch["step"] + 1)
        if self.swa:
            plan.wctx = b * min(batch["prompt"] + batch["step"] + 1, self.swa)
        plan.static_members = "decode"
        return plan

    # --- one iteration ------------------------------------------------------------------------------------
    def start(self, now, horizon: float = None):
        """Plan and cost the next iteration; its end time, ("wait", t) for a timed wake-up, or None if idle.

        With a `horizon` (the time of the next event that could change this replica's queues), a decode-only
        iteration runs on as further decode-only iterations while nothing can change the batch: up to the first
        request that finishes, the first step whose KV blocks do not fit, or the first step starting at or after
        the horizon. Each of those steps is exactly the step the replica would have planned on its own (the
        batch, its context and its blocks follow from the decode set), so results are identical; the event
        loop just sees one event for them."""
        if self.before_step is not None:
            self.before_step(now)
        plan = self._plan(now)
        if isinstance(plan.static_members, tuple):
            return plan.static_members
        if not plan.chunks and not plan.decodes and plan.preempted:
            plan = self._plan(now)            # everything was preempted: start over with the queue as it is now
        if not plan.chunks and not plan.decodes and not plan.swap_blocks:
            return None
        dt, energy, clock = 0.0, 0.0, self.cost.f_max
        if plan.chunks:
            if plan.static_members == "prefill":
                batch = Batch(chunks=[(n, 0) for _, n in plan.chunks], logits=len(plan.chunks))
            else:
                chunks = [(n, r.computed) for r, n in plan.chunks]
                logits = plan.d + sum(1 for r, n in plan.chunks if r.computed + n >= r.target)
                batch = Batch(chunks=chunks, decodes=plan.d, decode_context=plan.ctx, logits=logits,
                              window_context=plan.wctx)
            dt, energy, _, clock = self.cost.cost(batch)
        elif plan.decodes:
            dt, energy, _, clock = self.cost.decode_step(plan.d, plan.ctx, plan.wctx)
        if plan.swap_blocks:          # swaps run in the step (vLLM v0 cache engine), over the host link
            swap = plan.swap_blocks * self.block_bytes / self.host_bw
            dt += swap
            energy += swap * self.cost.static_w * self.devices
        prefill_tokens = sum(n for _, n in plan.chunks) if plan.chunks else 0
        if self.pipeline is not None:  # through the stages shared with the other engines, waiting where they are busy
            logits = plan.d + (sum(1 for r, n in plan.chunks if r.computed + n >= r.target)
                               if plan.chunks and plan.static_members != "prefill" else len(plan.chunks))
            stage_s, send_s = self.cost.stage_times(dt, prefill_tokens + plan.d, logits)
            wall = self.pipeline.run(now, stage_s, send_s) - now
            energy += max(wall - dt, 0.0) * self.cost.static_w * self.devices
            dt = wall
        plan.prefill_tokens = prefill_tokens
        self.plan = plan
        self.busy = True
        kv = self.kv
        self.log.extend((now, dt, prefill_tokens, len(plan.chunks), plan.d, kv.total - kv.free - kv.idle, kv.idle,
                         energy, energy / dt if dt else 0.0, clock, plan.preempted,
                         len(self.decoding) + len(self.prefilling) + len(self.swapped) + len(self.incoming),
                         len(self.waiting), plan.swap_blocks))
        self.energy_j += energy
        self.busy_s += dt
        end = now + dt
        if horizon is not None and self.pipeline is None and plan.decodes and not plan.chunks and not plan.preempted \
                and not plan.swap_blocks and end < horizon and not (self.prefilling or self.swapped or self.incoming):
            end = self._run_on(plan, end, horizon, dt)
        return end

    def _run_on(self, plan, t, horizon, step_s):
        """Further decode-only steps after the planned one (see `start`); returns the end of the last."""
        heap = self.heap
        while heap and (heap[0][1] != heap[0][3].epoch or heap[0][3].id not in self.decoding):
            heapq.heappop(heap)                   # stale entries of requests that left the decode set
        last = heap[0][0] if heap else self.dstep  # decode step in which the first request finishes
        if self.swa:
            if self.cost.swa_mode == "mixed":       # two contexts per step: costed one step at a time
                return t
            last = min(last, self._next_event() - 1)   # a request reaches the window or stops taking blocks
        if last <= self.dstep:
            return t
        d = plan.d
        kv, cost = self.kv, self.cost
        t0s, dyns, fts, fes = cost._dec_fast.get(d) or cost._decode_fast(d)
        grid = cost.ctx_grid
        top = len(grid) - 2
        static, cap, tp, f_max = cost.static_w, cost.cap, cost.lockstep, cost.f_max
        idle_w = cost.idle_stage_w
        reach = (horizon - t) / step_s if step_s > 0 else math.inf      # steps to the horizon, about
        if min(last - self.dstep, reach) < 12:
            return self._run_on_short(plan, t, horizon, last, d, t0s, dyns, fts, fes, grid, top, static, cap, tp, f_max,
                                      idle_w)
        if reach < math.inf:        # no need to cost steps far past the horizon (steps lengthen slowly)
            last = min(last, self.dstep + int(1.25 * reach) + 2)
        ks = np.arange(self.dstep + 1, last + 1)
        need = np.asarray(self.cnt)[ks % self.bs]
        cum = np.cumsum(need)
        m_alloc = int(np.searchsorted(cum, kv.free, side="right"))     # steps whose blocks fit without eviction
        if m_alloc == 0:
            return t
        ks, cum = ks[:m_alloc], cum[:m_alloc]
        ctx = self.ctx_base + d * (ks + 1)
        wctx = self._window_ctx(ks) if self.swa else None
        x = (ctx if wctx is None else wctx) / d     # every layer windowed: the tables are keyed by the clipped context
        gi = np.searchsorted(cost._ctx, x, side="right") - 1
        w = np.empty(len(x))
        low, high = gi < 0, gi > top
        mid = ~(low | high)
        gi = np.clip(gi, 0, top)
        w[low], w[high] = 0.0, 1.0
        g = cost._ctx
        w[mid] = (x[mid] - g[gi[mid]]) / (g[gi[mid] + 1] - g[gi[mid]])
        T0, DY, FT, FE = cost.decode_arrays(d)
        a, b = T0[gi], T0[gi + 1]
        t0 = a + (b - a) * w
        a, b = DY[gi], DY[gi + 1]
        dyn = a + (b - a) * w
        a, b = FT[gi], FT[gi + 1]
        dt = t0 + (a + (b - a) * w)
        a, b = FE[gi], FE[gi + 1]
        energy = (static * t0 + dyn + (a + (b - a) * w)) * tp + idle_w * dt
        clock = np.full(len(x), f_max)
        capped = np.flatnonzero((t0 > 0) & (static + dyn / np.where(t0 > 0, t0, 1.0) > cap))
        for j in capped.tolist():
            dt[j], energy[j], _, clock[j] = cost.decode_step(d, float(ctx[j]), None if wctx is None else float(wctx[j]))
        ends = np.cumsum(np.concatenate(([t], dt)))[1:]
        starts = np.concatenate(([t], ends[:-1]))
        m = min(m_alloc, int(np.searchsorted(starts, horizon, side="left")))
        if m == 0:
            return t
        held = kv.total - kv.free - kv.idle
        rows = np.empty((m, len(LOG_FIELDS)))
        rows[:, 0] = starts[:m]
        rows[:, 1] = dt[:m]
        rows[:, 2] = rows[:, 3] = rows[:, 10] = rows[:, 13] = 0.0
        rows[:, 4] = d
        rows[:, 5] = held + cum[:m]              # blocks are taken when the run is committed (`finish`)
        rows[:, 6] = kv.idle
        rows[:, 7] = energy[:m]
        rows[:, 8] = energy[:m] / dt[:m]
        rows[:, 9] = clock[:m]
        rows[:, 11] = len(self.decoding) + len(self.prefilling) + len(self.swapped) + len(self.incoming)
        rows[:, 12] = len(self.waiting)
        plan.extra_ends = [t] + ends[:m].tolist()
        plan.run_cum = cum[:m].tolist()
        plan.run_energy = energy[:m].tolist()
        plan.run_dt = dt[:m].tolist()
        plan.run_rows = rows
        self.outstanding -= m * d            # the router sees the tokens of steps already done (outstanding_at)
        return float(ends[m - 1])

    def _run_on_short(self, plan, t, horizon, last, d, t0s, dyns, fts, fes, grid, top, static, cap, tp, f_max,
                      idle_w):
        """The same steps as `_run_on`, one by one (cheaper than arrays for a few steps); same arithmetic."""
        kv, cnt, bs, cost = self.kv, self.cnt, self.bs, self.cost
        base = self.ctx_base
        running = len(self.decoding) + len(self.prefilling) + len(self.swapped) + len(self.incoming)
        waiting = len(self.waiting)
        ends = [t]
        cums, energies, dts, rows = [], [], [], []
        taken = 0
        free = kv.free
        held = kv.total - kv.free - kv.idle
        idle = kv.idle
        k = self.dstep + 1
        steps = 0
        while k <= last and t < horizon:
            need = cnt[k % bs]
            if taken + need > free:
                break                                # eviction or preemption: the planner's job
            taken += need
            cums.append(taken)
            ctx = base + d * (k + 1)
            wctx = self._window_ctx(k) if self.swa else None
            x = (ctx if wctx is None else wctx) / d
            i = bisect_right(grid, x) - 1
            if i < 0:
                i, w = 0, 0.0
            elif i > top:
                i, w = top, 1.0
            else:
                w = (x - grid[i]) / (grid[i + 1] - grid[i])
            a = t0s[i]
            t0 = a + (t0s[i + 1] - a) * w
            a = dyns[i]
            dyn = a + (dyns[i + 1] - a) * w
            if t0 > 0 and static + dyn / t0 > cap:
                dt, energy, _, clock = cost.decode_step(d, ctx, wctx)
            else:
                a = fts[i]
                dt = t0 + (a + (fts[i + 1] - a) * w)
                a = fes[i]
                energy = (static * t0 + dyn + (a + (fes[i + 1] - a) * w)) * tp + idle_w * dt
                clock = f_max
            rows.append((t, dt, 0.0, 0.0, d, held + taken, idle, energy, energy / dt, clock, 0.0, running, waiting, 0.0))
            energies.append(energy)
            dts.append(dt)
            t += dt
            ends.append(t)
            k += 1
            steps += 1
        if steps:
            plan.extra_ends = ends
            plan.run_cum, plan.run_energy, plan.run_dt, plan.run_rows = cums, energies, dts, rows
            self.outstanding -= steps * d
        return t

    def truncate(self, t: float, inclusive: bool = False):
        """An event reaches this replica at `t` during a run of decode steps: drop the steps that would start
        at or after it (after it only, with `inclusive`: the event is handled after iteration ends at the same
        time), as step-by-step planning would have seen the event before them. Returns the new end, or None
        if nothing changes."""
        plan = self.plan
        if plan is None or plan.extra_ends is None:
            return None
        ends = plan.extra_ends
        extra = len(ends) - 1
        k = (bisect_right if inclusive else bisect_left)(ends, t, 0, extra)   # extra steps starting before t
        if k >= extra:
            return None
        drop = extra - k
        self.outstanding += drop * plan.d
        if k:
            plan.extra_ends = ends[:k + 1]
            plan.run_cum, plan.run_energy, plan.run_dt = plan.run_cum[:k], plan.run_energy[:k], plan.run_dt[:k]
            plan.run_rows = plan.run_rows[:k]
        else:
            plan.extra_ends = plan.run_cum = plan.run_energy = plan.run_dt = plan.run_rows = None
        return ends[k]

    def outstanding_at(self, t: float, inclusive: bool = False) -> float:
        """Outstanding tokens as step-by-step processing would show them at `t` (mid-run, fewer steps done)."""
        plan = self.plan
        if plan is None or plan.extra_ends is None:
            return self.outstanding
        ends = plan.extra_ends
        extra = len(ends) - 1
        done = (bisect_right if inclusive else bisect_left)(ends, t, 0, extra)
        return self.outstanding + (extra - done) * plan.d

    def finish(self, end):
        """Apply the iteration that ends at `end`: (finished requests, requests whose prefill completed)."""
        plan, self.plan, self.busy = self.plan, None, False
        finished, prefilled = [], []
        if plan.static_members is not None:
            return self._finish_static(plan, end)
        self.outstanding -= plan.prefill_tokens + plan.d
        if plan.decodes:
            if plan.extra_ends is not None:           # a run of decode steps (see `start`): all but the last
                self.dstep_end.extend(plan.extra_ends[:-1])
                self.dstep += len(plan.extra_ends) - 1
                self.kv.allocate(plan.run_cum[-1])     # fits: checked against the free blocks when planned
                rows = plan.run_rows
                if isinstance(rows, np.ndarray):
                    self.log.frombytes(rows.tobytes())
                else:
                    for row in rows:
                        self.log.extend(row)
                self.energy_j += sum(plan.run_energy)
                self.busy_s += sum(plan.run_dt)
            k = self.dstep
            self.dstep_end.append(end)
            self.dstep += 1
            heap = self.heap
            while heap and heap[0][0] <= k:
                _, epoch, _, r = heapq.heappop(heap)
                if r.epoch != epoch or r.id not in self.decoding:
                    continue
                self._leave(r)
                self._complete(r, end)
                finished.append(r)
        for r, n in plan.chunks:
            r.computed += n
            if r.computed < r.target:
                continue
            self.prefilling.remove(r)
            r.epoch += 1
            if r.prefix and self.kv.prefix_caching:
                moved = self.kv.insert(r.prefix, len(r.nodes), r.nodes, r.computed)
                r.private_blocks -= moved
                r.shared_blocks += moved
            r.generated += 1
            if r.first_token_at is None:
                r.first_token_at = end
            else:
                r.extra_tokens.append(end)
            if r.generated >= r.output:
                self._complete(r, end)
                finished.append(r)
            elif self.role == "prefill":
                prefilled.append(r)
            else:
                self._join(r)
        return finished, prefilled

    def _complete(self, r, end):
        r.finish_at = end
        if r.cache_key is not None and self.kv.prefix_caching and len(r.nodes) == len(r.prefix):
            own = ((r.cache_key, r.prompt - r.prefix_tokens + r.output),)
            moved = self.kv.insert(r.prefix + own, len(r.prefix), r.nodes, r.prompt + r.output - 1)
            r.private_blocks -= moved
        self._free(r)

    def hand_off(self, r):
        """Prefill role: the request's KV has left for a decode replica; free it here."""
        r.private_blocks = self.kv.blocks_for(r.computed) - r.shared_blocks
        self._free(r)
        self.outstanding -= r.output - r.generated

    def _finish_static(self, plan, end):
        batch = self.static_batch
        finished = []
        if plan.static_members == "prefill":
            for r in batch["members"]:
                r.generated = 1
                r.first_token_at = end
                r.j0 = self.dstep
                if r.output == 1:
                    r.finish_at = end
                    finished.append(r)
        else:
            k = self.dstep
            self.dstep_end.append(end)
            self.dstep += 1
            batch["step"] += 1
            for r in batch["members"]:
                if r.generated < r.output:
                    r.generated += 1
                    if r.generated == r.output:
                        r.finish_at = end
                        r.runs.append((self.id, r.j0, k))
                        finished.append(r)
        if batch["step"] >= batch["output"] - 1:
            self.kv.release(batch["blocks"])
            self.static_batch = None
        self.outstanding -= sum(1 for _ in finished)
        return finished, []


def _host_gbps(cost) -> float:
    """Host link of the replica's device (PCIe) for swaps: the device preset's pcie link, else 32 GB/s."""
    links = getattr(cost.device, "links", None) or {}
    pcie = links.get("pcie") if isinstance(links, dict) else None
    bw = getattr(pcie, "bandwidth_gbps", None) if pcie is not None else None
    return float(bw or 32.0)     # 32 GB/s: PCIe Gen4 x16 per direction, where the preset names no host link
