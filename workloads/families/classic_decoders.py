"""Adapters for the older decoder layouts: GPT-2, OPT, BLOOM, Falcon, GPT-NeoX, Phi(-2)."""
from __future__ import annotations

from ..errors import ConfigError, UnsupportedModelError
from ..spec import LayerKind, ModelSpec
from . import family
from ._read import ConfigReader


def _kinds(n: int) -> tuple:
    return tuple(LayerKind() for _ in range(n))


def _head_dim(r: ConfigReader, hidden: int, heads: int) -> int:
    if hidden % heads:
        raise ConfigError(f"model '{r.name}': hidden size {hidden} is not divisible by {heads} heads; fix the config.json")
    return hidden // heads


@family("gpt2")
def gpt2(r: ConfigReader) -> ModelSpec:
    hidden, heads, layers = r.int("n_embd"), r.int("n_head"), r.int("n_layer")
    return ModelSpec(
        name=r.name, model_type="gpt2", hidden=hidden, layers=layers, vocab=r.int("vocab_size"),
        max_positions=r.int("n_positions"), heads=heads, kv_heads=heads, head_dim=_head_dim(r, hidden, heads),
        intermediate=r.int("n_inner", 4 * hidden), norm="layer", norm_eps=r.float("layer_norm_epsilon", 1e-5),
        position="learned", qkv_fused=True, qkv_bias=True, o_bias=True, mlp_gated=False, mlp_bias=True,
        act=r.str("activation_function", "gelu_new"), tie_embeddings=r.bool("tie_word_embeddings", True),
        layer_kinds=_kinds(layers))


@family("opt")
def opt(r: ConfigReader) -> ModelSpec:
    hidden, heads, layers = r.int("hidden_size"), r.int("num_attention_heads"), r.int("num_hidden_layers")
    if r.int("word_embed_proj_dim", hidden) != hidden:
        raise UnsupportedModelError(f"model '{r.name}': OPT with word_embed_proj_dim != hidden_size (opt-350m) is not supported")
    if not r.bool("do_layer_norm_before", True):
        raise UnsupportedModelError(f"model '{r.name}': post-LayerNorm OPT (do_layer_norm_before=false) is not supported")
    bias = r.bool("enable_bias", True)
    return ModelSpec(
        name=r.name, model_type="opt", hidden=hidden, layers=layers, vocab=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings"), heads=heads, kv_heads=heads, head_dim=_head_dim(r, hidden, heads),
        intermediate=r.int("ffn_dim"), norm="layer", position="learned", learned_pos_offset=2,
        qkv_bias=bias, o_bias=bias, mlp_gated=False, mlp_bias=bias, act=r.str("activation_function", "relu"),
        tie_embeddings=r.bool("tie_word_embeddings", True), layer_kinds=_kinds(layers))


@family("bloom")
def bloom(r: ConfigReader) -> ModelSpec:
    hidden, heads, layers = r.int(["hidden_size", "n_embed"]), r.int(["n_head", "num_attention_heads"]), r.int(["n_layer", "num_hidden_layers"])
    return ModelSpec(
        name=r.name, model_type="bloom", hidden=hidden, layers=layers, vocab=r.int("vocab_size"),
        max_positions=r.int(["seq_length", "max_position_embeddings"], 2048), heads=heads, kv_heads=heads,
        head_dim=_head_dim(r, hidden, heads), intermediate=4 * hidden, norm="layer", norm_eps=r.float("layer_norm_epsilon", 1e-5),
        position="alibi", qkv_fused=True, qkv_bias=True, o_bias=True, mlp_gated=False, mlp_bias=True, act="gelu",
        embed_norm=True, tie_embeddings=r.bool("tie_word_embeddings", True), layer_kinds=_kinds(layers))


@family("falcon", "RefinedWeb", "RefinedWebModel")
def falcon(r: ConfigReader) -> ModelSpec:
    hidden, heads, layers = r.int(["hidden_size", "n_embed"]), r.int(["num_attention_heads", "n_head"]), r.int(["num_hidden_layers", "n_layer"])
    new_arch = r.bool("new_decoder_architecture", False)
    if new_arch:
        kv_heads = r.int(["num_kv_heads", "n_head_kv"], heads)
    else:
        kv_heads = 1 if r.bool("multi_query", True) else heads
    if r.bool("alibi", False):
        raise UnsupportedModelError(f"model '{r.name}': Falcon with alibi=true is not supported")
    bias = r.bool("bias", False)
    return ModelSpec(
        name=r.name, model_type="falcon", hidden=hidden, layers=layers, vocab=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", 2048), heads=heads, kv_heads=kv_heads, head_dim=_head_dim(r, hidden, heads),
        intermediate=r.int("ffn_hidden_size", 4 * hidden), norm="layer", norm_eps=r.float("layer_norm_epsilon", 1e-5),
        position="rope", rotary_dim=_head_dim(r, hidden, heads), qkv_fused=True, qkv_bias=bias, o_bias=bias, mlp_gated=False,
        mlp_bias=bias, act="gelu", parallel_residual=r.bool("parallel_attn", True),
        shared_input_norm=not new_arch, tie_embeddings=r.bool("tie_word_embeddings", True), layer_kinds=_kinds(layers))


@family("gpt_neox")
def gpt_neox(r: ConfigReader) -> ModelSpec:
    hidden, heads, layers = r.int("hidden_size"), r.int("num_attention_heads"), r.int("num_hidden_layers")
    head_dim = _head_dim(r, hidden, heads)
    rot = int(head_dim * r.float(["rotary_pct", "partial_rotary_factor"], 0.25, low=0.0, high=1.0))
    return ModelSpec(
        name=r.name, model_type="gpt_neox", hidden=hidden, layers=layers, vocab=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings"), heads=heads, kv_heads=heads, head_dim=head_dim,
        intermediate=r.int("intermediate_size"), norm="layer", norm_eps=r.float("layer_norm_eps", 1e-5),
        position="rope", rotary_dim=rot - rot % 2, qkv_fused=True, qkv_bias=r.bool("attention_bias", True),
        o_bias=r.bool("attention_bias", True), mlp_gated=False, mlp_bias=True, act=r.str("hidden_act", "gelu"),
        parallel_residual=r.bool("use_parallel_residual", True), tie_embeddings=r.bool("tie_word_embeddings", False),
        layer_kinds=_kinds(layers))


@family("phi")
def phi(r: ConfigReader) -> ModelSpec:
    hidden, heads, layers = r.int("hidden_size"), r.int("num_attention_heads"), r.int("num_hidden_layers")
    head_dim = _head_dim(r, hidden, heads)
    rot = int(head_dim * r.float("partial_rotary_factor", 0.5, low=0.0, high=1.0))
    return ModelSpec(
        name=r.name, model_type="phi", hidden=hidden, layers=layers, vocab=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings"), heads=heads, kv_heads=r.int("num_key_value_heads", heads),
        head_dim=head_dim, intermediate=r.int("intermediate_size"), norm="layer", norm_eps=r.float("layer_norm_eps", 1e-5),
        position="rope", rotary_dim=rot - rot % 2, qkv_bias=True, o_bias=True, mlp_gated=False, mlp_bias=True,
        act=r.str("hidden_act", "gelu_new"), parallel_residual=True, shared_input_norm=True, lm_head_bias=True,
        tie_embeddings=r.bool("tie_word_embeddings", False), layer_kinds=_kinds(layers))
