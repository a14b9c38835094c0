"""Pipeline-parallel replicas with N batches in flight (pp:N,mb:N: vLLM's virtual engines, sim/serving/pipeline.py):
stage sharing against the execution layer's micro-batched pipeline, a lone engine against the one-batch pipeline,
vLLM's KV split and engine choice, and a serving run's invariants."""
from dataclasses import replace

import pandas as pd
import pytest

from sim import api
from sim.serving import Pool, serve
from sim.serving.pipeline import Pipeline
from sim.serving.step_cost import Batch, StepCost
from workloads import requests as rq
from workloads.errors import HwsimError

from test_serving import check_invariants

MODEL = "llama-3.1-8b"


@pytest.mark.parametrize("mapping,n,phase,b,s", [("tp:2,pp:2", 2, "decode", 8, 1000), ("tp:2,pp:2", 2, "prefill", 2, 512),
                                                 ("pp:4", 4, "decode", 16, 1000), ("pp:4", 4, "prefill", 4, 512)])
def test_engines_in_flight_fill_and_drain_like_the_micro_batched_pipeline(mapping, n, phase, b, s):
    """N engines each starting a batch of b sequences at once leave the pipeline when sim/pipeline.py's step of
    N x b sequences in N micro-batches ends (bound 0.5%; measured 0.03%: the layers split evenly over the stages,
    the LM head on the last)."""
    cost = StepCost(MODEL, "dgx-h100", f"{mapping},mb:{n}", max_seqs=64, max_context=4096)
    batch = Batch([], b, b * (s + 1)) if phase == "decode" else Batch([(s, 0)] * b)
    dt = cost.cost(batch).time_s
    pipe = Pipeline(n)
    stage, send = cost.stage_times(dt, batch.tokens, b)
    ends = [pipe.run(0.0, stage, send) for _ in range(n)]
    ref = api.simulate(MODEL, "dgx-h100", f"{mapping},mb:{n}", phase, n * b, s, profile="fused")
    assert max(ends) == pytest.approx(ref.latency_s, rel=5e-3)
    assert ends[0] == pytest.approx(dt)                       # the first batch waits for nobody
    assert ends == sorted(ends) and max(ends) < n * dt        # the stages overlap


def test_pipeline_stages_serve_batches_in_order():
    pipe = Pipeline(3)
    assert pipe.run(0.0, [1.0, 1.0, 1.0], 0.5) == pytest.approx(4.0)      # 3 stages + 2 sends
    assert pipe.run(0.0, [1.0, 1.0, 1.0], 0.5) == pytest.approx(5.0)      # one stage time behind
    assert pipe.run(0.0, [1.0, 1.0, 3.0], 0.5) == pytest.approx(8.0)      # waits for the last stage, then 3
    assert pipe.run(20.0, [1.0, 1.0, 1.0], 0.0) == pytest.approx(23.0)    # an idle pipeline


def test_virtual_engines_split_the_kv_and_run_more_in_flight():
    df = rq.synthetic(300, 1000.0, "uniform:100-800:50-300", seed=2)      # a burst: the replica saturated
    one = Pool(model=MODEL, system="dgx-h100", mapping="tp:2,pp:2", scheduler="vllm", max_context=2048, max_seqs=64)
    two = replace(one, mapping="tp:2,pp:2,mb:2")
    r1, r2 = serve(df, one), serve(df, two)
    assert r2.capacity["replica"]["blocks"] == r1.capacity["replica"]["blocks"] // 2     # vLLM v0: per engine
    assert r2.capacity["replica"]["virtual_engines"] == 2
    assert r2.summary["devices"] == r1.summary["devices"] == 4
    for res in (r1, r2):
        assert check_invariants(res, df).sum() == 300
    served = r2.requests.replica.value_counts()
    assert len(served) == 2 and served.min() > 100               # the least-loaded engine takes each request
    # 64 sequences per batch: two batches in flight serve more (fill/drain and the uneven last stage cost some)
    assert 1.3 * r1.summary["throughput_rps"] < r2.summary["throughput_rps"] < 2 * r1.summary["throughput_rps"]
    pd.testing.assert_frame_equal(r2.requests, serve(df, two).requests)


def test_a_lone_engine_runs_the_one_batch_pipeline():
    """One request: no other engine holds a stage, so each iteration is the plain pipeline step (mb:1)."""
    df = rq.synthetic(1, 1.0, "fixed:500:40", seed=1)
    base = dict(model=MODEL, system="dgx-h100", scheduler="vllm", max_context=2048, kv_blocks=400)
    r1 = serve(df, Pool(mapping="tp:2,pp:2", **base))
    r2 = serve(df, Pool(mapping="tp:2,pp:2,mb:2", **base))
    assert r2.requests.e2e_s[0] == pytest.approx(r1.requests.e2e_s[0], rel=1e-9)
    assert r2.requests.ttft_s[0] == pytest.approx(r1.requests.ttft_s[0], rel=1e-9)


@pytest.mark.parametrize("mapping,match", [("tp:2,pp:2,mb:3", "one per virtual engine"),
                                           ("tp:2,pp:2,mb:4", "one per virtual engine")])
def test_micro_batches_other_than_the_stages_are_refused(mapping, match):
    with pytest.raises(HwsimError, match=match) as err:
        StepCost(MODEL, "dgx-h100", mapping, max_context=1024)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("dtype,quant", [("fp8", "none"), ("fp32", "none"), ("bf16", "fp8")])
def test_stage_send_is_the_execution_layers_send_at_the_runs_precision(dtype, quant):
    """The residual stream a stage hands the next is sized from the transformed graph (as mapping/pipeline.py's
    send is): fp8 activations send half of bf16's bytes, fp32 twice (--quant fp8 keeps the residual stream in the
    compute dtype, as the execution layer does)."""
    from mapping import map_graph
    b = 8
    cost = StepCost(MODEL, "dgx-h100", "tp:2,pp:2", dtype=dtype, quant=quant, max_seqs=64, max_context=4096)
    graph = api.workload(MODEL, "decode", b, 1000, dtype=dtype, quant=quant)
    tg = map_graph(graph, cost.system, "tp:2,pp:2,mb:1")
    node = next(n for n in tg.nodes if n.kind == "transfer" and n.id.startswith("send"))
    link = cost.system.link_within(cost.group, cost.devices)
    assert cost.stage_times(1.0, b)[1] == pytest.approx(link.latency_us * 1e-6 + node.nbytes / (link.bandwidth_gbps * 1e9),
                                                       rel=1e-12)
    assert cost._send_bytes_per_token * b == pytest.approx(node.nbytes, rel=1e-12)
