"""Prefill attention's rate by head size (hw_models/gpu.py head_dim_factor; attn_rel_d64 / attn_rel_d96 /
attn_rel_d256 in a preset, fitted by benchmarks/gpu/fit_stack.py on the H100's SDPA at d = 64, 96, 256)."""
import csv
from pathlib import Path

import numpy as np
import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel, head_dim_factor
from sim import api
from sim.linear_sweep import step_points
from workloads.graph import Op
from workloads.modules.attention_op import attention_flops

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "data" / "h100-2026-12-06-stack"


def _op(b, hq, hkv, s, d):
    return Op(0, "attn", "attention", None, 1, (), (), "bf16", attention_flops((b, hq, s, d), (b, hkv, s, d), d),
              {"activation": 2 * (2 * b * hq * s * d) + 2 * 2 * b * hkv * s * d},
              attrs=dict(b=b, hq=hq, hkv=hkv, sq=s, sk=s, d=d, dv=d, causal=True, window=0))


def test_factor_is_one_at_128_the_fitted_values_at_its_sizes_linear_between_and_flat_beyond():
    p = {"attn_rel_d64": 0.7, "attn_rel_d96": 0.75, "attn_rel_d256": 1.1}
    assert head_dim_factor(128, p) == 1.0
    assert np.allclose(head_dim_factor(np.array([64, 96, 256]), p), [0.7, 0.75, 1.1])
    assert abs(head_dim_factor(112, p) - 0.875) < 1e-12 and abs(head_dim_factor(192, p) - 1.05) < 1e-12
    assert head_dim_factor(32, p) == pytest.approx(0.7) and head_dim_factor(512, p) == pytest.approx(1.1)
    # a device without a head-size fit: one rate whatever the head size
    assert head_dim_factor(np.array([64, 80, 96, 256]), GPUModel(load_device("a100")).p).tolist() == [1.0] * 4


def _measured(rows, b, hq, hkv, s, d):
    r, = [r for r in rows if (int(r["b"]), int(r["hq"]), int(r["hkv"]), int(r["s"]), int(r["d"])) == (b, hq, hkv, s, d)]
    return float(r["seconds"])


@pytest.mark.parametrize("layout", [(32, 8), (32, 32)])
def test_h100_d96_attention_takes_about_the_d128_time_as_measured(layout):
    """The H100 SDPA ran d = 96 in the time of d = 128 (attn_prefill.csv): with the fitted factor hwsim's ratio of
    the two long-prompt kernels is the measured one within 5%; one rate for all head sizes would give 0.75."""
    dev = load_device("h100")
    model = GPUModel(dev, profile="fused")
    assert model.p["attn_rel_d96"] < 0.9                      # the fit is in the preset
    rows = list(csv.DictReader(open(DATA / "attn_prefill.csv")))
    hq, hkv = layout
    for b, s in ((1, 8192), (1, 16384), (8, 4096)):
        measured = _measured(rows, b, hq, hkv, s, 96) / _measured(rows, b, hq, hkv, s, 128)
        t = {d: model.cost(_op(b, hq, hkv, s, d), 1980).time_s for d in (96, 128)}
        assert abs(t[96] / t[128] - measured) / measured < 0.05, (b, s, t[96] / t[128], measured)
        flat = GPUModel(dev, profile="fused", params={"attn_rel_d96": 1.0})
        one = flat.cost(_op(b, hq, hkv, s, 96), 1980).time_s / flat.cost(_op(b, hq, hkv, s, 128), 1980).time_s
        assert abs(one - measured) / measured > 0.15


def test_factor_scales_the_attention_compute_of_d96_and_leaves_d128():
    dev = load_device("h100")
    on, off = GPUModel(dev), GPUModel(dev, params={"attn_rel_d64": 1.0, "attn_rel_d96": 1.0, "attn_rel_d256": 1.0})
    big96, big128 = _op(4, 32, 8, 4096, 96), _op(4, 32, 8, 4096, 128)
    assert on.cost(big128, 1980).time_s == off.cost(big128, 1980).time_s
    ratio = on.cost(big96, 1980).compute_s / off.cost(big96, 1980).compute_s
    assert abs(ratio - 1 / on.p["attn_rel_d96"]) < 1e-12


@pytest.mark.parametrize("hardware", ["h100", "h200"])
@pytest.mark.parametrize("profile", ["eager", "fused"])
@pytest.mark.parametrize("phase,batch,seq,ctx", [("prefill", 4, 1024, 0), ("prefill", 1, 3000, 0),
                                                 ("chunked_prefill", 2, 512, 1024), ("decode", 8, 2048, 0)])
def test_one_case_path_equals_the_full_path_at_head_dim_96(hardware, profile, phase, batch, seq, ctx):
    """phi-3-mini (head_dim 96): the linear path (gpu_table.py) prices its attention as gpu.py does."""
    full = api.predict("phi-3-mini", hardware, phase, batch, seq, ctx, profile=profile, detail=True)
    fast = api.predict("phi-3-mini", hardware, phase, batch, seq, ctx, profile=profile)
    for f in ("latency_s", "energy_j", "avg_power_w", "clock_mhz"):
        a, b = getattr(fast, f), getattr(full, f)
        assert abs(a - b) <= 1e-9 * max(abs(a), abs(b)), (f, a, b)


@pytest.mark.parametrize("model", ["phi-3-mini", "gemma-2b"])
def test_sweep_path_across_devices_equals_the_full_path_at_other_head_dims(model):
    """phi-3-mini (d = 96), gemma-2b (d = 256): points on devices with and without a head-size fit (stacked into
    one model) against the full path."""
    texts = ["h100", "h100+clock=1.4GHz", "a100"]
    devices = [load_device(t) for t in texts]
    rng = np.random.default_rng(11)
    n = 12
    b, s = rng.integers(1, 16, n), rng.integers(64, 2000, n)      # phi-3-mini: within its 2047-token window
    index = rng.integers(0, len(texts), n)
    out, done = step_points(model, "prefill", b, s, np.zeros(n, dtype=int), devices, index, "bf16", "none", "",
                            "fused")
    assert done.mean() > 0.8
    for i in np.flatnonzero(done):
        full = api.predict(model, devices[index[i]], "prefill", int(b[i]), int(s[i]), 0, profile="fused",
                           detail=True)
        assert abs(out["latency_s"][i] - full.latency_s) <= 1e-9 * full.latency_s, (i, texts[index[i]])


def test_fit_stack_split_and_preset_groups():
    """fit_stack.py: the head-size rows' fixed calibration / held-out split, and a rewrite of the head-size group that
    keeps the other groups under their source comments."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"))
    import fit_stack
    row = dict(b="1", s="8192", hq="32", hkv="8", d="96")
    assert fit_stack.prefill_split(row) == "calibration"
    assert fit_stack.prefill_split(dict(row, hkv="32")) == "held-out"
    assert fit_stack.prefill_split(dict(row, repeat="1")) == "held-out"
    assert fit_stack.prefill_split(dict(row, d="128", hkv="32")) == "calibration"
    assert fit_stack.prefill_split(dict(row, d="128", hq="64")) == "held-out"
    rows = fit_stack.read_prefill(DATA)
    assert {int(r["d"]) for r in rows if r.get("repeat")} == {64, 96, 256}
    text = ("id: x\ncalibration:\n  params:\n    attn_eff: 0.44\n    # power: static_w by fit_power.py\n"
            "    static_w: 100.0\n    # prefill attention: attn_causal_tile measured here, old\n"
            "    attn_causal_tile: 128\n"
            "    # prefill attention head size: attn_rel_d64, attn_rel_d96 measured here, old\n"
            "    attn_rel_d64: 0.5\n    attn_rel_d96: 0.5\n")
    env = {"device": "GPU", "date": "2026-12-06T00:00"}
    out = fit_stack.preset_text(text, {"attn_rel_d64": 0.72, "attn_rel_d96": 0.75}, DATA, env,
                                "prefill attention head size")
    body = out.split("  params:\n")[1]
    assert "attn_rel_d96: 0.75" in body and "attn_rel_d96: 0.5" not in body and ", old" not in body.split("head size")[-1]
    assert body.count("# prefill attention head size:") == 1 and "h100-2026-12-06-stack (GPU, 2026-12-06)" in body
    assert "# power: static_w by fit_power.py\n    static_w: 100.0" in body
    assert "# prefill attention: attn_causal_tile measured here, old\n    attn_causal_tile: 128" in body


def test_a_measured_write_replaces_a_transferred_source_comment():
    """fit_stack.preset_text (fit_kernel_power.py --write uses it): a source comment that says its parameters were
    transferred from another GPU goes when all of them are measured here, and loses the names of those that are."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"))
    import fit_stack
    text = ("id: x\ncalibration:\n  params:\n"
            "    # eager kernel energy per byte: e_cat_rel, e_nonvec_rel transferred from the H200, old\n"
            "    e_cat_rel: 3.43\n    e_nonvec_rel: 1.59\n"
            "    # MoE loop: moe_loop_floor_us, moe_loop_row_us transferred from the H100, old\n"
            "    moe_loop_floor_us: 1.6\n    moe_loop_row_us: 0.38\n")
    env = {"device": "GPU", "date": "2026-12-07T00:00"}
    out = fit_stack.preset_text(text, {"e_cat_rel": 2.98, "e_nonvec_rel": 1.47, "moe_loop_row_us": 0.4}, DATA, env,
                                "eager kernel energy per byte")
    body = out.split("  params:\n")[1]
    assert "transferred from the H200" not in body and body.count("# eager kernel energy per byte:") == 1
    assert "e_cat_rel: 2.98" in body and "e_cat_rel: 3.43" not in body
    assert "# MoE loop: moe_loop_floor_us transferred from the H100, old\n    moe_loop_floor_us: 1.6" in body
