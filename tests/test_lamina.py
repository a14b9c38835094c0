"""Lamina's model-attention disaggregation: traffic conservation, pipeline overlap bounds, batch capacity."""
from dataclasses import replace

import pytest
from hypothesis import example, given, settings, strategies as st

from hw_models.systems import load_system
from mapping.lamina import BatchCosts, Network
from sim.lamina import batch_costs, staggered_step
from studies.lamina import kv_slots, model_tp, split, subsystem
from studies.lamina_traces import TRACES, TraceStats, slot_context
from workloads import trace

NET = Network(bandwidth=45.7e9, latency=16.5e-6)


def _costs(gpu=1e-3, q=2e-4, kv=1e-4, attn=1e-3, layers=4, batch=8, nbytes=1e6):
    return BatchCosts(batch=batch, head_s=1e-5, q_part_s=q, kv_part_s=kv, post_s=gpu, tail_s=1e-4,
                      attention_s=attn, append_s=1e-6, q_bytes=nbytes, kv_bytes=nbytes / 4, out_bytes=nbytes,
                      layers=layers, gpu_clock_mhz=1980.0)


def test_network_bytes_are_the_q_k_v_and_outputs_of_every_layer():
    testbed = load_system("lamina-h100-h20")
    c = batch_costs(trace("llama-3-70b", "decode", 8, 512), subsystem(testbed, "gpu", 2),
                    subsystem(testbed, "mem", 4), 2, 4)
    step = staggered_step([c, c], NET, 2, 4)
    d, e, g, layers, batch = 8192, 2, 8, 80, 16
    # Lamina section 3.1: (2 + 2/G) e d B L bytes a step, q/k/v up and the attention output down
    assert step["bytes"]["up"] == pytest.approx((1 + 2 / g) * e * d * batch * layers)
    assert step["bytes"]["down"] == pytest.approx(e * d * batch * layers)
    assert c.attention_s > 0 and c.post_s > c.q_part_s > 0


@settings(max_examples=25, deadline=None)
@given(gpu=st.floats(1e-5, 2e-3), attn=st.floats(1e-5, 2e-3), nbytes=st.floats(1e3, 5e7), n=st.integers(1, 3))
@example(gpu=0.0018716029294778566, attn=0.0013249617854881979, nbytes=32567701.0, n=2)   # CI: not yet steady
def test_overlap_is_bounded_by_the_slowest_resource_and_the_serial_sum(gpu, attn, nbytes, n):
    step = staggered_step([_costs(gpu=gpu, attn=attn, nbytes=nbytes)] * n, NET, 2, 4)
    slowest = max(step["busy"].values())
    assert step["step_s"] >= slowest * (1 - 1e-9)              # no resource does more than a step's worth
    assert step["step_s"] <= step["tasks_s"] * (1 + 1e-9)       # overlap never makes it slower than in series


def test_two_batches_hide_attention_behind_the_other_batchs_gemms():
    one = staggered_step([_costs(layers=20)], NET, 2, 4)
    two = staggered_step([_costs(layers=20), _costs(layers=20)], NET, 2, 4)
    assert two["step_s"] < 2 * one["step_s"] * 0.8             # real overlap, not two steps in a row
    assert two["step_s"] == pytest.approx(two["busy"]["gpu0"], rel=0.05)    # the GPU is the bottleneck


def test_rotation_spreads_batches_over_replicas():
    three = staggered_step([_costs()] * 3, NET, 1, 2)          # n = 3 batches on n - 1 = 2 replicas
    assert set(r for r in three["busy"] if r.startswith("gpu")) == {"gpu0", "gpu1"}
    assert three["busy"]["gpu0"] == pytest.approx(three["busy"]["gpu1"], rel=0.2)


def test_send_time_is_bound_by_the_side_with_fewer_nics():
    assert NET.send_s(1e6, 2, 4) == pytest.approx(NET.latency + 1e6 / 2 / NET.bandwidth)
    assert NET.send_s(1e6, 4, 2) == NET.send_s(1e6, 2, 4)


def test_batch_capacity_from_memory():
    kv_token = 2 * 80 * 8 * 128 * 2                              # LLaMA3-70B: K and V, 80 layers, 8 KV heads
    assert kv_slots(4 * 0.9 * 96e9, kv_token, 1228) == 858       # 4 H20 hold 858 slots of Azure-Conv context
    assert kv_slots(kv_token * 1228 * 10 - 1, kv_token, 1228) == 9
    assert kv_slots(-1.0, kv_token, 1228) == 0
    assert split(7, 2) == [4, 3] and split(1, 2) == [1] and sum(split(858, 3)) == 858
    weights = {1: 141e9, 2: 72.6e9, 4: 37e9}
    assert model_tp(weights.get, 80e9, 2) == 2 and model_tp(weights.get, 80e9, 1) == 0


def test_slot_context_weights_long_outputs():
    assert slot_context([10], [4]) == pytest.approx((11 + 12 + 13 + 14) / 4)
    prompts, outputs = [100, 1000], [10, 1]
    stats = TraceStats("t", 2, 550, 5.5, (100 * 10 + 1000) / 2, (100 + 1) / 2, "test")
    assert stats.slot_context == pytest.approx(slot_context(prompts, outputs))
    for t in TRACES:
        assert t.prompt_mean < t.slot_context < t.prompt_mean + 3 * t.output_square_mean / t.output_mean
