"""The power model's FLOPs (GPUModel.energy_flops) are the FLOPs the kernels execute: a causal prefill attention
counts the half (or the causal tiles) its time takes, not the full square the op counts, each at `e_attn_rel` of a
GEMM FLOP (the H100/H200 presets: 2.0, the count their power terms were fitted with), on the full path
(sim/predict.py), the one-case fast path (sim/fastpath.py: its energy columns are linear in the step, the causal
factor is not), the sweeps' tables (hw_models/gpu_table.py) and the serving step (sim/serving/step_cost.py)."""
from dataclasses import replace

import numpy as np
import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel, causal_tile_work
from sim import api
from workloads import trace


def _attention(graph):
    return next(op for op in graph.ops if op.kind == "attention")


@pytest.mark.parametrize("hw", ["h100", "h200"])
def test_causal_prefill_attention_counts_the_flops_its_time_takes(hw):
    model = GPUModel(load_device(hw), params={"e_attn_rel": 1.0})
    op = _attention(trace("llama-3.1-8b", "prefill", 1, 4096))
    assert op.attrs["causal"] and op.attrs["sq"] == op.attrs["sk"] == 4096
    tile = model.p.get("attn_causal_tile", 0)
    work = causal_tile_work(4096, 4096, tile) if tile else 0.5
    assert model.energy_flops(op) == pytest.approx(op.flops * work, rel=1e-12)
    assert 0.5 <= work < 0.6
    preset = GPUModel(load_device(hw))
    assert preset.energy_flops(op) == pytest.approx(op.flops * work * preset.p["e_attn_rel"], rel=1e-12)
    # the same fraction as the time: at the compute-bound size the compute seconds per counted FLOP of the causal
    # op against the same op without the mask (the tile model's own rate left out: the plain causal half)
    plain = GPUModel(load_device(hw), params={"attn_causal_tile": 0, "e_attn_rel": 1.0})
    full = replace(op, attrs=dict(op.attrs, causal=False))
    ratio = plain.cost(op, 1980).compute_s / plain.cost(full, 1980).compute_s
    assert plain.energy_flops(op) / plain.energy_flops(full) == pytest.approx(ratio, rel=1e-12)
    assert plain.energy_flops(full) == full.flops


def test_decode_attention_and_other_ops_keep_their_flops():
    model = GPUModel(load_device("h100"), params={"e_attn_rel": 1.5})
    g = trace("llama-3.1-8b", "decode", 8, 2048)
    for op in g.ops:
        if op.kind != "matmul":
            assert model.energy_flops(op) == op.flops * (1.5 if op.kind == "attention" else 1.0), op.name
    assert GPUModel(load_device("a100")).p.get("e_attn_rel", 1.0) == 1.0        # devices without a power fit


@pytest.mark.parametrize("hw", ["h100", "h200"])
@pytest.mark.parametrize("profile", ["eager", "fused"])
@pytest.mark.parametrize("phase,batch,seq,ctx", [("prefill", 1, 8192, 0), ("prefill", 4, 1000, 0),
                                                 ("chunked_prefill", 2, 1024, 2048), ("chunked_prefill", 1, 777, 0),
                                                 ("decode", 64, 4096, 0)])
def test_fast_path_energy_is_the_full_paths(hw, profile, phase, batch, seq, ctx):
    fast = api.predict("llama-3.1-8b", hw, phase, batch, seq, ctx, profile=profile)
    full = api.predict("llama-3.1-8b", hw, phase, batch, seq, ctx, profile=profile, detail=True)
    for f in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "flops"):
        assert getattr(fast, f) == pytest.approx(getattr(full, f), rel=1e-9), f
    assert fast.power_capped == full.power_capped


def test_the_step_energy_leaves_out_the_masked_tiles():
    """A long prefill's energy over static is (attention's executed FLOPs x e_attn_rel + the rest)
    x e_flop + bytes x e_byte: with e_attn_rel 1 the masked tiles cost nothing (the H100 prices causal attention per
    128-query tile: 65 of 128 at 8,192 tokens; NVML: this step runs at the cap, which the preset's e_attn_rel
    reproduces)."""
    from hw_models.gpu import causal_tile_work
    from hw_models.power import PowerModel
    dev = load_device("h100")
    g = trace("llama-3.1-8b", "prefill", 1, 8192)
    model, power = GPUModel(dev, params={"e_attn_rel": 1.0}), PowerModel(dev)
    traced = sum(op.flops * op.repeat for op in g.ops)
    executed = sum(model.energy_flops(op) * op.repeat for op in g.ops)
    attn = sum(op.flops * op.repeat for op in g.ops if op.kind == "attention")
    tile = model.p["attn_causal_tile"]
    assert tile == 128 and causal_tile_work(8192, 8192, tile) == 65 / 128
    assert traced - executed == pytest.approx((1 - 65 / 128) * attn, rel=1e-9)
    assert attn > 0.2 * traced                   # 8192 tokens: attention is a large part of the counted FLOPs
    from sim.predict import predict
    # with energy per op independent of the clock (gamma 0) the energy over static does not depend on where the
    # cap put the clock (the GEMM runs meet it on their own: cap_sequence)
    r = predict(g, dev, params={"e_attn_rel": 1.0}, power_params={"gamma": 0.0})
    power = PowerModel(dev, {"gamma": 0.0})
    dynamic = r.energy_j - power.p["static_w"] * r.latency_s
    nbytes = sum(model.cost(op, power.f_max).bytes * op.repeat for op in g.ops)
    e_f, e_b = power.p["e_flop_pj"] * 1e-12, power.p["e_byte_pj"] * 1e-12
    assert dynamic == pytest.approx(executed * e_f + nbytes * e_b, rel=1e-6)
    # the preset's e_attn_rel (1.9) puts the attention's energy back to what the full square counted: at the cap
    assert predict(g, dev).power_capped


def test_table_energy_columns_take_the_executed_flops():
    """hw_models/gpu_table.py: `costs`' energy FLOPs of attention = the linear columns less
    `attention_unexecuted` (what the fast path takes off its energy columns)."""
    from hw_models.gpu_table import GPUTable
    from sim.fastpath import CompiledStep
    from sim.api import _warm
    from workloads.linear_step import mono_row, step_code
    compiled = _warm("llama-3.1-8b", "h200", "prefill", "eager", {})[2]     # the H200: the causal-tile model
    assert isinstance(compiled, CompiledStep)
    step, table, Qx = compiled._block(step_code(compiled.tpl, 2, 3000)[0], (2, 3000, 0))
    assert isinstance(table, GPUTable) and np.any(table.tile)
    q = (np.array(mono_row(step.names, 2, 3000, 0, None), dtype=float) @ step.Q)[None]
    _, _, _, ef = table.costs(q, True)
    linear = q[:, step.cols["flops"]] * table.e_num / table.e_den
    cut = table.attention_unexecuted(q)
    first = step.n_other + step.n_mm
    assert np.all(cut[:, :first] == 0) and np.all(cut[:, first:] > 0)
    np.testing.assert_allclose(ef, linear - cut, rtol=1e-12)
