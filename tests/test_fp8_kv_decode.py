"""An 8-bit KV cache under paged decode stacks: the split-K kernel measured here (`triton-splitk`) reads it at the
device's measured FP8 rate (slower than bf16 KV on the H200, dequantization-bound); the serving stacks' own FP8-KV
kernels, not measured here, read half the bytes at their bf16 rate. The fast path prices both as the full path."""
import pytest

from sim import api


@pytest.mark.parametrize("hardware", ["h200", "h100"])
@pytest.mark.parametrize("profile", ["vllm", "sglang", "trtllm", "triton-splitk"])
def test_fast_path_equals_full_path_with_an_fp8_kv_cache(hardware, profile):
    kw = dict(profile=profile, kv_dtype="fp8")
    fast = api.predict("llama-3.1-8b", hardware, "decode", 64, 4096, **kw)
    full = api.predict("llama-3.1-8b", hardware, "decode", 64, 4096, detail=True, **kw)
    assert fast.latency_s == pytest.approx(full.latency_s, rel=1e-9)
    assert fast.energy_j == pytest.approx(full.energy_j, rel=1e-9)


def test_only_the_measured_split_k_kernel_is_dequantization_bound():
    t = {(p, kv): api.predict("llama-3.1-8b", "h200", "decode", 64, 4096, profile=p, kv_dtype=kv).latency_s
         for p in ("vllm", "triton-splitk") for kv in ("bf16", "fp8")}
    assert t["vllm", "fp8"] < t["vllm", "bf16"]                    # half the KV bytes at the bf16 rate
    assert t["triton-splitk", "fp8"] > t["triton-splitk", "bf16"]  # H200: paged_fp8_bw_eff 0.34 vs 0.91
    assert t["triton-splitk", "bf16"] == pytest.approx(t["vllm", "bf16"], rel=1e-12)
