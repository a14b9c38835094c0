"""Matmul + attention FLOPs of a traced graph agree with torch's FlopCounterMode and with closed forms.

The graph is traced with each distinct layer kind run once (`repeat` = layers sharing it);
FlopCounterMode watches the same meta-device module run every layer, so agreement checks
the per-op FLOP formulas, the layer grouping (`repeat`) and the MoE expert spread at once.
"""
from functools import lru_cache

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from workloads import trace
from workloads.capture import Phase, build_module, load_spec

MODELS = ["llama-3.1-8b", "mistral-7b", "mixtral-8x7b", "qwen3-14b", "gemma-2-9b", "gpt2", "opt-6.7b", "falcon-7b",
          "phi-2", "deepseek-v2-lite", "bloom-176b", "gpt-neox-20b"]
BATCH, SEQ, CONTEXT, CHUNK = 2, 32, 64, 16
# phase, seq_len, context: prefill of SEQ tokens, decode after CONTEXT cached, a chunk of CHUNK after CONTEXT
PHASES = {"prefill": (SEQ, 0), "decode": (CONTEXT, 0), "chunked_prefill": (CHUNK, CONTEXT)}
CHUNKED_MODELS = ["llama-3.1-8b", "gemma-2-9b", "deepseek-v2-lite"]   # window, sandwich norms, MLA without absorption

def _cases():
    cases = []
    for model in MODELS:
        for phase in ("prefill", "decode") + (("chunked_prefill",) if model in CHUNKED_MODELS else ()):
            cases.append(pytest.param(model, phase, id=f"{model}-{phase}"))
    cases.append(pytest.param("phi-2", "chunked_prefill", id="phi-2-chunked_prefill"))
    return cases


def matmul_attention_flops(graph) -> int:
    return sum(op.flops * op.repeat for op in graph.ops if op.kind in ("matmul", "attention"))


@lru_cache(maxsize=None)
def traced_and_counted(model: str, phase: str):
    """(graph, FlopCounterMode total over all layers) for one model and phase."""
    seq_len, context = PHASES[phase]
    graph = trace(model, phase, BATCH, seq_len, context)
    module = build_module(load_spec(model))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        module(Phase(phase, BATCH, seq_len, context).step(), unique=False)
    return graph, fc.get_total_flops()


@pytest.mark.parametrize("model,phase", _cases())
def test_graph_matmul_flops_equal_flop_counter(model, phase):
    """Sum of op.flops * op.repeat over matmul/attention ops == FlopCounterMode over every layer."""
    graph, counted = traced_and_counted(model, phase)
    assert counted > 0
    assert matmul_attention_flops(graph) == counted


import workloads.modules.attention_op  # noqa: E402,F401  registers hwsim::attention's formula (torch loads lazily)

_COUNTED_KERNELS = {packet.__name__ for packet in flop_registry}


@pytest.mark.parametrize("model,phase", [(m, p) for m in MODELS for p in ("prefill", "decode")])
def test_kernels_with_a_flop_formula_equal_flop_counter(model, phase):
    """Kernel level: the graph's kernels that torch has a FLOP formula for (mm/addmm/bmm/hwsim::attention)
    sum to exactly what FlopCounterMode counts."""
    graph, counted = traced_and_counted(model, phase)
    kernels = sum(k.flops * op.repeat for op in graph.ops for k in op.kernels if k.aten in _COUNTED_KERNELS)
    assert kernels == counted


def test_moe_uses_the_even_expert_spread():
    """Mixtral's default routing is the even spread (8 tokens x top-2 over 8 experts = 2 each)."""
    even = trace("mixtral-8x7b", "decode", 8, CONTEXT)
    explicit = trace("mixtral-8x7b", "decode", 8, CONTEXT, expert_tokens=[2] * 8)
    skewed = trace("mixtral-8x7b", "decode", 8, CONTEXT, expert_tokens=[8, 8, 0, 0, 0, 0, 0, 0])
    assert matmul_attention_flops(even) == matmul_attention_flops(explicit)
    assert even.totals()["weight_bytes"] == explicit.totals()["weight_bytes"]
    # same routed tokens, so the same matmul FLOPs, but two experts' weights read instead of eight
    assert matmul_attention_flops(skewed) == matmul_attention_flops(even)
    assert skewed.totals()["weight_bytes"] < even.totals()["weight_bytes"]


# --- closed forms for dense decoders -----------------------------------------------------------------

DENSE = ["llama-3.1-8b", "mistral-7b", "qwen2.5-7b", "gpt3-7b", "opt-6.7b", "llama-2-13b"]


def layer_linear_weights(spec) -> int:
    """Weights of one decoder layer's projections, from the ModelSpec fields (q, k, v, o and the MLP)."""
    q = spec.hidden * spec.heads * spec.head_dim
    kv = 2 * spec.hidden * spec.kv_heads * spec.head_dim
    o = spec.heads * spec.head_dim * spec.hidden
    mlp = (3 if spec.mlp_gated else 2) * spec.hidden * spec.intermediate
    return q + kv + o + mlp


def attention_flops(spec, b, sq, sk) -> int:
    """The fused attention's QK^T and PV products, all layers (no causal halving, as torch counts SDPA)."""
    return spec.layers * 2 * b * spec.heads * sq * sk * (2 * spec.head_dim)


@pytest.mark.parametrize("model", DENSE)
def test_prefill_closed_form_exact(model):
    """prefill = 2*N_layer_linear*b*s + LM head on the last token (2*hidden*vocab*b) + attention over s x s."""
    spec, b, s = load_spec(model), BATCH, SEQ
    graph = trace(model, "prefill", b, s)
    n_linear = spec.layers * layer_linear_weights(spec)
    assert graph.meta["linear_params"] == n_linear
    expected = 2 * n_linear * b * s + 2 * spec.hidden * spec.vocab * b + attention_flops(spec, b, s, s)
    assert matmul_attention_flops(graph) == expected


@pytest.mark.parametrize("model", DENSE)
def test_decode_closed_form_exact(model):
    """decode = 2*N_layer_linear*b + 2*hidden*vocab*b + attention of 1 query over context+1 keys."""
    spec, b, ctx = load_spec(model), BATCH, CONTEXT
    graph = trace(model, "decode", b, ctx)
    n_linear = spec.layers * layer_linear_weights(spec)
    expected = 2 * n_linear * b + 2 * spec.hidden * spec.vocab * b + attention_flops(spec, b, 1, ctx + 1)
    assert matmul_attention_flops(graph) == expected


def embedding_tables(spec) -> tuple:
    """(token embedding weights, learned position table weights)."""
    positions = (spec.max_positions + spec.learned_pos_offset) * spec.hidden if spec.position == "learned" else 0
    return spec.vocab * spec.hidden, positions


@pytest.mark.parametrize("model", DENSE)
def test_two_params_per_token_rule(model):
    """The "2 x params x tokens + attention" rule of thumb holds to 1%.

    Which params: embedding lookups do no matmul, so the token (and learned position) tables are left
    out. In prefill the LM head runs on the last token only, so its vocab*hidden weights are left out
    too (the "non-embedding" count); they add 2*hidden*vocab*b, under 1% at s=32. In decode every
    token (tokens = batch) goes through the LM head, so its weights count once (tied or not). What is
    left in `params` besides matmul weights (norm scales, biases) is far below 1%.
    """
    spec, b = load_spec(model), BATCH
    token_table, position_table = embedding_tables(spec)
    lm_head = token_table                      # same shape, whether tied to the embedding or not
    params = trace(model, "prefill", b, SEQ).meta["params"]
    stored_head = 0 if spec.tie_embeddings else lm_head
    non_embedding = params - token_table - position_table - stored_head

    prefill = trace(model, "prefill", b, SEQ)
    rule = 2 * non_embedding * b * SEQ + attention_flops(spec, b, SEQ, SEQ)
    assert matmul_attention_flops(prefill) == pytest.approx(rule, rel=0.01)

    decode = trace(model, "decode", b, CONTEXT)
    rule = 2 * (non_embedding + lm_head) * b + attention_flops(spec, b, 1, CONTEXT + 1)
    assert matmul_attention_flops(decode) == pytest.approx(rule, rel=0.01)
