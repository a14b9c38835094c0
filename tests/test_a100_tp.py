"""The A100 TP>1 rows of TensorRT-LLM's published tables (docs/stack-accuracy.md, "A100 TP>1"): the DGX A100 NVLink's
NCCL numbers (fitted on Vidur's 8-GPU DGX-A100 all-reduce profile, benchmarks/collective_fit.py --gpu a100) against
measurements they were not fitted on, and trtllm-0.6's per-query-head decode kernel reading a 16-bit KV cache with
FlashInfer's measured L2 reuse (2/7 of the group's repeats reach DRAM) and an 8-bit one without it."""
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
    assert group_reread(st, 16) == pytest.approx(GQA_REREAD_FLASHINFER) and group_reread(st, 8) == 1.0
    assert np.allclose(group_reread(st, np.array([16, 8])), [GQA_REREAD_FLASHINFER, 1.0])
    assert group_reread(STACKS["vllm"], 16) == STACKS["vllm"].kv_group_reread    # no 16-bit value of its own


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
