"""`hwsim::attention`: one fused attention kernel as a torch custom op.

Eager SDPA on the meta device decomposes into a dozen math ops; real inference runs one
fused kernel (FlashAttention, FlashMLA, paged decode). A custom op keeps it one node in the
graph with the shapes a cost model needs, and registers its FLOPs with
`torch.utils.flop_counter` using the same formula torch uses for SDPA.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch.utils.flop_counter import register_flop_formula


@torch.library.custom_op("hwsim::attention", mutates_args=())
def attention(q: torch.Tensor, k: torch.Tensor, v: Optional[torch.Tensor], dv: int, causal: bool,
              window: int, softcap: float, alibi: bool, scale: float = 0.0) -> torch.Tensor:
    """q [b, hq, sq, d], k [b, hkv, sk, d], v [b, hkv, sk, dv] or None (then v = k[..., :dv], as in MLA).

    Returns [b, sq, hq, dv]. Query i sits at absolute position sk - sq + i. `scale` 0 means 1/sqrt(d).
    """
    return _reference(q, k, v, dv, causal, window, softcap, alibi, scale)


def _reference(q, k, v, dv, causal, window, softcap, alibi, scale):
    """The plain math of the op, on any device (also the GPU fallback for masks SDPA lacks)."""
    if v is None:
        v = k[..., :dv]
    group = q.shape[1] // k.shape[1]
    acc = torch.promote_types(q.dtype, torch.float32)
    k = k.repeat_interleave(group, dim=1).to(acc)
    v = v.repeat_interleave(group, dim=1).to(acc)
    scores = q.to(acc) @ k.transpose(-1, -2) * (scale or 1.0 / math.sqrt(q.shape[-1]))
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    sq, sk = q.shape[2], k.shape[2]
    qpos = torch.arange(sk - sq, sk, device=q.device).unsqueeze(1)
    kpos = torch.arange(sk, device=q.device).unsqueeze(0)
    if alibi:
        slopes = torch.pow(2.0, -8.0 * torch.arange(1, q.shape[1] + 1, device=q.device) / q.shape[1])
        scores = scores + slopes.view(1, -1, 1, 1) * (kpos - qpos).float()
    allowed = torch.ones(sq, sk, dtype=torch.bool, device=q.device)
    if causal:
        allowed &= kpos <= qpos
    if window:
        allowed &= kpos > qpos - window
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return out.transpose(1, 2).contiguous().to(q.dtype)


@attention.register_kernel("cuda")
def _attention_cuda(q, k, v, dv, causal, window, softcap, alibi, scale=0.0):
    """On a GPU: torch's SDPA (flash / memory-efficient kernels), as a plain eager model would run."""
    import torch.nn.functional as F
    if v is None:
        v = k[..., :dv]
    sq, sk = q.shape[2], k.shape[2]
    if softcap or alibi:
        return _reference(q, k, v, dv, causal, window, softcap, alibi, scale)
    kwargs = {"scale": scale} if scale else {}
    if window and window < sk:   # sliding window: an explicit mask, as HF's eager SDPA path builds it
        qpos = torch.arange(sk - sq, sk, device=q.device).unsqueeze(1)
        kpos = torch.arange(sk, device=q.device).unsqueeze(0)
        mask, is_causal = (kpos > qpos - window) & ((kpos <= qpos) if causal else True), False
    elif causal and sq == sk:
        mask, is_causal = None, True
    elif causal and sq > 1:   # a chunk after cached tokens: bottom-right aligned causal mask
        mask = torch.ones(sq, sk, dtype=torch.bool, device=q.device).tril(diagonal=sk - sq)
        is_causal = False
    else:                     # one new token attends to everything cached
        mask, is_causal = None, False
    if k.shape[1] != q.shape[1]:
        kwargs["enable_gqa"] = True      # KV heads broadcast inside the kernel, no repeat_kv copy
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, **kwargs)
    return out.transpose(1, 2).contiguous()


@attention.register_fake
def _attention_fake(q, k, v, dv, causal, window, softcap, alibi, scale=0.0):
    return q.new_empty((q.shape[0], q.shape[2], q.shape[1], dv))


def attention_flops(q_shape, k_shape, dv: int) -> int:
    """2·b·hq·sq·sk·(d + dv): the QKᵀ and PV products, with KV heads broadcast (as torch counts SDPA)."""
    b, hq, sq, d = q_shape
    sk = k_shape[2]
    return 2 * b * hq * sq * sk * d + 2 * b * hq * sq * sk * dv


@register_flop_formula(torch.ops.hwsim.attention)
def _attention_flop_formula(q_shape, k_shape, v_shape, dv, *args, out_shape=None, **kwargs) -> int:
    return attention_flops(q_shape, k_shape, dv)
