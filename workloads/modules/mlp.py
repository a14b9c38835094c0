"""Feed-forward blocks: dense MLP (gated or plain) and mixture-of-experts."""
from __future__ import annotations

import torch
from torch import nn

from .leaves import Activation, Add, Combine, Gather, Linear, Router, Zeros, make_norm


class MLP(nn.Module):
    def __init__(self, spec, width: int, gated=None, fused=None, bias=None, **factory):
        super().__init__()
        self.gated = spec.mlp_gated if gated is None else gated
        fused = spec.mlp_fused if fused is None else fused
        bias = spec.mlp_bias if bias is None else bias
        self.width = width
        if self.gated and fused:
            self.gate_up_proj = Linear(spec.hidden, 2 * width, bias=bias, **factory)
        elif self.gated:
            self.gate_proj = Linear(spec.hidden, width, bias=bias, **factory)
            self.up_proj = Linear(spec.hidden, width, bias=bias, **factory)
        else:
            self.up_proj = Linear(spec.hidden, width, bias=bias, **factory)
        self.act = Activation(spec.act)
        self.sub_norm = make_norm(spec, width, **factory) if spec.sub_norm else None
        self.down_proj = Linear(width, spec.hidden, bias=bias, **factory)

    def forward(self, x):
        if hasattr(self, "gate_up_proj"):
            gate, up = self.gate_up_proj(x).split(self.width, dim=-1)
            y = self.act(gate, up)
        elif self.gated:
            y = self.act(self.gate_proj(x), self.up_proj(x))
        else:
            y = self.act(self.up_proj(x))
        if self.sub_norm is not None:
            y = self.sub_norm(y)
        return self.down_proj(y)


class MoE(nn.Module):
    """Routed experts plus optional shared experts.

    Routing is data-dependent, so the number of tokens each expert receives is a parameter
    of the step (`Step.expert_tokens`); by default the routed tokens are spread evenly.
    """

    def __init__(self, spec, **factory):
        super().__init__()
        moe = spec.moe
        self.moe = moe
        self.router_proj = Linear(spec.hidden, moe.num_experts, bias=False, **factory)
        self.router = Router(moe.top_k)
        self.experts = nn.ModuleList(MLP(spec, moe.expert_intermediate, gated=True, fused=False, bias=False, **factory)
                                     for _ in range(moe.num_experts))
        self.gathers = nn.ModuleList(Gather() for _ in range(moe.num_experts))
        self.combines = nn.ModuleList(Combine() for _ in range(moe.num_experts))
        self.zeros = Zeros()
        if moe.shared_experts:
            self.shared = MLP(spec, moe.shared_intermediate, gated=True, fused=False, bias=False, **factory)
            self.shared_add = Add()
            if moe.shared_gate:
                self.shared_gate_proj = Linear(spec.hidden, 1, bias=False, **factory)
                self.shared_gate = Activation("sigmoid_gate")

    def forward(self, x, step):
        b, s, hidden = x.shape
        flat = x.reshape(b * s, hidden)
        weights = self.router(self.router_proj(flat))                   # [T, top_k]
        out = self.zeros(flat)
        counts = step.tokens_per_expert(b * s, self.moe.num_experts, self.moe.top_k)
        for e, n in enumerate(counts):
            if n == 0:
                continue
            index = torch.arange(n, device=x.device)                   # which rows: irrelevant to cost
            if n > flat.shape[0]:   # expert parallel: more tokens arrive than this device holds (received rows)
                index = index % flat.shape[0]
            y = self.experts[e](self.gathers[e](flat, index))
            w = weights[:n, :1] if n <= flat.shape[0] else weights.index_select(0, index)[:, :1]
            out = self.combines[e](out, index, y, w)
        if self.moe.shared_experts:
            shared = self.shared(flat)
            if self.moe.shared_gate:
                shared = self.shared_gate(self.shared_gate_proj(flat), shared)
            out = self.shared_add(out, shared)
        return out.view(b, s, hidden)
