"""Serving runs model a software stack: its host costs (per iteration, per request) reach the step and the TTFT,
its decode kernel reaches the step, a run says which stack it modelled, and simultaneous arrivals form one batch."""
from dataclasses import replace

import numpy as np
import pytest

from hw_models.stacks import STACKS
from sim.serving import Pool, serve
from sim.serving.step_cost import Batch, StepCost
from workloads import requests as rq

MODEL = "llama-2-7b"          # MHA: the trtllm-0.6 and fused stacks run the same kernels on it


@pytest.fixture
def slow_host_stack():
    name = "test-slow-host"
    STACKS[name] = replace(STACKS["fused"], name=name, step_overhead_us=500.0, request_overhead_us=2000.0)
    yield name
    del STACKS[name]


def test_step_overhead_is_added_to_every_step(slow_host_stack):
    base = StepCost(MODEL, "h100", profile="fused", max_seqs=64, max_context=2048)
    slow = StepCost(MODEL, "h100", profile=slow_host_stack, max_seqs=64, max_context=2048)
    for batch in (Batch([], 8, 8 * 500), Batch([(300, 0)]), Batch([(256, 100)], 16, 16 * 900), Batch([], 1, 10)):
        a, b = base.cost(batch), slow.cost(batch)
        assert b.time_s - a.time_s == pytest.approx(500e-6, rel=1e-6)
        # the device waits at static power meanwhile
        assert b.energy_j - a.energy_j == pytest.approx(base.static_w * 500e-6, rel=1e-6)


def test_request_overhead_delays_the_first_token():
    one = rq.frame(np.zeros(1), np.full(1, 128), np.full(1, 4))
    fused = serve(one, Pool(MODEL, "h100", profile="fused", max_context=2048))
    trt = serve(one, Pool(MODEL, "h100", profile="trtllm-0.6", max_context=2048))
    assert trt.summary["stack"] == "trtllm-0.6" and fused.summary["stack"] == "fused"
    gap = trt.requests.ttft_s.iloc[0] - fused.requests.ttft_s.iloc[0]
    assert gap == pytest.approx(STACKS["trtllm-0.6"].request_overhead_us * 1e-6, rel=1e-6)
    assert trt.requests.e2e_s.iloc[0] - fused.requests.e2e_s.iloc[0] == pytest.approx(gap, rel=1e-6)


def test_gqa_decode_without_group_sharing_reads_more_kv():
    """Llama-2-70B (8 query heads per KV head): a per-query-head kernel moves 1 + r x 7 times the KV; trtllm-0.6
    takes r = 1 for an 8-bit cache and FlashInfer's measured r = 2/7 for a 16-bit one (hw_models/stacks.py)."""
    for kv_dtype, lo, hi in (("fp8", 5.0, 8.5), (None, 2.0, 3.5)):
        kw = dict(system="dgx-h100", mapping="tp:2", max_seqs=64, max_context=4096, kv_dtype=kv_dtype)
        share = StepCost("llama-2-70b", profile="fused", **kw)
        solo = StepCost("llama-2-70b", profile="trtllm-0.6", **kw)
        a_share = share._attn_decode(64, 64 * 2000)[0]
        a_solo = solo._attn_decode(64, 64 * 2000)[0]
        assert lo < a_solo / a_share < hi, kv_dtype
    # MHA (Llama-2-7B): no group, no difference
    m1 = StepCost(MODEL, "h100", profile="fused", max_seqs=64, max_context=4096)._attn_decode(64, 64 * 2000)[0]
    m2 = StepCost(MODEL, "h100", profile="trtllm-0.6", max_seqs=64, max_context=4096)._attn_decode(64, 64 * 2000)[0]
    assert m1 == pytest.approx(m2)


def test_simultaneous_arrivals_form_one_static_batch():
    """A static batch handed over at once runs as one batch (not the first request alone, then the rest)."""
    b = 12
    res = serve(rq.frame(np.zeros(b), np.full(b, 64), np.full(b, 8)),
                Pool(MODEL, "h100", scheduler="static", max_seqs=b, max_context=2048))
    tl = res.timeline
    assert tl.chunks.iloc[0] + tl.decodes.iloc[0] == b
    assert len(tl) == 8                       # one prefill step (the first token) and 7 decode steps
    assert res.requests.first_token_s.nunique() == 1


def test_burst_arrivals_prefill_together_under_vllm():
    b = 6
    res = serve(rq.frame(np.zeros(b), np.full(b, 64), np.full(b, 4)), Pool(MODEL, "h100", max_context=2048))
    assert res.timeline.chunks.iloc[0] == b


@pytest.mark.parametrize("mapping,why", [("tp:2,pp:2,mb:4", "one batch in flight"), ("ep:2", "mixture-of-experts"),
                                         ("dp:2", "replicas=2")])
def test_unsupported_replica_mappings_are_refused_in_one_line(mapping, why):
    from workloads.errors import HwsimError
    with pytest.raises(HwsimError, match=why) as e:
        StepCost(MODEL, "dgx-h100", mapping, max_seqs=8, max_context=1024)
    assert "\n" not in str(e.value)
