"""The serving event loop: arrivals, routers, replica iterations, KV transfers, follow-up turns.

A plain heap of timed events (replica iteration ends, KV transfers, session follow-ups, wake-ups) beside the
sorted list of arrivals: a serving run has millions of iteration events and nothing that needs simpy's
processes, so the loop is kept to a heap push and pop per event.

Pools: a colocated deployment has one pool of replicas that prefill and decode. A disaggregated one
(Splitwise, DistServe) has a prefill pool and a decode pool, possibly of different systems; a request is
routed to a prefill replica, its first token comes out of the prefill, its KV then crosses the link between the
pools (`kv_link_gbps`, `kv_link_latency_us`) to a decode replica chosen by the decode router, and the prefill
replica frees the KV once it has arrived.
"""
from __future__ import annotations

import heapq
import math

from .request import Req

ITER, TRANSFER, ARRIVE, WAKE = 0, 1, 2, 3
RUN_REPLICAS = 8          # decode runs (Replica.start's horizon) in clusters of up to this many replicas


class Cluster:
    def __init__(self, replicas, router, decode_replicas=None, decode_router=None, kv_link_gbps: float = None,
                 kv_link_latency_us: float = 0.0, fast_forward: bool = True):
        self.replicas = list(replicas)
        self.router = router
        self.decode = list(decode_replicas or [])
        self.decode_router = decode_router
        self.kv_bw = (kv_link_gbps or 0.0) * 1e9
        self.kv_lat = kv_link_latency_us * 1e-6
        self.all = self.replicas + self.decode
        self.transfers = []           # (request id, start, end, bytes)
        self.fast_forward = fast_forward

    def run(self, reqs, progress=None):
        """Serve `reqs` (a list of `Req`, sessions referencing parents by index) to completion."""
        heap = []
        seq = 0
        children = {}
        roots = []
        for r in reqs:
            if r.parent >= 0:
                children.setdefault(r.parent, []).append(r)
            else:
                roots.append(r)
        roots.sort(key=lambda r: (r.arrival, r.id))
        done = 0
        i, n_roots = 0, len(roots)

        def push(t, kind, payload):
            nonlocal seq
            seq += 1
            heapq.heappush(heap, (t, kind, seq, payload))

        # a replica may run decode-only iterations on as one event; whatever reaches it mid-run (an arrival, a
        # KV transfer) cuts the run back to the iterations that started before it (Replica.truncate)
        # runs pay where a replica's next event is many steps away; with many replicas behind one router, routing
        # every arrival has to ask each replica how far its run has gone, which costs more than runs save
        # the stack's host time per request (tokenize, admit) before the router sees it; TTFT counts from arrival
        delay = self.replicas[0].cost.request_overhead_s if self.replicas else 0.0
        horizon = math.inf if self.fast_forward and len(self.all) <= RUN_REPLICAS else None
        tokens = {rep.id: 0 for rep in self.all}
        # where a run is likely to be cut: the next arrival, plus the gaps in which the others get theirs (a hint
        # only; Replica.truncate keeps results exact wherever the run is cut)
        span = roots[-1].arrival - roots[0].arrival if len(roots) > 1 else 0.0
        spread = (len(self.replicas) - 1) * span / (len(roots) - 1) if len(roots) > 1 else 0.0

        def kick(rep, t):
            if rep.busy:
                return
            hint = None
            if horizon is not None:
                hint = (roots[i].arrival + delay + spread) if i < n_roots else math.inf
                hint = max(hint, t)
            res = rep.start(t, hint)
            if res is None:
                return
            if isinstance(res, tuple):
                push(res[1], WAKE, rep)
            else:
                tokens[rep.id] += 1
                push(res, ITER, (rep, tokens[rep.id]))

        def interrupt(rep, t, inclusive):
            if rep.busy and horizon is not None:
                end = rep.truncate(t, inclusive)
                if end is not None:
                    tokens[rep.id] += 1
                    push(end, ITER, (rep, tokens[rep.id]))

        def reject(r, reason):
            nonlocal done
            r.rejected = reason
            done += 1
            for c in children.get(r.id, ()):
                reject(c, f"its previous turn (request {r.id}) was rejected")

        def arrive(r, t, inclusive, start=True):
            rep = self.router.pick(r, self.replicas)
            reason = rep.reject_reason(r)
            if reason is None and self.decode:
                reason = self.decode[0].reject_reason(r)
            if reason is not None:
                reject(r, reason)
                return None
            interrupt(rep, t, inclusive)
            rep.enqueue(r)
            if start:
                kick(rep, t)
            return rep

        def finished(r, t):
            nonlocal done
            done += 1
            for c in children.get(r.id, ()):
                c.arrival = t + c.think
                push(c.arrival + delay, ARRIVE, c)

        while True:
            t_arr = roots[i].arrival + delay if i < n_roots else math.inf
            root = False
            if heap and heap[0][0] < t_arr:
                t, kind, _, payload = heapq.heappop(heap)
            elif i < n_roots:
                t, kind, payload = t_arr, ARRIVE, roots[i]
                i += 1
                root = True
            else:
                break
            if kind == ITER:
                rep, token = payload
                if token != tokens[rep.id]:
                    continue                  # a run cut short: this end no longer exists
                fin, pre = rep.finish(t)
                for r in fin:
                    finished(r, t)
                for r in pre:
                    dst = self.decode_router.pick(r, self.decode)
                    nbytes = rep.kv.blocks_for(r.computed) * rep.block_bytes * rep.cost.devices
                    dt = self.kv_lat + (nbytes / self.kv_bw if self.kv_bw else 0.0)
                    r.transfer_s = dt
                    r.prefill_replica = rep.id
                    self.transfers.append((r.id, t, t + dt, nbytes))
                    push(t + dt, TRANSFER, (r, rep, dst))
                kick(rep, t)
                if progress is not None and fin:
                    progress(done)
            elif kind == TRANSFER:
                r, src, dst = payload
                interrupt(src, t, True)
                interrupt(dst, t, True)
                src.hand_off(r)
                dst.receive(r)
                kick(dst, t)
                kick(src, t)
            elif kind == ARRIVE:
                if not root:
                    arrive(payload, t, True)
                    continue
                # requests arriving at the same instant are all queued before any replica starts an iteration (a
                # burst, a static batch handed over at once): the first must not start a step of its own
                touched = [arrive(payload, t, False, start=False)]
                while i < n_roots and roots[i].arrival + delay == t:
                    touched.append(arrive(roots[i], t, False, start=False))
                    i += 1
                for rep in dict.fromkeys(x for x in touched if x is not None):
                    kick(rep, t)
            else:
                payload_busy = payload.busy
                if not payload_busy:
                    kick(payload, t)
        for rep in self.all:
            assert not rep.has_work(), f"{rep.name} stopped with work left (a scheduling deadlock): {rep.state()}"
        return reqs


def make_requests(df) -> list:
    """`Req` objects from a request table (workloads/requests.py)."""
    keys = df["cache_key"].tolist() if "cache_key" in df.columns else [None] * len(df)
    out = []
    for i, (t, p, o, prefix, parent, key) in enumerate(zip(df["arrival_s"].tolist(), df["prompt_tokens"].tolist(),
                                                            df["output_tokens"].tolist(), df["prefix"].tolist(),
                                                            df["parent"].tolist(), keys)):
        parent = int(parent)
        out.append(Req(i, float(t) if parent < 0 else 0.0, int(p), int(o), prefix or (),
                       key if isinstance(key, str) else None, parent, float(t) if parent >= 0 else 0.0))
    return out
