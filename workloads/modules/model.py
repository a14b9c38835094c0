"""The decoder layer, the full causal LM, and `Step` (the shape of one forward pass)."""
from __future__ import annotations

import math
import torch
from torch import nn

from .attention import Attention, MLAttention
from .leaves import Add, Embedding, Linear, RotaryTables, Scale, Softcap, make_norm
from .mlp import MLP, MoE
from ..step import Step


class DecoderLayer(nn.Module):
    def __init__(self, spec, kind, group: int, **factory):
        super().__init__()
        self.hwsim_group = group
        self.kind = kind
        self.parallel, self.sandwich = spec.parallel_residual, spec.sandwich_norm
        self.input_norm = make_norm(spec, spec.hidden, **factory)
        self.attn = (MLAttention if spec.mla else Attention)(spec, kind, **factory)
        if spec.sandwich_norm:
            self.post_attn_norm = make_norm(spec, spec.hidden, **factory)
            self.post_mlp_norm = make_norm(spec, spec.hidden, **factory)
        self.mlp_norm = None if spec.shared_input_norm else make_norm(spec, spec.hidden, **factory)
        if kind.moe:
            self.mlp = MoE(spec, **factory)
        else:
            self.mlp = MLP(spec, spec.intermediate, **factory)
        self.residual_attn = Add()
        self.residual_mlp = Add()

    def _mlp(self, x, step):
        return self.mlp(x, step) if isinstance(self.mlp, MoE) else self.mlp(x)

    def forward(self, x, step, cache, rope_tables):
        a_in = self.input_norm(x)
        a = self.attn(a_in, step, cache, rope_tables)
        if self.sandwich:
            a = self.post_attn_norm(a)
        if self.parallel:
            m = self._mlp(a_in if self.mlp_norm is None else self.mlp_norm(x), step)
            return self.residual_mlp(x, a, m)
        x = self.residual_attn(x, a)
        m = self._mlp(self.mlp_norm(x), step)
        if self.sandwich:
            m = self.post_mlp_norm(m)
        return self.residual_mlp(x, m)


class CausalLM(nn.Module):
    """Embeddings, one module per distinct layer kind, final norm and LM head.

    `plan[i]` names the module that layer i runs; layers of one kind share a module, so a
    405B model is as cheap to build as one layer. `forward(step, unique=True)` runs each
    kind once (what the tracer needs); `unique=False` runs every layer.
    """

    def __init__(self, spec, dtype=torch.bfloat16, device="meta", theta: float = 10000.0, share_layers: bool = True):
        super().__init__()
        factory = dict(dtype=dtype, device=device)
        self.spec, self.dtype = spec, dtype
        self.embed_tokens = Embedding(spec.vocab, spec.hidden, **factory)
        if spec.position == "learned":
            self.embed_positions = Embedding(spec.max_positions + spec.learned_pos_offset, spec.hidden, **factory)
            self.add_positions = Add()
        if spec.embed_scale:
            self.scale_embed = Scale(math.sqrt(spec.hidden))
        if spec.embed_norm:
            self.embed_norm = make_norm(spec, spec.hidden, **factory)
        rot = spec.mla.qk_rope_head_dim if spec.mla else spec.rotary_dim
        self.rotary = RotaryTables(rot, theta).to(device) if spec.position == "rope" else None
        if share_layers:   # one module per distinct layer kind (tracing)
            kinds = list(dict.fromkeys(spec.layer_kinds))
            self.plan = tuple(kinds.index(kind) for kind in spec.layer_kinds)
        else:              # one module per layer (running real weights, e.g. GPU calibration)
            kinds = list(spec.layer_kinds)
            self.plan = tuple(range(spec.layers))
        self.layers = nn.ModuleList(DecoderLayer(spec, kind, g, **factory) for g, kind in enumerate(kinds))
        self.final_norm = make_norm(spec, spec.hidden, **factory)
        self.lm_head = Linear(spec.hidden, spec.vocab, bias=spec.lm_head_bias, **factory)
        if spec.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        if spec.final_softcap:
            self.softcap = Softcap(spec.final_softcap)

    def layer_indices(self) -> dict:
        """Layer kind (module index) -> the layer indices that use it."""
        groups: dict = {}
        for i, g in enumerate(self.plan):
            groups.setdefault(g, []).append(i)
        return groups

    def parameter_count(self) -> int:
        """All weights of the full model: shared-module parameters counted once per layer using them."""
        per_layer = {id(p) for layer in self.layers for p in layer.parameters()}
        total = sum(p.numel() for p in {id(p): p for p in self.parameters()}.values() if id(p) not in per_layer)
        for g, layer in enumerate(self.layers):
            total += sum(p.numel() for p in layer.parameters()) * self.plan.count(g)
        return total

    def layer_parameter_counts(self) -> tuple:
        """(all parameters, projection weights) of each decoder layer, in layer order."""
        from .leaves import Linear as _Linear
        per = [(sum(p.numel() for p in layer.parameters()),
                sum(m.weight.numel() for m in layer.modules() if isinstance(m, _Linear))) for layer in self.layers]
        return tuple(per[g][0] for g in self.plan), tuple(per[g][1] for g in self.plan)

    def linear_weight_count(self) -> int:
        """Weights of the projection layers inside the decoder (what weight quantization compresses)."""
        from .leaves import Linear as _Linear
        total = 0
        for g, layer in enumerate(self.layers):
            n = sum(m.weight.numel() for m in layer.modules() if isinstance(m, _Linear))
            total += n * self.plan.count(g)
        return total

    def allocate_caches(self, step: Step, unique: bool = True) -> list:
        """KV caches for a step (one per layer run), tagged so the tracer counts them as KV bytes."""
        device = self.embed_tokens.weight.device
        caches = []
        for g in (self._order(unique)):
            cache = torch.zeros(self.layers[g].attn.cache_shape(step), dtype=self.dtype, device=device)
            cache.hwsim_class = "kv_cache"
            caches.append(cache)
        return caches

    def _order(self, unique: bool):
        return sorted(set(self.plan), key=self.plan.index) if unique else self.plan

    def forward(self, step: Step, unique: bool = True, last_token_logits: bool = True, caches=None, ids=None):
        """`ids` [batch, new tokens]: the token ids (default all 0, as the 2026-11-24 GPU data was taken: every row
        of the activations alike, which draws less GEMM power than real tokens do)."""
        b, s, device = step.batch, step.new_tokens, self.embed_tokens.weight.device
        if ids is None:
            ids = torch.zeros((b, s), dtype=torch.long, device=device)
        x = self.embed_tokens(ids)
        positions = torch.arange(step.cached, step.cached + s, device=device).expand(b, s)
        if hasattr(self, "embed_positions"):
            x = self.add_positions(x, self.embed_positions(positions + self.spec.learned_pos_offset))
        if hasattr(self, "scale_embed"):
            x = self.scale_embed(x)
        if hasattr(self, "embed_norm"):
            x = self.embed_norm(x)
        rope_tables = self.rotary(positions, self.dtype) if self.rotary is not None else None
        order = self._order(unique)
        caches = self.allocate_caches(step, unique) if caches is None else caches
        for g, cache in zip(order, caches):
            x = self.layers[g](x, step, cache, rope_tables)
        x = self.final_norm(x)
        if last_token_logits:
            x = x[:, -1:, :]
        logits = self.lm_head(x)
        if hasattr(self, "softcap"):
            logits = self.softcap(logits)
        return logits
