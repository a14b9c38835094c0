"""The traced modules are real torch code: tiny versions of every family run on the CPU with real
tensors, the fused attention op matches torch's SDPA, and MLA's absorbed decode equals the expanded form."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from workloads import load_spec
from workloads.modules import CausalLM, Step
from workloads.modules.attention_op import attention
from workloads.spec import LayerKind

FAMILIES = ["llama-3.1-8b", "mixtral-8x7b", "deepseek-v2-lite", "deepseek-v3", "gemma-2-9b", "gpt2", "opt-6.7b",
            "bloom-176b", "falcon-7b", "phi-2", "gpt-neox-20b", "qwen3-14b", "phi-3-mini", "bitnet-b1.58-2b",
            "qwen1.5-moe-a2.7b", "mistral-7b", "gemma-2b"]


def tiny(name, layers=2):
    """The preset's architecture at toy width, keeping every structural feature."""
    s = load_spec(name)
    kv = 1 if s.kv_heads == 1 else (2 if s.kv_heads < s.heads else 4)
    kinds = s.layer_kinds[:layers]
    kw = dict(hidden=64, heads=4, kv_heads=kv, head_dim=16, vocab=50, intermediate=96, layers=layers,
              layer_kinds=kinds, max_positions=512)
    if s.position == "rope":
        kw["rotary_dim"] = 16 if s.rotary_dim == s.head_dim else 8
    if s.moe:
        kw["layer_kinds"] = tuple(LayerKind(moe=True, window=k.window) for k in kinds)
        kw["moe"] = dataclasses.replace(s.moe, num_experts=4, top_k=2, expert_intermediate=32,
                                        shared_intermediate=32 if s.moe.shared_experts else 0)
    if s.mla:
        kw.update(kv_heads=4, rotary_dim=8, mla=dataclasses.replace(
            s.mla, q_lora_rank=32 if s.mla.q_lora_rank else None, kv_lora_rank=32, qk_nope_head_dim=16,
            qk_rope_head_dim=8, v_head_dim=16))
    return dataclasses.replace(s, **kw)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_runs_on_cpu(name):
    torch.manual_seed(0)
    model = CausalLM(tiny(name), dtype=torch.float32, device="cpu")
    with torch.no_grad():
        for step in (Step("prefill", 2, 8), Step("decode", 2, 1, 8), Step("chunked_prefill", 2, 4, 8)):
            logits = model(step, unique=False)
            assert logits.shape == (2, 1, 50)
            assert torch.isfinite(logits).all()


@pytest.mark.parametrize("hq, hkv, sq, sk", [(4, 4, 5, 5), (8, 2, 5, 5), (4, 1, 1, 9), (4, 2, 3, 7)])
def test_attention_op_matches_sdpa(hq, hkv, sq, sk):
    torch.manual_seed(1)
    q = torch.randn(2, hq, sq, 16, dtype=torch.float64)
    k = torch.randn(2, hkv, sk, 16, dtype=torch.float64)
    v = torch.randn(2, hkv, sk, 16, dtype=torch.float64)
    mask = torch.ones(sq, sk, dtype=torch.bool).tril(diagonal=sk - sq)
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1),
                                         attn_mask=mask)
    ours = attention(q, k, v, 16, True, 0, 0.0, False)
    assert torch.allclose(ours, ref.transpose(1, 2), atol=1e-12)


def test_sliding_window_masks_old_tokens():
    q = torch.randn(1, 1, 1, 8, dtype=torch.float64)
    k = torch.randn(1, 1, 6, 8, dtype=torch.float64)
    v = torch.randn(1, 1, 6, 8, dtype=torch.float64)
    full_recent = attention(q, k[:, :, -2:], v[:, :, -2:], 8, True, 0, 0.0, False)
    windowed = attention(q, k, v, 8, True, 2, 0.0, False)
    assert torch.allclose(full_recent, windowed)


def test_mla_absorbed_decode_equals_expanded_form():
    spec = dataclasses.replace(tiny("deepseek-v2-lite", layers=1), layer_kinds=(LayerKind(),))
    torch.manual_seed(0)
    model = CausalLM(spec, dtype=torch.float64, device="cpu")
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    attn = model.layers[0].attn
    x = torch.randn(2, 1, 64, dtype=torch.float64)
    cache = torch.randn(2, 1, 9, 40, dtype=torch.float64)
    tables = model.rotary(torch.full((2, 1), 8), torch.float64)
    absorbed = attn(x, Step("decode", 2, 1, 8), cache.clone(), tables)          # reads the latent cache
    expanded = attn(x, Step("chunked_prefill", 2, 1, 8), cache.clone(), tables)  # up-projects it
    assert torch.allclose(absorbed, expanded, atol=1e-12)
