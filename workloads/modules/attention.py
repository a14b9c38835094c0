"""Self-attention blocks: standard multi-head (MHA/GQA/MQA) and DeepSeek MLA."""
from __future__ import annotations

from torch import nn

from .leaves import AttentionCore, Concat, KVAppend, Linear, Rope, make_norm


def _split_heads(x, heads, dim):
    b, s, _ = x.shape
    return x.view(b, s, heads, dim).transpose(1, 2)      # [b, h, s, d], a view


class Attention(nn.Module):
    def __init__(self, spec, kind, **factory):
        super().__init__()
        h, kvh, d = spec.heads, spec.kv_heads, spec.head_dim
        self.h, self.kvh, self.d = h, kvh, d
        if spec.qkv_fused:
            self.qkv_proj = Linear(spec.hidden, (h + 2 * kvh) * d, bias=spec.qkv_bias, **factory)
        else:
            self.q_proj = Linear(spec.hidden, h * d, bias=spec.qkv_bias, **factory)
            self.k_proj = Linear(spec.hidden, kvh * d, bias=spec.qkv_bias, **factory)
            self.v_proj = Linear(spec.hidden, kvh * d, bias=spec.qkv_bias, **factory)
        if spec.qk_norm:
            self.q_norm = make_norm(spec, d, **factory)
            self.k_norm = make_norm(spec, d, **factory)
        self.rope = Rope(spec.rotary_dim) if spec.position == "rope" else None
        self.kv_append = KVAppend()
        self.core = AttentionCore(window=kind.window, softcap=spec.attn_softcap, alibi=spec.position == "alibi")
        self.sub_norm = make_norm(spec, h * d, **factory) if spec.sub_norm else None
        self.o_proj = Linear(h * d, spec.hidden, bias=spec.o_bias, **factory)
        self.window = kind.window

    def cache_shape(self, step):
        return (step.batch, self.kvh, step.kv_slots(self.window), 2 * self.d)

    def forward(self, x, step, cache, rope_tables):
        b, s, _ = x.shape
        h, kvh, d = self.h, self.kvh, self.d
        if hasattr(self, "qkv_proj"):
            qkv = self.qkv_proj(x)
            q, k, v = qkv.split((h * d, kvh * d, kvh * d), dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q, k, v = _split_heads(q, h, d), _split_heads(k, kvh, d), _split_heads(v, kvh, d)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            q, k = self.rope(q, k, *rope_tables)
        self.kv_append(cache, step.write_slot(self.window), k, v)    # cache rows hold [k | v]
        if step.cached:
            seen = cache[:, :, :step.kv_read_len(self.window)]
            k_all, v_all = seen[..., :d], seen[..., d:]
        else:
            k_all, v_all = k, v
        out = self.core(q, k_all, v_all, d).reshape(b, s, h * d)
        if self.sub_norm is not None:
            out = self.sub_norm(out)
        return self.o_proj(out)


class MLAttention(nn.Module):
    """Multi-head latent attention. Prefill expands the latent to per-head K/V; decode absorbs
    the up-projections into q and the output (as DeepSeek's inference code does), so a step
    reads only the latent cache."""

    def __init__(self, spec, kind, **factory):
        super().__init__()
        m = spec.mla
        self.m, self.h = m, spec.heads
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            self.q_a_proj = Linear(spec.hidden, m.q_lora_rank, bias=False, **factory)
            self.q_a_norm = make_norm(spec, m.q_lora_rank, **factory)
            self.q_b_proj = Linear(m.q_lora_rank, self.h * qk, bias=False, **factory)
        else:
            self.q_proj = Linear(spec.hidden, self.h * qk, bias=False, **factory)
        self.kv_a_proj = Linear(spec.hidden, m.kv_lora_rank + m.qk_rope_head_dim, bias=False, **factory)
        self.kv_a_norm = make_norm(spec, m.kv_lora_rank, **factory)
        self.kv_b_proj = Linear(m.kv_lora_rank, self.h * (m.qk_nope_head_dim + m.v_head_dim), bias=False, **factory)
        self.rope = Rope(m.qk_rope_head_dim)
        self.kv_append = KVAppend()
        self.concat_q = Concat()
        self.concat_k = Concat()
        self.core = AttentionCore(window=kind.window)
        self.o_proj = Linear(self.h * m.v_head_dim, spec.hidden, bias=False, **factory)
        self.window = kind.window

    def cache_shape(self, step):
        return (step.batch, 1, step.kv_slots(self.window), self.m.kv_lora_rank + self.m.qk_rope_head_dim)

    def forward(self, x, step, cache, rope_tables):
        m, h = self.m, self.h
        b, s, _ = x.shape
        nope, rope_d, lora, vd = m.qk_nope_head_dim, m.qk_rope_head_dim, m.kv_lora_rank, m.v_head_dim
        q = self.q_b_proj(self.q_a_norm(self.q_a_proj(x))) if m.q_lora_rank else self.q_proj(x)
        q = _split_heads(q, h, nope + rope_d)
        q_nope, q_pe = q[..., :nope], q[..., nope:]
        kv_a = self.kv_a_proj(x)
        c_kv, k_pe = kv_a[..., :lora], kv_a[..., lora:].unsqueeze(1)      # k_pe: [b, 1, s, rope]
        c_kv = self.kv_a_norm(c_kv).unsqueeze(1)                          # [b, 1, s, lora]
        q_pe, k_pe = self.rope(q_pe, k_pe, *rope_tables)
        self.kv_append(cache, step.write_slot(self.window), c_kv, k_pe)
        if step.absorb_mla:
            w = self.kv_b_proj.weight.view(h, nope + vd, lora)
            q_lat = q_nope.transpose(0, 1).reshape(h, b * s, nope) @ w[:, :nope, :]       # [h, b·s, lora]
            q_lat = q_lat.view(h, b, s, lora).transpose(0, 1)
            q_full = self.concat_q(q_lat, q_pe)
            latent = cache[:, :, :step.kv_read_len(self.window)]
            out_lat = self.core(q_full, latent, None, lora, (nope + rope_d) ** -0.5)               # [b, s, h, lora]
            out = out_lat.transpose(0, 2).reshape(h, s * b, lora) @ w[:, nope:, :].transpose(1, 2)
            out = out.view(h, s, b, vd).permute(2, 1, 0, 3).reshape(b, s, h * vd)
        else:   # expand the latent of every token attended to (the new ones, plus the cache in a later chunk)
            if step.cached:
                seen = cache[:, :, :step.kv_read_len(self.window)]
                c_kv, k_pe = seen[..., :lora], seen[..., lora:]
            n = c_kv.shape[2]
            kv = _split_heads(self.kv_b_proj(c_kv.squeeze(1)), h, nope + vd)
            k_nope, v = kv[..., :nope], kv[..., nope:]
            k = self.concat_k(k_nope, k_pe.expand(b, h, n, rope_d))
            q_full = self.concat_q(q_nope, q_pe)
            out = self.core(q_full, k, v, vd).reshape(b, s, h * vd)
        return self.o_proj(out)
