"""Adapters for Llama-style decoders (RoPE, RMSNorm, gated MLP) and their MoE / MLA relatives."""
from __future__ import annotations

from ..errors import ConfigError
from ..spec import LayerKind, MLASpec, ModelSpec, MoESpec
from . import family
from ._read import ConfigReader


def _rope_base(r: ConfigReader, **overrides) -> dict:
    hidden = r.int("hidden_size")
    heads = r.int("num_attention_heads")
    head_dim = r.int("head_dim", hidden // heads if hidden % heads == 0 else None)
    if head_dim is None:
        raise ConfigError(f"model '{r.name}': hidden_size {hidden} is not divisible by num_attention_heads {heads}; set head_dim")
    layers = r.int("num_hidden_layers")
    rotary_dim = int(head_dim * r.float("partial_rotary_factor", 1.0, low=0.0, high=1.0))
    fields = dict(
        name=r.name, model_type=r.str("model_type", "llama"), hidden=hidden, layers=layers,
        vocab=r.int("vocab_size"), max_positions=r.int("max_position_embeddings"),
        heads=heads, kv_heads=r.int("num_key_value_heads", heads), head_dim=head_dim,
        intermediate=r.int("intermediate_size"), norm="rms", norm_eps=r.float("rms_norm_eps", 1e-6),
        position="rope", rotary_dim=rotary_dim - rotary_dim % 2,
        qkv_bias=r.bool("attention_bias", False), o_bias=r.bool("attention_bias", False),
        mlp_bias=r.bool("mlp_bias", False), act=r.str(["hidden_act", "hidden_activation"], "silu"),
        tie_embeddings=r.bool("tie_word_embeddings", False),
        layer_kinds=tuple(LayerKind() for _ in range(layers)),
    )
    fields.update(overrides)
    return fields


def _windowed(r: ConfigReader, layers: int, enabled: bool = True) -> tuple:
    window = r.window() if enabled else 0
    return tuple(LayerKind(window=window) for _ in range(layers))


@family("llama", "mistral", "codellama")
def llama(r: ConfigReader) -> ModelSpec:
    fields = _rope_base(r)
    fields["layer_kinds"] = _windowed(r, fields["layers"])
    return ModelSpec(**fields)


@family("qwen2")
def qwen2(r: ConfigReader) -> ModelSpec:
    fields = _rope_base(r, qkv_bias=True)
    fields["layer_kinds"] = _windowed(r, fields["layers"], r.bool("use_sliding_window", False))
    return ModelSpec(**fields)


@family("qwen3")
def qwen3(r: ConfigReader) -> ModelSpec:
    fields = _rope_base(r, qk_norm=True)
    fields["layer_kinds"] = _windowed(r, fields["layers"], r.bool("use_sliding_window", False))
    return ModelSpec(**fields)


@family("phi3")
def phi3(r: ConfigReader) -> ModelSpec:
    fields = _rope_base(r, qkv_fused=True, mlp_fused=True, norm_eps=r.float("rms_norm_eps", 1e-5))
    fields["layer_kinds"] = _windowed(r, fields["layers"])
    return ModelSpec(**fields)


@family("gemma")
def gemma(r: ConfigReader) -> ModelSpec:
    fields = _rope_base(r, embed_scale=True, tie_embeddings=r.bool("tie_word_embeddings", True),
                        act=r.str(["hidden_activation", "hidden_act"], "gelu_pytorch_tanh"))
    return ModelSpec(**fields)


@family("gemma2")
def gemma2(r: ConfigReader) -> ModelSpec:
    fields = _rope_base(r, embed_scale=True, sandwich_norm=True, tie_embeddings=r.bool("tie_word_embeddings", True),
                        act=r.str(["hidden_activation", "hidden_act"], "gelu_pytorch_tanh"),
                        attn_softcap=r.float("attn_logit_softcapping", 0.0) or 0.0,
                        final_softcap=r.float("final_logit_softcapping", 0.0) or 0.0)
    window = r.window()
    layer_types = r.str_list("layer_types")
    if layer_types and len(layer_types) != fields["layers"]:
        raise ConfigError(f"model '{r.name}': layer_types lists {len(layer_types)} layers, not {fields['layers']}")
    if layer_types:
        kinds = tuple(LayerKind(window=window if t == "sliding_attention" else 0) for t in layer_types)
    else:  # HF Gemma-2: even layers use the sliding window, odd layers attend globally
        kinds = tuple(LayerKind(window=window if i % 2 == 0 else 0) for i in range(fields["layers"]))
    fields["layer_kinds"] = kinds
    return ModelSpec(**fields)


@family("bitnet")
def bitnet(r: ConfigReader) -> ModelSpec:
    act = r.str(["hidden_act", "hidden_activation"], "silu")
    fields = _rope_base(r, weight_format="ternary", sub_norm=(act == "relu2"),
                        tie_embeddings=r.bool("tie_word_embeddings", act == "relu2"))
    return ModelSpec(**fields)


@family("mixtral")
def mixtral(r: ConfigReader) -> ModelSpec:
    fields = _rope_base(r)
    moe = MoESpec(num_experts=r.int("num_local_experts"), top_k=r.int("num_experts_per_tok"),
                  expert_intermediate=fields["intermediate"], norm_topk=True)
    window = r.window()
    fields.update(moe=moe, layer_kinds=tuple(LayerKind(moe=True, window=window) for _ in range(fields["layers"])))
    return ModelSpec(**fields)


@family("qwen2_moe")
def qwen2_moe(r: ConfigReader) -> ModelSpec:
    fields = _rope_base(r, qkv_bias=True)
    moe = MoESpec(num_experts=r.int("num_experts"), top_k=r.int("num_experts_per_tok"),
                  expert_intermediate=r.int("moe_intermediate_size"),
                  shared_experts=1, shared_intermediate=r.int("shared_expert_intermediate_size"),
                  shared_gate=True, norm_topk=r.bool("norm_topk_prob", False))
    step = r.int("decoder_sparse_step", 1)
    dense_only = set(r.int_list("mlp_only_layers"))
    kinds = tuple(LayerKind(moe=(i not in dense_only and (i + 1) % step == 0)) for i in range(fields["layers"]))
    fields.update(moe=moe, layer_kinds=kinds)
    return ModelSpec(**fields)


@family("deepseek_v2", "deepseek_v3")
def deepseek(r: ConfigReader) -> ModelSpec:
    mla = MLASpec(q_lora_rank=r.int("q_lora_rank", None), kv_lora_rank=r.int("kv_lora_rank"),
                  qk_nope_head_dim=r.int("qk_nope_head_dim"), qk_rope_head_dim=r.int("qk_rope_head_dim"),
                  v_head_dim=r.int("v_head_dim"))
    n_shared = r.int("n_shared_experts", 0, minimum=0)
    moe_inter = r.int("moe_intermediate_size")
    moe = MoESpec(num_experts=r.int("n_routed_experts"), top_k=r.int("num_experts_per_tok"),
                  expert_intermediate=moe_inter, shared_experts=n_shared, shared_intermediate=n_shared * moe_inter,
                  norm_topk=r.bool("norm_topk_prob", False))
    first_dense = r.int("first_k_dense_replace", 0, minimum=0)
    freq = r.int("moe_layer_freq", 1)
    layers = r.int("num_hidden_layers")
    kinds = tuple(LayerKind(moe=(i >= first_dense and i % freq == 0)) for i in range(layers))
    fields = _rope_base(r, head_dim=mla.v_head_dim, rotary_dim=mla.qk_rope_head_dim, mla=mla, moe=moe, layer_kinds=kinds)
    return ModelSpec(**fields)
