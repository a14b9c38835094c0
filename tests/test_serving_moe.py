"""MoE models in serving (docs/serving.md): the step cost from the MoE class templates (workloads/moe_template.py)
against the traced step's predict, expert reads under uniform routing, tensor parallelism against the engine,
and a serving run's invariants."""
import pandas as pd
import pytest

from sim import api
from sim.serving import Pool, serve
from sim.serving.step_cost import Batch, StepCost
from workloads import requests as rq
from workloads.errors import HwsimError

from test_serving import check_invariants

MIXTRAL = "mixtral-8x7b"
QWEN = "qwen1.5-moe-a2.7b"


@pytest.fixture(scope="module")
def mixtral_even():
    return StepCost(MIXTRAL, "h100", "single", routing="even", max_tokens=4096, max_seqs=256, max_context=8192)


@pytest.mark.parametrize("phase,b,s", [("decode", 1, 500), ("decode", 3, 77), ("decode", 64, 4000),
                                       ("prefill", 1, 128), ("prefill", 2, 512), ("prefill", 1, 2000)])
def test_moe_step_equals_predict_of_traced_step(mixtral_even, phase, b, s):
    """Under the traced step's routing (even), an iteration of the same tokens and context costs what `predict`
    gives the traced step (bound 1%; prefill past 2,048 tokens rounds T up to 64)."""
    batch = Batch([], b, b * (s + 1)) if phase == "decode" else Batch([(s, 0)] * b)
    fast = mixtral_even.cost(batch)
    ref = api.predict(MIXTRAL, "h100", phase, b, s, profile="fused")
    assert fast.time_s == pytest.approx(ref.latency_s, rel=0.01)
    assert fast.energy_j == pytest.approx(ref.energy_j, rel=0.01)


def test_moe_mixed_step_routes_all_its_tokens_together(mixtral_even):
    """Prefill chunk and decodes share the experts: the expert weights are read once for the step, so the mixed
    step costs less than its parts apart, and more than either."""
    decode = mixtral_even.cost(Batch([], 8, 8 * 1001)).time_s
    prefill = mixtral_even.cost(Batch([(256, 0)])).time_s
    mixed = mixtral_even.cost(Batch([(256, 0)], 8, 8 * 1001)).time_s
    assert max(decode, prefill) < mixed < decode + prefill


def test_uniform_routing_touches_fewer_experts_at_small_batches():
    even = StepCost(MIXTRAL, "h100", "single", routing="even", max_tokens=2048, max_seqs=64, max_context=4096)
    uni = StepCost(MIXTRAL, "h100", "single", routing="uniform", max_tokens=2048, max_seqs=64, max_context=4096)
    one = Batch([], 1, 1001)                      # one token: top-k experts either way
    assert uni.cost(one).time_s == pytest.approx(even.cost(one).time_s, rel=1e-9)
    four = Batch([], 4, 4 * 1001)                 # 8 routed rows: even reads all 8 experts, uniform 8(1 - 0.75^4)
    assert uni.cost(four).time_s < 0.9 * even.cost(four).time_s
    big = Batch([], 64, 64 * 1001)                # every expert is touched under both
    assert uni.cost(big).time_s == pytest.approx(even.cost(big).time_s, rel=0.01)
    with pytest.raises(HwsimError, match="routing"):
        StepCost(MIXTRAL, "h100", "single", routing="zipf")


def test_moe_tensor_parallel_step_equals_engine():
    cost = StepCost(MIXTRAL, "dgx-h100", "tp:2", routing="even", max_tokens=2048, max_seqs=64, max_context=4096)
    for phase, b, s in (("decode", 16, 1000), ("prefill", 2, 512)):
        batch = Batch([], b, b * (s + 1)) if phase == "decode" else Batch([(s, 0)] * b)
        fast, exact = cost.cost(batch), cost.exact(phase, b, s)
        assert fast.time_s == pytest.approx(exact.time_s, rel=1e-3)
        assert fast.energy_j == pytest.approx(exact.energy_j, rel=1e-3)


def test_expert_parallel_is_refused_in_one_line():
    with pytest.raises(HwsimError, match="expert parallelism") as err:
        StepCost(MIXTRAL, "dgx-h100", "ep:2")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("sched", ["vllm", "vllm-chunked", "orca"])
def test_moe_serving_invariants(sched):
    df = rq.synthetic(40, 10.0, "uniform:50-1500:1-300", seed=5)
    pool = Pool(model=QWEN, system="h100", scheduler=sched, max_context=2048, kv_blocks=600)
    res = serve(df, pool)
    done = check_invariants(res, df)
    assert done.sum() == 40
    again = serve(df, pool)
    pd.testing.assert_frame_equal(res.requests, again.requests)


DSV2 = "deepseek-v2-lite"


@pytest.fixture(scope="module")
def dsv2_even():
    return StepCost(DSV2, "h100", "single", routing="even", max_tokens=4096, max_seqs=256, max_context=8192)


@pytest.mark.parametrize("phase,b,s", [("decode", 1, 500), ("decode", 1, 6000), ("decode", 3, 77),
                                       ("decode", 64, 4000), ("decode", 200, 1000),
                                       ("prefill", 1, 128), ("prefill", 2, 512), ("prefill", 1, 3000)])
def test_deepseek_v2_lite_step_equals_predict_of_traced_step(dsv2_even, phase, b, s):
    """DeepSeek-V2-Lite (MLA + MoE): its decode template keeps one sequence apart (MLA's decode at b = 1 makes two
    copies fewer), so a serving iteration costs what `predict` gives the traced step (detail=True: the traced
    graph, not a template); bound 1%."""
    batch = Batch([], b, b * (s + 1)) if phase == "decode" else Batch([(s, 0)] * b)
    fast = dsv2_even.cost(batch)
    ref = api.predict(DSV2, "h100", phase, b, s, profile="fused", detail=True)
    assert fast.time_s == pytest.approx(ref.latency_s, rel=0.01)
    assert fast.energy_j == pytest.approx(ref.energy_j, rel=0.01)
    if phase == "decode":                 # decode steps are the template's own polynomial: equal
        assert fast.time_s == pytest.approx(ref.latency_s, rel=1e-5)


def test_deepseek_v2_lite_serving_run():
    df = rq.synthetic(30, 8.0, "uniform:50-1500:1-200", seed=3)
    pool = Pool(model=DSV2, system="h100", scheduler="vllm-chunked", max_context=2048, kv_blocks=500)
    res = serve(df, pool)
    assert check_invariants(res, df).sum() == 30
    pd.testing.assert_frame_equal(res.requests, serve(df, pool).requests)
