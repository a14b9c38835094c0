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


@pytest.mark.parametrize("model,mapping,match", [(MIXTRAL, "tp:2,ep:2", "on its own"),
                                                 ("llama-3.1-8b", "ep:2", "mixture-of-experts"),
                                                 (MIXTRAL, "ep:3", "does not divide")])
def test_expert_parallel_refusals_are_one_line(model, mapping, match):
    with pytest.raises(HwsimError, match=match) as err:
        StepCost(model, "dgx-h100", mapping)
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


# expert parallelism (ep:N): data-parallel attention, experts split over the devices, two all-to-alls per MoE layer
@pytest.mark.parametrize("model,n,phase,b,s", [
    (MIXTRAL, 2, "decode", 16, 1000), (MIXTRAL, 4, "decode", 64, 100), (MIXTRAL, 2, "prefill", 2, 1024),
    (MIXTRAL, 2, "prefill", 4, 512), (QWEN, 2, "decode", 30, 1000), (DSV2, 2, "decode", 32, 1000),
    (DSV2, 4, "decode", 64, 300), (DSV2, 2, "prefill", 2, 2000), (DSV2, 4, "prefill", 4, 1024)])
def test_expert_parallel_step_equals_engine(model, n, phase, b, s):
    """Under the execution layer's routing (even), an iteration of b sequences on an ep:N replica costs what
    `api.simulate` gives the mapped step (mapping/expert_parallel.py), time and energy of all N devices: decode
    to 1e-4, prefill (one or two chunks per device) within 1%."""
    cost = StepCost(model, "dgx-h100", f"ep:{n}", routing="even", max_tokens=8192, max_seqs=256, max_context=8192)
    batch = Batch([], b, b * (s + 1)) if phase == "decode" else Batch([(s, 0)] * b)
    fast = cost.cost(batch)
    ref = api.simulate(model, "dgx-h100", f"ep:{n}", phase, b, s, profile="fused")
    rel = 1e-4 if phase == "decode" else 0.01
    assert fast.time_s == pytest.approx(ref.latency_s, rel=rel)
    assert fast.energy_j == pytest.approx(ref.energy_j, rel=rel)


def test_expert_parallel_spreads_weights_kv_and_work():
    one = StepCost(DSV2, "dgx-h100", "single", max_seqs=256, max_context=4096)
    ep = StepCost(DSV2, "dgx-h100", "ep:4", max_seqs=256, max_context=4096)
    assert ep.devices == 4 and ep.kv_share == pytest.approx(one.kv_share / 4)
    assert one.weight_bytes / 4 < ep.weight_bytes < one.weight_bytes          # experts split, the rest replicated
    big = Batch([], 128, 128 * 2001)
    assert ep.cost(big).time_s < one.cost(big).time_s
    # the busiest device: a 2,000-token chunk runs whole on one device (its attention is not split)
    assert ep._ep_split(Batch([(2000, 0), (100, 0)], 6, 600)) == (2000, [(2000, 0)], 0)
    assert ep._ep_split(Batch([(10, 0)], 9, 900)) == (10, [(10, 0)], 0)
    assert ep._ep_split(Batch([], 9, 900))[0] == 3


@pytest.mark.parametrize("sched", ["vllm", "vllm-chunked", "sarathi"])
def test_expert_parallel_serving_invariants(sched):
    df = rq.synthetic(40, 20.0, "uniform:50-1500:1-300", seed=9)
    pool = Pool(model=QWEN, system="dgx-h100", mapping="ep:2", scheduler=sched, max_context=2048, kv_blocks=600)
    res = serve(df, pool)
    assert check_invariants(res, df).sum() == 40
    assert res.summary["devices"] == 2
    pd.testing.assert_frame_equal(res.requests, serve(df, pool).requests)
