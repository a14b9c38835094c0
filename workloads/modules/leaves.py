"""Leaf modules: each call is one logical operator in the traced graph.

A leaf carries `hwsim_kind`; every aten kernel run inside it is grouped into one `Op`
of that kind (the unfused kernels stay listed on the op for eager-mode cost models).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention_op import attention


class Leaf(nn.Module):
    hwsim_kind = "elementwise"


class Linear(nn.Linear):
    hwsim_kind = "matmul"


class Embedding(nn.Embedding):
    hwsim_kind = "embedding"

    def reset_parameters(self):
        if not self.weight.is_meta:   # nn.init on meta imports torch._dynamo (~1 s) for nothing
            super().reset_parameters()


class RMSNorm(Leaf):
    hwsim_kind = "norm"

    def __init__(self, dim: int, eps: float, **factory):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, **factory))
        self.eps = eps

    def forward(self, x):
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class LayerNorm(nn.LayerNorm):
    hwsim_kind = "norm"


def make_norm(spec, dim: int, **factory) -> nn.Module:
    if spec.norm == "rms":
        return RMSNorm(dim, spec.norm_eps, **factory)
    return LayerNorm(dim, eps=spec.norm_eps, bias=spec.norm_bias, **factory)


_ACTIVATIONS = {
    "silu": F.silu, "swish": F.silu, "relu": F.relu, "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"), "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"), "relu2": lambda x: F.relu(x).square(),
    "sigmoid_gate": torch.sigmoid,
}


def activation_fn(name: str):
    from ..errors import ConfigError
    if name not in _ACTIVATIONS:
        raise ConfigError(f"activation {name!r} is not supported; use one of {', '.join(sorted(_ACTIVATIONS))}")
    return _ACTIVATIONS[name]


class Activation(Leaf):
    """act(x), or act(gate) * up for gated MLPs."""

    def __init__(self, name: str):
        super().__init__()
        self.fn = activation_fn(name)

    def forward(self, x, up=None):
        y = self.fn(x)
        return y if up is None else y * up


class Add(Leaf):
    """Residual connection(s)."""

    def forward(self, x, *others):
        for other in others:
            x = x + other
        return x


class Scale(Leaf):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Softcap(Leaf):
    def __init__(self, cap: float):
        super().__init__()
        self.cap = cap

    def forward(self, x):
        return torch.tanh(x / self.cap) * self.cap


class RotaryTables(Leaf):
    """cos/sin for the positions of this step (computed once per step, as HF does)."""

    def __init__(self, rotary_dim: int, theta: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions, dtype):
        freqs = positions.unsqueeze(-1).float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype).unsqueeze(1), emb.sin().to(dtype).unsqueeze(1)


def _rotate(x, cos, sin, rot):
    x_rot, x_pass = (x[..., :rot], x[..., rot:]) if rot < x.shape[-1] else (x, None)
    half = rot // 2
    rotated = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    out = x_rot * cos + rotated * sin
    return out if x_pass is None else torch.cat((out, x_pass), dim=-1)


class Rope(Leaf):
    """Rotary embedding applied to q and k ([b, h, s, d]); partial rotary leaves the tail untouched."""

    def __init__(self, rotary_dim: int):
        super().__init__()
        self.rot = rotary_dim

    def forward(self, q, k, cos, sin):
        return _rotate(q, cos, sin, self.rot), _rotate(k, cos, sin, self.rot)


class KVAppend(Leaf):
    """Writes this step's keys/values into the preallocated cache."""
    hwsim_kind = "memcpy"

    def forward(self, cache, start: int, *parts):
        new = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        n = new.shape[2]
        keep = min(n, cache.shape[2])
        cache[:, :, start:start + keep].copy_(new[:, :, n - keep:])


class Concat(Leaf):
    hwsim_kind = "memcpy"

    def forward(self, *parts, dim=-1):
        return torch.cat(parts, dim=dim)


class AttentionCore(Leaf):
    hwsim_kind = "attention"

    def __init__(self, causal=True, window=0, softcap=0.0, alibi=False):
        super().__init__()
        self.causal, self.window, self.softcap, self.alibi = causal, window, softcap, alibi

    def forward(self, q, k, v, dv: int, scale: float = 0.0):
        return attention(q, k, v, dv, self.causal, self.window, self.softcap, self.alibi, scale)


class Gather(Leaf):
    """MoE dispatch: the rows of the tokens routed to one expert."""
    hwsim_kind = "memcpy"

    def forward(self, x, index):
        return x.index_select(0, index)


class Combine(Leaf):
    """MoE combine: weight an expert's output and add it back into the token rows."""

    def forward(self, out, index, y, weight):
        return out.index_add_(0, index, y * weight)


class Router(Leaf):
    hwsim_kind = "softmax"

    def __init__(self, top_k: int):
        super().__init__()
        self.top_k = top_k

    def forward(self, logits):
        probs = torch.softmax(logits.float(), dim=-1)
        weights, _ = torch.topk(probs, self.top_k, dim=-1)
        return weights.to(logits.dtype)


class Zeros(Leaf):
    hwsim_kind = "memcpy"

    def forward(self, like):
        return torch.zeros_like(like)

