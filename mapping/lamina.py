"""Lamina's model-attention disaggregation as a task graph (arXiv 2405.01814 v2, sections 3 to 5).

Compute GPUs hold only the weights and run every non-attention operator (tensor parallel inside a model
replica); memory devices hold the KV cache, split by attention head (section 5, "Attention parallelism"),
and jointly run each batch's attention. Per layer the GPUs send q, k and v over the network and get the
attention output back: (2 + 2/G) * e * d * B bytes a layer (section 3.1). The GPUs send q as soon as
q_proj is done and k/v after, so attention over the cached tokens starts before k/v arrive (section
4.2.2). Rotational staggered pipelining (section 4.3): n batches run at once on n - 1 model replicas
(one replica when n = 2); the k-th model slice of batch j runs on replica (j + k) mod (n - 1), so one
batch's attention and transfers overlap another's GEMMs. Which resource bounds the step is found by the
scheduler (`sim.lamina` runs these tasks on the engine's list scheduler), not assumed.
"""
from __future__ import annotations

from dataclasses import dataclass

from .taskgraph import Task

ATTENTION = ("attn.core", "attn.kv_append")
KV_PROJ = ("attn.k_proj", "attn.v_proj")


@dataclass(frozen=True)
class Network:
    """The DCN between the pools: every device has its own NIC (Lamina's testbed)."""
    bandwidth: float            # bytes/s per NIC per direction
    latency: float              # s, one way, per message

    def send_s(self, nbytes: float, senders: int, receivers: int) -> float:
        """One transfer spread evenly over the sending and receiving NICs (heads split both sides)."""
        return self.latency + nbytes / min(senders, receivers) / self.bandwidth


@dataclass(frozen=True)
class BatchCosts:
    """One batch's per-layer times (s) and transfer sizes (bytes) on a Lamina setup."""
    batch: int
    head_s: float               # GPU: embedding etc. before the first layer
    q_part_s: float             # GPU: input norm, q_proj, RoPE (then q can leave)
    kv_part_s: float            # GPU: k_proj, v_proj
    post_s: float               # GPU: o_proj, FFN, norms, residuals and their TP all-reduces
    tail_s: float               # GPU: final norm, LM head and its all-gather
    attention_s: float          # memory devices: attention over the cached tokens
    append_s: float             # memory devices: append the new k/v, merge the new token's part
    q_bytes: float
    kv_bytes: float
    out_bytes: float
    layers: int
    gpu_clock_mhz: float        # the GPUs' SM clock at this load (the power cap may pull it down)




def staggered_tasks(costs: list, net: Network, tp: int, n_mem: int, iterations: int = 3) -> tuple:
    """(tasks, bytes sent per direction, (iteration, last task of each batch)) of `iterations` decode steps
    of len(costs) concurrent batches under rotational staggered pipelining, back to back (a batch starts its
    next token as soon as its last slice is done). Resources: each replica's GPUs, the memory devices (jointly, one batch at a
    time), the uplink and the downlink (full duplex)."""
    n = len(costs)
    replicas = max(1, n - 1)
    layers = costs[0].layers
    tasks, sent = [], {"up": 0.0, "down": 0.0}
    ends = []
    for it in range(iterations):
        for j, c in enumerate(costs):
            prev = f"tail{it - 1}:{j}" if it else None
            for layer in range(layers):
                k = f"{it}:{j}:{layer}"
                gpu = f"gpu{(j + layer) % replicas}"
                start = c.head_s if layer == 0 else c.post_s
                dep = [prev] if prev else []
                tasks += [Task(f"gq{k}", gpu, start + c.q_part_s, dep),
                          # same program as gq: released by the same event, it queues right behind it
                          Task(f"gkv{k}", gpu, c.kv_part_s, list(dep)),
                          Task(f"sq{k}", "up", net.send_s(c.q_bytes, tp, n_mem), [f"gq{k}"]),
                          Task(f"skv{k}", "up", net.send_s(c.kv_bytes, tp, n_mem), [f"gkv{k}"]),
                          Task(f"att{k}", "mem", c.attention_s, [f"sq{k}"]),
                          Task(f"new{k}", "mem", c.append_s, [f"att{k}", f"skv{k}"]),
                          Task(f"so{k}", "down", net.send_s(c.out_bytes, n_mem, tp), [f"new{k}"])]
                sent["up"] += c.q_bytes + c.kv_bytes
                sent["down"] += c.out_bytes
                prev = f"so{k}"
            tasks.append(Task(f"tail{it}:{j}", f"gpu{(j + layers) % replicas}", c.post_s + c.tail_s, [prev]))
            ends.append((it, f"tail{it}:{j}"))
    return tasks, sent, ends
