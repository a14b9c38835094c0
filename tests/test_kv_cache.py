"""KV-cache bytes: per-token closed forms (MHA, GQA, MQA, MLA), what a decode step reads,
sliding windows, fp8 KV and the shared-prefix transform."""
import pytest

from workloads import trace
from workloads.capture import load_spec
from workloads.transforms import apply_precision, shared_prefix

BF16 = 2


@pytest.mark.parametrize("model,kv_heads,expected", [
    ("llama-2-7b", 32, 2 * 32 * 32 * 128 * BF16),        # MHA: K and V, 32 layers x 32 heads x 128
    ("llama-3.1-70b", 8, 2 * 80 * 8 * 128 * BF16),       # GQA: 8 KV heads, 80 layers
    ("falcon-7b", 1, 2 * 32 * 1 * 64 * BF16),            # MQA: one KV head of 4544/71 = 64
    ("gemma-2b", 1, 2 * 18 * 1 * 256 * BF16),            # MQA: one KV head of 256
    ("deepseek-v2-lite", None, (512 + 64) * 27 * BF16),  # MLA: latent (kv_lora_rank) + shared RoPE key, 27 layers
])
def test_kv_bytes_per_token_closed_form(model, kv_heads, expected):
    """graph.totals()["kv_bytes_per_token"] (bf16) equals the closed form of the attention variant."""
    if kv_heads is not None:
        assert load_spec(model).kv_heads == kv_heads
    graph = trace(model, "decode", 1, 16)
    assert graph.totals()["kv_bytes_per_token"] == expected


def attention_kv_read(graph) -> float:
    """KV-cache bytes the attention ops read, all layers."""
    return sum(op.reads.get("kv_cache", 0) * op.repeat for op in graph.ops if op.kind == "attention")


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-3.1-70b", "falcon-7b", "deepseek-v2-lite"])
def test_decode_reads_the_whole_cache_once(model):
    """A full-attention decode step reads batch * (context + 1) tokens of KV (the new token included)."""
    b, ctx = 3, 500
    graph = trace(model, "decode", b, ctx)
    per_token = graph.totals()["kv_bytes_per_token"]
    assert attention_kv_read(graph) == b * (ctx + 1) * per_token
    assert graph.totals()["kv_cache_storage_bytes"] == b * (ctx + 1) * per_token


def test_sliding_window_caps_the_decode_read():
    """Mistral-7B (window 4096) at context 8000 reads 4096 slots per layer; under the window it reads all."""
    spec = load_spec("mistral-7b")
    assert {kind.window for kind in spec.layer_kinds} == {4096}
    b = 2
    long = trace("mistral-7b", "decode", b, 8000)
    per_token = long.totals()["kv_bytes_per_token"]
    assert attention_kv_read(long) == b * 4096 * per_token
    assert {op.attrs["sk"] for op in long.ops if op.kind == "attention"} == {4096}
    assert long.totals()["kv_cache_storage_bytes"] == b * 4096 * per_token
    short = trace("mistral-7b", "decode", b, 3000)
    assert attention_kv_read(short) == b * 3001 * per_token


def test_mixed_window_layers():
    """Gemma-2-9B alternates 4096-window and global layers: at context 8000 half the layers read 4096 slots."""
    spec, b, ctx = load_spec("gemma-2-9b"), 2, 8000
    graph = trace("gemma-2-9b", "decode", b, ctx)
    per_layer = graph.totals()["kv_bytes_per_token"] / spec.layers
    windowed = sum(1 for kind in spec.layer_kinds if kind.window == 4096)
    assert windowed == spec.layers // 2
    expected = b * per_layer * (windowed * 4096 + (spec.layers - windowed) * (ctx + 1))
    assert attention_kv_read(graph) == expected


@pytest.mark.parametrize("model", ["llama-3.1-8b", "deepseek-v2-lite"])
def test_fp8_kv_halves_kv_bytes(model):
    """kv_dtype fp8 halves the KV bytes (per token, read, stored) and leaves weights and FLOPs alone."""
    graph = trace(model, "decode", 2, 1000)
    fp8 = apply_precision(graph, kv_dtype="fp8")
    before, after = graph.totals(), fp8.totals()
    assert after["kv_bytes_per_token"] == before["kv_bytes_per_token"] / 2
    assert after["kv_cache_bytes"] == pytest.approx(before["kv_cache_bytes"] / 2)
    assert attention_kv_read(fp8) == pytest.approx(attention_kv_read(graph) / 2)
    assert after["kv_cache_storage_bytes"] == before["kv_cache_storage_bytes"] // 2
    assert after["weight_bytes"] == before["weight_bytes"]
    assert after["flops"] == before["flops"]
    assert fp8.meta["kv_dtype"] == "fp8"


def test_shared_prefix_reads_the_prefix_once():
    """Decode batch 8, context 2048, shared prefix 1024: attention reads (8*1025 + 1024) / (8*2049) of the KV."""
    b, ctx, prefix = 8, 2048, 1024
    graph = trace("llama-3.1-8b", "decode", b, ctx)
    shared = shared_prefix(graph, prefix)
    ratio = (b * 1025 + 1024) / (b * 2049)
    assert attention_kv_read(shared) == pytest.approx(ratio * attention_kv_read(graph), rel=1e-12)
    assert attention_kv_read(shared) == pytest.approx(b * 1025 * graph.totals()["kv_bytes_per_token"]
                                                      + 1024 * graph.totals()["kv_bytes_per_token"], rel=1e-12)
    assert shared.totals()["kv_cache_storage_bytes"] == pytest.approx(
        ratio * graph.totals()["kv_cache_storage_bytes"], abs=1)
    assert shared.totals()["flops"] == graph.totals()["flops"]


def test_shared_prefix_outside_the_window_saves_nothing():
    """Mistral-7B at context 8000 attends to positions 3905..8000 only, so a 1024-token prefix is never
    read and sharing it must not change the KV read (nor the window-sized storage)."""
    graph = trace("mistral-7b", "decode", 8, 8000)
    shared = shared_prefix(graph, 1024)
    assert attention_kv_read(shared) == attention_kv_read(graph)
    assert shared.totals()["kv_cache_storage_bytes"] == graph.totals()["kv_cache_storage_bytes"]
