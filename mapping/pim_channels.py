"""Which PIM channel holds each request's KV cache, in a continuously batched decode: round-robin or
NeuPIMs' greedy min-load bin packing (Algorithm 1), and the per-channel attention load that results.

Why simulate the batch over time: a channel runs its requests' attention GEMVs one after another, so a
decode step's attention lasts as long as the most loaded channel. Requests are placed when they arrive
and then grow by one token per step while others finish and are replaced, so even a balanced placement
drifts out of balance. As in the NeuPIMs trace generator (github casys-kaist/NeuPIMs,
trace-generator/get_distributions.py): the batch is kept full; a finished request is replaced by a new
one drawn from the dataset; only new requests are placed: round-robin takes the next channel in turn,
greedy sorts the arrivals by estimated attention time (longest first) and puts each on the channel
whose current load (sum of its requests' estimates at their current lengths) is least. Snapshots are
taken after a warm-up of twice max_seq_len steps. Difference from the generator: a request ends when
its context reaches max_seq_len (prompts longer than that are cut), where the generator keeps it at the
cap until its output is done.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workloads.errors import HwsimError
from workloads.request_lengths import sample_requests

POLICIES = ("round-robin", "greedy")


@dataclass(frozen=True)
class BatchSnapshot:
    ctx: np.ndarray          # context length of each request at this decode step
    channel: np.ndarray      # the channel holding its KV cache
    arrival: np.ndarray      # the step it arrived (its order in the channel's queue)


def steady_batches(dataset: str, batch: int, channels: int, policy: str, load_ns: np.ndarray,
                   snapshots: int = 10, gap: int = 64, seed: int = 0, max_seq_len: int = 1024) -> list:
    """`snapshots` decode steps of a full batch, `gap` steps apart. load_ns[L]: estimated attention ns
    of one request at context L (the greedy policy's cost estimate)."""
    if policy not in POLICIES:
        raise HwsimError(f"unknown channel placement '{policy}'; use one of {', '.join(POLICIES)}")
    if batch < 1 or channels < 1:
        raise HwsimError("batch and channels must be positive")
    rng = np.random.default_rng(seed)
    inp, out = np.empty(batch, int), np.empty(batch, int)
    gen, arrival = np.zeros(batch, int), np.zeros(batch, int)
    channel = np.full(batch, -1)
    pointer, pool, used = [0], list(sample_requests(dataset, 4 * batch + 8 * max_seq_len * batch // 64, rng)), [0]

    def draw(idx, step):
        k = used[0]
        if k + len(idx) > len(pool[0]):
            pool[:], used[0], k = sample_requests(dataset, len(pool[0]), rng), 0, 0
        i, o = pool[0][k:k + len(idx)], pool[1][k:k + len(idx)]
        used[0] = k + len(idx)
        inp[idx] = np.clip(i, 1, max_seq_len - 1)
        out[idx] = np.minimum(o, max_seq_len - inp[idx])
        gen[idx], arrival[idx] = 0, step

    def place(idx):
        if policy == "round-robin":
            channel[idx] = (pointer[0] + np.arange(len(idx))) % channels
            pointer[0] = (pointer[0] + len(idx)) % channels
            return
        ctx = inp + gen
        live = channel >= 0
        loads = np.bincount(channel[live], weights=load_ns[ctx[live]], minlength=channels)
        for i in idx[np.argsort(-load_ns[ctx[idx]], kind="stable")]:
            j = int(np.argmin(loads))
            channel[i] = j
            loads[j] += load_ns[ctx[i]]

    everyone = np.arange(batch)
    draw(everyone, 0)
    place(everyone)
    warmup, taken = 2 * max_seq_len, []
    for step in range(1, warmup + snapshots * gap + 1):
        gen += 1
        done = np.flatnonzero(gen >= out)
        if len(done):
            channel[done] = -1
            draw(done, step)
            place(done)
        if step > warmup and (step - warmup) % gap == 0:
            taken.append(BatchSnapshot(np.minimum(inp + gen, max_seq_len), channel.copy(), arrival.copy()))
    return taken


def first_half(snap: BatchSnapshot, channels: int) -> np.ndarray:
    """Mask of sub-batch one: in every channel the earlier-arrived half of its requests (odd counts split
    ceil and floor in turn), as the NeuPIMs scheduler's simple partition (src/scheduler/Scheduler.cc)."""
    mask = np.zeros(len(snap.ctx), bool)
    ceil_turn = True
    for ch in range(channels):
        idx = np.flatnonzero(snap.channel == ch)
        idx = idx[np.argsort(snap.arrival[idx], kind="stable")]
        k = len(idx) // 2
        if len(idx) % 2:
            k, ceil_turn = k + ceil_turn, not ceil_turn
        mask[idx[:k]] = True
    return mask


def channel_ns(per_request_ns: np.ndarray, snap: BatchSnapshot, channels: int, mask=None) -> np.ndarray:
    """Busy ns of each channel: the sum over the requests it holds (those in `mask`, default all)."""
    keep = np.ones(len(snap.ctx), bool) if mask is None else mask
    return np.bincount(snap.channel[keep], weights=per_request_ns[keep], minlength=channels)
