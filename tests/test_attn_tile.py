"""The causal-tile prefill attention model (hw_models/gpu.py causal_tile_work; attn_causal_tile in a preset)."""
import numpy as np
import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel, causal_tile_work
from workloads.graph import Op
from workloads.modules.attention_op import attention_flops


def _op(b, hq, hkv, s, d=128, causal=True, sk=None):
    sk = s if sk is None else sk
    return Op(0, "attn", "attention", None, 1, (), (), "bf16", attention_flops((b, hq, s, d), (b, hkv, sk, d), d),
              {"activation": 2 * (2 * b * hq * s * d) + 2 * 2 * b * hkv * sk * d},
              attrs=dict(b=b, hq=hq, hkv=hkv, sq=s, sk=sk, d=d, dv=d, causal=causal, window=0))


def test_tile_work_is_the_square_at_one_tile_and_near_the_half_at_many():
    assert causal_tile_work(128, 128, 128) == 1.0
    assert abs(causal_tile_work(2048, 2048, 128) - 0.5 * 17 / 16) < 1e-12
    assert np.allclose(causal_tile_work(np.array([128, 256]), np.array([128, 256]), 128), [1.0, 0.75])


def test_h200_preset_prices_causal_prefill_per_tile_and_others_keep_the_half():
    dev = load_device("h200")
    on, off = GPUModel(dev, profile="fused"), GPUModel(dev, profile="fused", params={"attn_causal_tile": 0})
    assert on.p["attn_causal_tile"] == 128
    # a 32k prompt: attn_causal_eff of the peak on ~the causal half against attn_eff on the half
    big = _op(1, 32, 8, 32768)
    ratio = on.cost(big, 1980).compute_s / off.cost(big, 1980).compute_s
    p = on.p
    assert abs(ratio - p["attn_eff"] / p["attn_causal_eff"] * causal_tile_work(32768, 32768, 128) / 0.5) < 1e-9
    # floor: kernel_floor_us + attn_causal_floor_us + attn_causal_wave_us per wave of (sequence, head, query tile)
    # CTAs over the 132 SMs: 8 CTAs are one wave, 64 x 32 x 1 = 2048 CTAs 16 waves
    one = (p["kernel_floor_us"] + p["attn_causal_floor_us"] + p["attn_causal_wave_us"]) * 1e-6
    assert abs(on.cost(_op(1, 8, 1, 128), 1980).overhead_s - one) < 1e-12
    many = (p["kernel_floor_us"] + p["attn_causal_floor_us"] + 16 * p["attn_causal_wave_us"]) * 1e-6
    assert abs(on.cost(_op(64, 32, 8, 128), 1980).overhead_s - many) < 1e-12
    assert p["attn_causal_wave_us"] > 0
    # not causal: unchanged
    nc = _op(1, 32, 8, 4096, causal=False)
    assert on.cost(nc, 1980).time_s == off.cost(nc, 1980).time_s
    # a device without the parameter: unchanged
    a100 = load_device("a100")
    assert GPUModel(a100).cost(big, 1410).time_s == GPUModel(a100, params={"attn_causal_tile": 0}).cost(big, 1410).time_s


def test_h100_preset_prices_causal_prefill_per_tile_with_its_tail():
    """The H100's causal-tile model (benchmarks/gpu/fit_attn_steps.py, eighteenth session): a long prompt of one
    sequence ends on its longest CTA, so its time is the work over the SMs plus half the longest CTA."""
    h100 = load_device("h100")
    on = GPUModel(h100)
    p = on.p
    assert (p["attn_causal_tile"], p["attn_causal_tail"]) == (128, 0.5)
    big = _op(1, 32, 8, 32768)
    no_tail = GPUModel(h100, params={"attn_causal_tail": 0}).cost(big, 1980).compute_s
    assert on.cost(big, 1980).compute_s > no_tail
    # a many-sequence batch fills the SMs: the tail is a small share
    wide = _op(64, 32, 8, 512)
    assert on.cost(wide, 1980).compute_s < 1.1 * GPUModel(h100, params={"attn_causal_tail": 0}).cost(wide, 1980).compute_s


def _with_tail(base, tail):
    """A copy of preset `base` whose causal-tile model has the tail `tail` (attn_causal_tail), under its own id."""
    d0 = load_device(base)
    cal = d0.calibration.model_copy(update={"params": {**d0.calibration.params, "attn_causal_tail": tail}})
    return d0.model_copy(update={"calibration": cal, "id": f"{d0.id}-tail-{tail}"})


def test_tail_adds_a_share_of_the_longest_cta_and_never_less_than_it():
    """attn_causal_tail: time = max(work over the SMs + tail x the longest CTA, the longest CTA) (gpu.py
    causal_tail_s): a long prompt of one sequence and few heads (few CTAs a wave) pays it, the work over the SMs
    alone where the tail is 0."""
    from hw_models.gpu import causal_tail_s, head_dim_factor
    dev = _with_tail("h200", 0.5)
    on, off = GPUModel(dev, profile="fused"), GPUModel(load_device("h200"), profile="fused")
    p = on.p
    rate = on._peak("bf16", 1980) * p["attn_causal_eff"] * head_dim_factor(128, p)
    for op in (_op(1, 8, 1, 32768), _op(4, 32, 8, 2048), _op(1, 2, 1, 8192)):
        a = op.attrs
        longest = causal_tail_s(a["sq"], 128, 128, 128, on.sms, rate)
        base = off.cost(op, 1980).compute_s
        assert abs(on.cost(op, 1980).compute_s - max(base + 0.5 * longest, longest)) < 1e-12 * longest
        assert on.cost(op, 1980).compute_s > base
    # 2 heads of one 8192-token sequence: 128 CTAs on 132 SMs, the last query tile's 64 key tiles set the time
    few = _op(1, 2, 1, 8192)
    assert on.cost(few, 1980).compute_s == causal_tail_s(8192, 128, 128, 128, on.sms, rate)
    # not causal: unchanged
    nc = _op(1, 32, 8, 4096, causal=False)
    assert on.cost(nc, 1980).time_s == off.cost(nc, 1980).time_s


def test_tail_one_case_path_equals_the_full_path():
    """The linear steps' columns (gpu_table.py) price the tail as the per-op model does, every prefill shape."""
    from sim import api
    dev = _with_tail("h200", 0.5)
    for profile in ("fused", "eager"):
        for phase, b, s, ctx in (("prefill", 1, 8192, 0), ("prefill", 4, 2048, 0), ("chunked_prefill", 2, 512, 300),
                                 ("prefill", 64, 128, 0), ("prefill", 1, 3000, 0)):
            fast = api.predict("llama-3.1-8b", dev, phase, b, s, ctx, profile=profile)
            full = api.predict("llama-3.1-8b", dev, phase, b, s, ctx, profile=profile, detail=True)
            assert abs(fast.latency_s - full.latency_s) <= 1e-9 * full.latency_s
            assert abs(fast.energy_j - full.energy_j) <= 1e-9 * full.energy_j
    plain = api.predict("llama-3.1-8b", "h200", "prefill", 1, 8192, 0, profile="fused")
    assert api.predict("llama-3.1-8b", dev, "prefill", 1, 8192, 0, profile="fused").latency_s > plain.latency_s


def test_serving_pays_a_steps_causal_tail_once(monkeypatch):
    """A step's fresh prefill chunks share one varlen attention kernel a layer, so one longest CTA: serving's step
    cost keeps each chunk's tail apart and pays the largest once (StepCost._one_kernel), as predict's one batched
    kernel does (summed, 32 chunks of 16 tokens were 5.2% over predict on the H200 with tail 0.5)."""
    import hw_models.gpu as gpu
    from sim import api
    from sim.serving.step_cost import Batch, StepCost
    assert "attn_causal_tail" not in load_device("h200").calibration.params
    dev = _with_tail("h200", 0.5)
    monkeypatch.setitem(gpu.DEFAULTS, "attn_causal_tail", 0.5)     # the H200 preset leaves it to DEFAULTS
    cost = StepCost("llama-3.1-8b", "h200", "single", max_seqs=64, max_context=8192)
    assert cost._attn_pre_tail is not None
    for b, s in [(1, 4096), (4, 512), (8, 64), (32, 16), (2, 2048)]:
        ref = api.predict("llama-3.1-8b", dev, "prefill", b, s, profile="fused", detail=True)
        got = cost.cost(Batch([(s, 0)] * b))
        assert got.time_s == pytest.approx(ref.latency_s, rel=5e-3), (b, s)
    monkeypatch.undo()
    assert StepCost("llama-3.1-8b", "h200", "single", max_seqs=64, max_context=8192)._attn_pre_tail is None
