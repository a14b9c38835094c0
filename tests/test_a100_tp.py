"""The A100 TP>1 rows of TensorRT-LLM's published tables (docs/stack-accuracy.md, "A100 TP>1"): the DGX A100 NVLink's
NCCL numbers (fitted on Vidur's 8-GPU DGX-A100 all-reduce profile, benchmarks/collective_fit.py --gpu a100) against
measurements they were not fitted on, and trtllm-0.6's per-query-head decode kernel reading a 16-bit KV cache with
FlashInfer's measured L2 reuse (2/7 of the group's repeats reach DRAM), an 8-bit one likewise but bound by every
query head's block converting its group's FP8 KV (kv8_convert_b_clk_sm: SMs x clock, the same on an H100 and an H200)."""
from dataclasses import replace

import numpy as np
import pytest


from hw_models.collectives import link_collective_time
from hw_models.stacks import GQA_REREAD_FLASHINFER, STACKS, group_reread
from hw_models.systems import load_system
from sim import api


@pytest.mark.parametrize("system", ["dgx-a100", "dgx-a100-40gb"])
def test_dgx_a100_all_reduce_matches_held_out_measurements(system):
    link = load_system(system).links["nvlink"]
    # LLMCompass A100 TP4 all-reduce of a GPT-3 175B prefill layer's activations (8 x 2048 x 12288 fp16): 2891 us
    t = link_collective_time("all_reduce_ring", 8 * 2048 * 12288 * 2, 4, link)
    assert t == pytest.approx(2891e-6, rel=0.10)
    # nccl-tests issue #149: about 200 GB/s bus bandwidth at 1 GB on 8x A100-SXM4-80GB (busbw = 2(n-1)/n x bytes / t)
    nbytes = 2 ** 30
    busbw = 2 * 7 / 8 * nbytes / link_collective_time("all_reduce_ring", nbytes, 8, link) / 1e9
    assert busbw == pytest.approx(200, rel=0.05)


def test_group_reread_by_kv_precision():
    st = STACKS["trtllm-0.6"]
    assert group_reread(st, 16) == pytest.approx(GQA_REREAD_FLASHINFER)
    assert group_reread(st, 8) == pytest.approx(GQA_REREAD_FLASHINFER)
    both = replace(st, kv_group_reread=1.0, kv16_group_reread=GQA_REREAD_FLASHINFER)
    assert np.allclose(group_reread(both, np.array([16, 8])), [GQA_REREAD_FLASHINFER, 1.0])
    assert group_reread(STACKS["vllm"], 16) == STACKS["vllm"].kv_group_reread    # no 16-bit value of its own


def _attn(p):
    return sum(r["total_time_s"] for r in p.ops if r["kind"] == "attention")


def test_fp8_kv_per_query_head_decode_is_bound_by_conversion_not_dram():
    """Mistral-7B (group 4) FP8 decode at a long context under trtllm-0.6: the attention takes the conversion bound
    (KV x 4 / (SMs x clock x kv8_convert_b_clk_sm)), so an H200 gains little over an H100 (1.43x the bandwidth)."""
    kw = dict(profile="trtllm-0.6", quant="fp8", kv_dtype="fp8", detail=True)
    h100 = api.predict("mistral-7b", "h100", "decode", 56, 3072, **kw)
    h200 = api.predict("mistral-7b", "h200", "decode", 56, 3072, **kw)
    assert _attn(h100) / _attn(h200) < 1.15
    kv_bytes = 56 * 3072 * 32 * 8 * 128 * 2          # tokens x layers x KV heads x head dim x (K, V), 1 byte each
    bound = kv_bytes * 4 / (132 * h100.clock_mhz * 1e6 * STACKS["trtllm-0.6"].kv8_convert_b_clk_sm)
    assert _attn(h100) >= bound * 0.99
    # without the bound the same step reads DRAM only, and the H200 is faster by most of its bandwidth ratio
    off = replace(STACKS["trtllm-0.6"], kv8_convert_b_clk_sm=0.0)
    STACKS["trtllm-0.6"], saved = off, STACKS["trtllm-0.6"]
    try:
        r = _attn(api.predict("mistral-7b", "h100", "decode", 56, 3072, **kw)) / \
            _attn(api.predict("mistral-7b", "h200", "decode", 56, 3072, **kw))
    finally:
        STACKS["trtllm-0.6"] = saved
    assert r > 1.3


def test_fp8_conversion_bound_fast_path_equals_full_path():
    kw = dict(profile="trtllm-0.6", quant="fp8", kv_dtype="fp8")
    fast = api.predict("mistral-7b", "h200", "decode", 56, 3072, **kw)
    full = api.predict("mistral-7b", "h200", "decode", 56, 3072, detail=True, **kw)
    assert fast.latency_s == pytest.approx(full.latency_s, rel=1e-9)


@pytest.mark.parametrize("kv_dtype", ["fp16", "fp8"])
def test_fast_path_equals_full_path_for_a_per_query_head_kernel(kv_dtype):
    kw = dict(profile="trtllm-0.6", dtype="fp16", kv_dtype=kv_dtype)
    fast = api.predict("llama-2-70b", "a100", "decode", 16, 2048, **kw)
    full = api.predict("llama-2-70b", "a100", "decode", 16, 2048, detail=True, **kw)
    assert fast.latency_s == pytest.approx(full.latency_s, rel=1e-9)
    assert fast.energy_j == pytest.approx(full.energy_j, rel=1e-9)


def test_fp16_kv_decode_reads_the_group_3x_not_8x():
    """Llama-2-70B decode on an A100 with a large KV cache: the attention of trtllm-0.6 (no head-group sharing) is
    1 + 2/7 x 7 = 3x the sharing kernel's KV traffic with an FP16 cache."""
    share = api.predict("llama-2-70b", "a100", "decode", 16, 4000, profile="fused", dtype="fp16", detail=True)
    solo = api.predict("llama-2-70b", "a100", "decode", 16, 4000, profile="trtllm-0.6", dtype="fp16", detail=True)
    attn = lambda p: sum(r["time_s"] for r in p.ops if r["kind"] == "attention")  # noqa: E731
    assert attn(solo) / attn(share) == pytest.approx(3.0, rel=0.1)
