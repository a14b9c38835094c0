"""`ModelSpec`: the one normalized description of a decoder-only LLM.

Each family adapter (workloads/families) turns a Hugging Face `config.json` into a
`ModelSpec`; the torch module builder (workloads/modules) reads only this, so the
many spellings of the same idea in HF configs are handled in exactly one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .errors import ConfigError


@dataclass(frozen=True)
class MoESpec:
    num_experts: int
    top_k: int
    expert_intermediate: int
    shared_experts: int = 0            # count of always-on experts (DeepSeek)
    shared_intermediate: int = 0       # width of the shared expert MLP (Qwen2-MoE / DeepSeek: n_shared * moe_inter)
    shared_gate: bool = False          # Qwen2-MoE: sigmoid gate on the shared expert
    norm_topk: bool = False

    def __post_init__(self):
        if not 0 < self.top_k <= self.num_experts:
            raise ConfigError(f"experts per token ({self.top_k}) must be between 1 and the number of experts "
                              f"({self.num_experts}); fix num_experts_per_tok")


@dataclass(frozen=True)
class MLASpec:
    """DeepSeek multi-head latent attention: the KV cache holds a latent plus a shared RoPE key."""
    q_lora_rank: Optional[int]
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class LayerKind:
    """What distinguishes one decoder layer from another; equal kinds are traced once."""
    moe: bool = False
    window: int = 0                    # sliding-window length, 0 = full attention


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_type: str
    hidden: int
    layers: int
    vocab: int
    max_positions: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    norm: str = "rms"                  # "rms" | "layer"
    norm_bias: bool = True             # LayerNorm only
    norm_eps: float = 1e-5
    position: str = "rope"             # "rope" | "learned" | "alibi"
    rotary_dim: int = 0                # RoPE dims per head (partial rotary)
    learned_pos_offset: int = 0        # OPT stores 2 extra position rows
    qkv_fused: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False              # Qwen3: RMSNorm on q and k per head
    attn_softcap: float = 0.0          # Gemma-2
    final_softcap: float = 0.0
    mlp_gated: bool = True
    mlp_fused: bool = False            # Phi-3: one gate_up projection
    mlp_bias: bool = False
    act: str = "silu"
    parallel_residual: bool = False    # attention and MLP read the same input (GPT-J style)
    shared_input_norm: bool = False    # one norm feeds both branches (Phi-2, Falcon-7B)
    sandwich_norm: bool = False        # Gemma-2 post-attention / post-FFN norms
    sub_norm: bool = False             # BitNet norms before o_proj and down_proj
    embed_scale: bool = False          # Gemma multiplies embeddings by sqrt(hidden)
    embed_norm: bool = False           # BLOOM word_embeddings_layernorm
    tie_embeddings: bool = False
    lm_head_bias: bool = False
    moe: Optional[MoESpec] = None
    mla: Optional[MLASpec] = None
    layer_kinds: tuple = field(default=())
    weight_format: str = "dense"       # "dense" | "ternary" (BitNet b1.58)
    # the config.json it was read from (sorted JSON), for --impl hf; not part of its identity or repr
    source_config: str = field(default="", repr=False, compare=False)

    def __post_init__(self):
        for attr in ("hidden", "layers", "vocab", "max_positions", "heads", "kv_heads", "head_dim", "intermediate"):
            value = getattr(self, attr)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model '{self.name}': {attr} must be a positive integer, got {value!r}; fix the config.json")
        if self.heads % self.kv_heads:
            raise ConfigError(
                f"model '{self.name}': num_attention_heads {self.heads} is not a multiple of num_key_value_heads "
                f"{self.kv_heads}; fix the config.json")
        if len(self.layer_kinds) != self.layers:
            raise ConfigError(f"model '{self.name}': {len(self.layer_kinds)} layer kinds for {self.layers} layers")
        if self.position == "rope" and not (0 < self.rotary_dim <= self.qk_head_dim) and self.mla is None:
            raise ConfigError(f"model '{self.name}': rotary dimension {self.rotary_dim} must be in 1..{self.qk_head_dim}")

    @property
    def qk_head_dim(self) -> int:
        if self.mla:
            return self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim
        return self.head_dim

    def kv_bytes_per_token(self, kv_dtype_bytes: float = 2.0) -> float:
        """Closed form of the KV cache a token leaves behind, summed over layers.

        Sliding-window layers still store each token until it leaves the window, so per
        token the figure is the same; the cap shows up in how much a step reads.
        """
        if self.mla:
            per_layer = self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        else:
            per_layer = 2 * self.kv_heads * self.head_dim
        return per_layer * self.layers * kv_dtype_bytes
