"""Stack profiles against TensorRT-LLM's published static-batch tables (benchmarks/stack_accuracy.py)."""
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture(scope="module")
def errs():
    import stack_accuracy
    with redirect_stdout(io.StringIO()):
        return stack_accuracy.published(["trtllm-0.6", "fused"])


def _mape(errs, *key):
    v = errs[key]
    return 100 * sum(v) / len(v)


def test_gqa_decode_without_group_sharing_explains_trtllm_0_6(errs):
    """Llama-2-70B (GQA) generate throughput on H100 FP8, TP 2-4: the stack's masked-MHA decode kernel reads each
    KV head once per query head. With that, within 12%; with head-group sharing (the `fused` stack), off by far more."""
    assert _mape(errs, "trtllm-0.6", "h100", "fp8", "TP>1", "GQA", "tput") <= 12
    assert _mape(errs, "fused", "h100", "fp8", "TP>1", "GQA", "tput") > 40


def test_a100_tp4_gqa_with_flashinfer_l2_reuse(errs):
    """Llama-2-70B TP4 on A100 FP16: the per-query-head kernel's repeated reads of a 16-bit KV cache cost FlashInfer's
    measured 2/7 of a DRAM read (none of these rows fitted); with every repeat from DRAM it was 17% off."""
    assert _mape(errs, "trtllm-0.6", "a100", "fp16", "TP>1", "GQA", "tput") <= 12
    assert _mape(errs, "trtllm-0.6", "a100", "fp16", "TP>1", "GQA", "ftl") <= 12


def test_tp1_mha_throughput_and_first_token(errs):
    for gpu, prec in (("h100", "fp8"), ("a100", "fp16")):
        assert _mape(errs, "trtllm-0.6", gpu, prec, "TP1", "MHA", "tput") <= 12
        assert _mape(errs, "trtllm-0.6", gpu, prec, "TP1", "MHA", "ftl") <= 12


def test_stacks_are_sourced():
    from hw_models.stacks import STACKS
    for name in ("trtllm-0.6", "trtllm", "vllm", "sglang"):
        s = STACKS[name]
        assert s.sources and s.kernels == "fused"
    assert not STACKS["trtllm-0.6"].kv_group_sharing and STACKS["vllm"].kv_group_sharing


def test_trtllm_06_pays_its_request_cost_per_rank_and_other_stacks_once():
    from hw_models.stacks import request_host_s
    assert request_host_s("trtllm-0.6", 1) == pytest.approx(3e-3)
    assert request_host_s("trtllm-0.6", 4) == pytest.approx(12e-3)
    assert request_host_s("trtllm", 4) == pytest.approx(request_host_s("trtllm", 1))
    assert request_host_s("vllm", 8) == 0.0 and request_host_s("no-such-stack", 2) == 0.0
