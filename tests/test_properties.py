"""Property tests on random small configs: tracing works, FLOPs scale linearly, and the config
loader turns every bad config into an `HwsimError` (never a raw Python/torch exception)."""
import itertools
import json
import math

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from workloads import trace
from workloads.capture import Phase, build_module, load_spec
from workloads.errors import HwsimError
from workloads.families import spec_from_config, supported_families
from workloads.zoo import load_config

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL_TYPES = ("llama", "qwen2", "mistral", "mixtral", "gpt2")


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def configs(draw, model_types=MODEL_TYPES):
    """A small valid HF-style config.json dict (Llama-style families, or GPT-2)."""
    model_type = draw(st.sampled_from(model_types))
    head_dim = draw(st.sampled_from([8, 16, 32]))
    heads = draw(st.integers(1, 8))
    hidden = heads * head_dim
    layers = draw(st.integers(1, 4))
    intermediate = draw(st.integers(8, 128))
    vocab = draw(st.integers(16, 512))
    tie = draw(st.booleans())
    if model_type == "gpt2":
        return {"model_type": "gpt2", "n_embd": hidden, "n_head": heads, "n_layer": layers, "n_positions": 4096,
                "vocab_size": vocab, "n_inner": draw(st.sampled_from([None, intermediate])),
                "activation_function": draw(st.sampled_from(["gelu_new", "gelu", "relu"])),
                "tie_word_embeddings": tie}
    config = {"model_type": model_type, "hidden_size": hidden, "num_attention_heads": heads,
              "num_key_value_heads": draw(st.sampled_from(divisors(heads))), "num_hidden_layers": layers,
              "intermediate_size": intermediate, "vocab_size": vocab, "max_position_embeddings": 4096,
              "hidden_act": draw(st.sampled_from(["silu", "gelu", "relu"])), "tie_word_embeddings": tie,
              "attention_bias": draw(st.booleans())}
    if model_type in ("mistral", "mixtral"):
        config["sliding_window"] = draw(st.sampled_from([None, 4, 16, 64]))
    if model_type == "mixtral":
        config["num_local_experts"] = draw(st.integers(2, 4))
        config["num_experts_per_tok"] = draw(st.integers(1, 2))
    return config


def layers_key(config):
    return "n_layer" if config["model_type"] == "gpt2" else "num_hidden_layers"


def spec_of(config):
    return spec_from_config(config, f"random-{config['model_type']}")


def matmul_attention_flops(graph) -> int:
    return sum(op.flops * op.repeat for op in graph.ops if op.kind in ("matmul", "attention"))


phases = st.sampled_from([("prefill", 0), ("decode", 0), ("chunked_prefill", 8)])


# --- valid configs ----------------------------------------------------------------------------------

@SETTINGS
@given(config=configs(), batch=st.integers(1, 3), seq_len=st.integers(1, 64))
def test_valid_configs_trace_and_match_flop_counter(config, batch, seq_len):
    """Every phase traces; matmul+attention FLOPs equal FlopCounterMode over all layers; KV per token
    is the MHA/GQA closed form."""
    spec = spec_of(config)
    for phase, context in [("prefill", 0), ("decode", 0), ("chunked_prefill", 8)]:
        graph = trace(spec, phase, batch, seq_len, context)
        assert graph.ops and graph.totals()["flops"] > 0
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            build_module(spec)(Phase(phase, batch, seq_len, context).step(), unique=False)
        assert matmul_attention_flops(graph) == fc.get_total_flops()
    assert graph.totals()["kv_bytes_per_token"] == 2 * spec.layers * spec.kv_heads * spec.head_dim * 2


@SETTINGS
@given(config=configs(), factor=st.integers(2, 3), seq_len=st.integers(1, 64), phase=phases)
def test_flops_linear_in_batch(config, factor, seq_len, phase):
    """flops(batch = k) == k * flops(batch = 1), exactly, for matmul + attention ops."""
    spec = spec_of(config)
    kind, context = phase
    one = matmul_attention_flops(trace(spec, kind, 1, seq_len, context))
    many = matmul_attention_flops(trace(spec, kind, factor, seq_len, context))
    assert one > 0
    assert many == factor * one


def split_flops(graph):
    """(matmul+attention FLOPs inside the decoder layers, the same outside them)."""
    inside = sum(op.flops * op.repeat for op in graph.ops
                 if op.kind in ("matmul", "attention") and op.group is not None)
    return inside, matmul_attention_flops(graph) - inside


@SETTINGS
@given(config=configs(), seq_len=st.integers(1, 64), phase=phases)
def test_layer_flops_linear_in_layers(config, seq_len, phase):
    """Doubling the layers doubles the decoder-layer FLOPs and leaves embedding/LM-head FLOPs unchanged."""
    n = config[layers_key(config)]
    doubled = dict(config, **{layers_key(config): 2 * n})
    kind, context = phase
    inside_n, outside_n = split_flops(trace(spec_of(config), kind, 2, seq_len, context))
    inside_2n, outside_2n = split_flops(trace(spec_of(doubled), kind, 2, seq_len, context))
    assert inside_n > 0 and outside_n > 0
    assert outside_2n == outside_n
    assert inside_2n == 2 * inside_n


# --- the config loader on bad input -----------------------------------------------------------------

_counter = itertools.count()


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("configs")


def load_and_trace(config, directory):
    """What `hwsim` does with a user's config.json: read the file, build the spec, trace a tiny decode."""
    path = directory / f"fuzz-{next(_counter)}.json"      # a fresh name: the reader caches by path + mtime
    path.write_text(json.dumps(config))
    return trace(load_spec(str(path)), "decode", 1, 4)


REQUIRED_INTS = {
    "gpt2": ["n_embd", "n_head", "n_layer", "n_positions", "vocab_size"],
    "llama": ["hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size",
              "max_position_embeddings"],
}
OPTIONAL_INTS = {"gpt2": ["n_inner"], "llama": ["num_key_value_heads", "head_dim"]}
BOOLS = {"gpt2": ["tie_word_embeddings"], "llama": ["tie_word_embeddings", "attention_bias"]}
STRINGS = {"gpt2": ["activation_function"], "llama": ["hidden_act"]}

not_an_int = st.one_of(
    st.text(max_size=8),                                                       # "64" included: still a string
    st.integers(-10**6, 0),                                                    # zero and negatives
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x)),
    st.booleans(),
    st.lists(st.integers(1, 64), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(1, 64), max_size=2),
)
not_a_bool = st.one_of(st.integers(), st.text(max_size=5), st.floats(allow_nan=False),
                       st.lists(st.booleans(), max_size=2))
not_a_string = st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False),
                         st.lists(st.text(max_size=3), max_size=2))
unknown_activation = st.text(max_size=10).filter(lambda s: s not in ("silu", "swish", "relu", "gelu", "gelu_new",
                                                                     "gelu_pytorch_tanh", "gelu_fast", "relu2"))


@st.composite
def corrupted_configs(draw):
    """A valid config with exactly one field made invalid: wrong type, out of range, or missing."""
    config = draw(configs())
    family = "gpt2" if config["model_type"] == "gpt2" else "llama"
    required = REQUIRED_INTS[family] + (["num_local_experts", "num_experts_per_tok"]
                                        if config["model_type"] == "mixtral" else [])
    how = draw(st.sampled_from(["missing", "null", "int", "bool", "string"]))
    if how in ("missing", "null"):
        key = draw(st.sampled_from(required))
        if how == "missing":
            del config[key]
        else:
            config[key] = None
    elif how == "int":
        config[draw(st.sampled_from(required + OPTIONAL_INTS[family]))] = draw(not_an_int)
    elif how == "bool":
        config[draw(st.sampled_from(BOOLS[family]))] = draw(not_a_bool)
    else:
        config[draw(st.sampled_from(STRINGS[family]))] = draw(st.one_of(not_a_string, unknown_activation))
    return config


@settings(max_examples=150, deadline=None)
@given(config=corrupted_configs())
def test_corrupted_config_raises_hwsim_error(config, config_dir):
    """One bad field (string for an int, negative, non-integer, missing ...) is an HwsimError, never another type."""
    with pytest.raises(HwsimError):
        load_and_trace(config, config_dir)


# Keys the adapters read (the random dicts below draw from them and from random text).
KNOWN_KEYS = [
    "activation_function", "alibi", "attention_bias", "attn_logit_softcapping", "bias", "decoder_sparse_step",
    "do_layer_norm_before", "enable_bias", "ffn_dim", "ffn_hidden_size", "final_logit_softcapping",
    "first_k_dense_replace", "head_dim", "hidden_act", "hidden_activation", "hidden_size", "intermediate_size",
    "kv_lora_rank", "layer_norm_eps", "layer_norm_epsilon", "max_position_embeddings", "mlp_bias",
    "moe_intermediate_size", "moe_layer_freq", "multi_query", "n_embd", "n_embed", "n_head", "n_head_kv", "n_inner",
    "n_layer", "n_positions", "n_routed_experts", "n_shared_experts", "new_decoder_architecture", "norm_topk_prob",
    "num_attention_heads", "num_experts", "num_hidden_layers", "num_key_value_heads", "num_kv_heads",
    "num_local_experts", "parallel_attn", "partial_rotary_factor", "q_lora_rank", "qk_nope_head_dim",
    "qk_rope_head_dim", "rms_norm_eps", "rotary_pct", "seq_length", "shared_expert_intermediate_size",
    "tie_word_embeddings", "use_parallel_residual", "use_sliding_window", "v_head_dim", "vocab_size",
    "word_embed_proj_dim", "sliding_window", "layer_types", "mlp_only_layers", "num_experts_per_tok",
]
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-4, 64),
                         st.sampled_from([0.5, 1.0, 64.0, -1.5, 1e6, 1e308, float("nan"), float("inf")]),
                         st.text(max_size=6),
                         st.sampled_from(["silu", "gelu", "relu2", "sliding_attention"]))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6)
random_fields = st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)), json_values, max_size=12)
model_types = st.one_of(st.sampled_from(supported_families()), st.text(max_size=8))


@settings(max_examples=250, deadline=None)
@given(base=st.one_of(st.just({}), configs()), fields=random_fields, model_type=st.one_of(st.none(), model_types))
def test_random_configs_raise_only_hwsim_errors(base, fields, model_type, config_dir):
    """Random JSON objects (alone, or merged over a valid config) either trace or raise an HwsimError."""
    config = {**base, **fields}
    if model_type is not None:
        config["model_type"] = model_type
    try:
        graph = load_and_trace(config, config_dir)
    except HwsimError as exc:
        event(f"rejected: {type(exc).__name__}")
        return
    event("traced")
    assert graph.totals()["flops"] > 0


def test_non_object_json_is_a_config_error(config_dir):
    """A config.json holding a list or invalid JSON is an HwsimError."""
    for i, text in enumerate(["[1, 2]", "{not json", "3"]):
        path = config_dir / f"bad-{i}.json"
        path.write_text(text)
        with pytest.raises(HwsimError):
            load_spec(str(path))


# --- invalid configs found by fuzzing: each must be an HwsimError ----------------------------------------

SMALL_LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
               "num_hidden_layers": 2, "intermediate_size": 96, "vocab_size": 128, "max_position_embeddings": 4096}
SMALL_GPT2 = {"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "n_positions": 1024, "vocab_size": 128}


@pytest.mark.parametrize("config", [
    pytest.param(dict(SMALL_LLAMA, hidden_size=math.nan), id="int-field-NaN"),
    pytest.param(dict(SMALL_LLAMA, vocab_size=math.inf), id="int-field-Infinity"),
    pytest.param(dict(SMALL_LLAMA, partial_rotary_factor=1e308), id="rotary-factor-overflow"),
    pytest.param(dict(SMALL_LLAMA, model_type="mistral", sliding_window="4k"), id="window-string"),
    pytest.param(dict(SMALL_LLAMA, model_type="mistral", sliding_window=[4096]), id="window-list"),
    pytest.param(dict(SMALL_LLAMA, model_type="mistral", sliding_window=-5), id="window-negative"),
    pytest.param(dict(SMALL_LLAMA, model_type=["llama"]), id="model-type-list"),
    pytest.param(dict(SMALL_LLAMA, model_type="gemma2", head_dim=16, layer_types=5), id="gemma2-layer-types-int"),
    pytest.param(dict(SMALL_LLAMA, model_type="mixtral", num_local_experts=2, num_experts_per_tok=3),
                 id="top-k-above-experts"),
    pytest.param(dict(SMALL_GPT2, n_embd=66), id="gpt2-hidden-not-divisible"),
])
def test_invalid_configs_found_by_fuzzing(config, config_dir):
    """Each of these configs is invalid and must be reported as an HwsimError."""
    with pytest.raises(HwsimError):
        load_and_trace(config, config_dir)


def test_deepseek_zero_dense_layers_and_shared_experts_are_valid():
    """first_k_dense_replace = 0 (every layer MoE) and n_shared_experts = 0 are legitimate settings."""
    config = dict(load_config("deepseek-v2-lite")[0], first_k_dense_replace=0, n_shared_experts=0)
    spec = spec_from_config(config, "deepseek-all-moe")
    assert all(kind.moe for kind in spec.layer_kinds)
    assert spec.moe.shared_experts == 0
