"""MoE class templates (workloads/moe_template.py): the routed experts as two classes of identical experts, so a
MoE step is costed as arrays like a dense one. Checked against the traced graph (the one-point predict path)."""
import numpy as np
import pandas as pd
import pytest

from hw_models import load_device
from sim.predict import predict
from sim.sweep import predict_many
from workloads.capture import load_spec, moe_template
from workloads.moe_template import expert_classes
from workloads.recipe import build_workload
from workloads.transforms import apply_precision

CASES = [("mixtral-8x7b", "decode", [(1, 1, 500), (3, 1, 77), (4, 1, 1000), (64, 1, 4000)]),
         ("mixtral-8x7b", "prefill", [(1, 128, 0), (2, 512, 0), (8, 1024, 0)]),
         ("qwen1.5-moe-a2.7b", "decode", [(1, 1, 300), (16, 1, 2048)]),
         ("deepseek-v2-lite", "prefill", [(1, 200, 0), (4, 333, 0)]),
         # MLA decode: one sequence runs two copies fewer than several (its own coefficients, `absent`)
         ("deepseek-v2-lite", "decode", [(1, 1, 500), (1, 1, 3000), (3, 1, 77), (16, 1, 2048)])]


def _close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b))


@pytest.mark.parametrize("model,phase,points", CASES)
@pytest.mark.parametrize("quant", ["none", "fp8"])
def test_template_matches_traced_step(model, phase, points, quant):
    """Array path (instantiate_many + predict_many) and one-step path (instantiate + predict) agree with the
    traced step's predict to 1e-9 on latency and energy (the brief's bound; 1% was the floor), and on bound,
    fit and peak power."""
    tpl = moe_template(load_spec(model), phase)
    assert tpl is not None
    dev = load_device("h100")
    b, n, c = (np.array([p[i] for p in points]) for i in range(3))
    codes = tpl.block(b, n, c)
    assert (codes >= 0).all()
    for code in np.unique(codes):
        idx = np.where(codes == code)[0]
        r = predict_many(apply_precision(tpl.instantiate_many(b[idx], n[idx], c[idx]), "bf16", quant, None), dev)
        for j, i in enumerate(idx):
            bb, nn, cc = points[i]
            ref = predict(build_workload(model, phase, bb, nn if phase != "decode" else cc, 0, quant=quant), dev)
            one = predict(apply_precision(tpl.instantiate(bb, nn, cc), "bf16", quant, None), dev)
            for got in (one.latency_s, r["latency_s"][j]):
                assert _close(got, ref.latency_s)
            for got in (one.energy_j, r["energy_j"][j]):
                assert _close(got, ref.energy_j)
            assert r["bound"][j] == ref.bound and bool(r["fits"][j]) == ref.fits
            assert _close(r["peak_power_w"][j], ref.peak_power_w)
            assert _close(one.flops, ref.flops) and _close(one.bytes, ref.bytes)


def test_expert_classes():
    # even: 4 tokens x top-2 over 8 experts -> every expert one row; 1 token -> 2 experts of 1 row
    assert [tuple(map(float, c)) for c in expert_classes(4, 2, 8, "even")] == [(2.0, 0.0), (1.0, 8.0)]
    assert [tuple(map(float, c)) for c in expert_classes(1, 2, 8, "even")] == [(1.0, 2.0), (1.0, 0.0)]
    # uniform: E (1 - (1 - k/E)^T) distinct experts, T k / that rows each
    (rows, count), (_, none) = expert_classes(4, 2, 8, "uniform")
    assert count == pytest.approx(8 * (1 - 0.75 ** 4)) and rows * count == pytest.approx(8) and none == 0
    (rows, count), _ = expert_classes(1, 2, 8, "uniform")
    assert count == pytest.approx(2) and rows == pytest.approx(1)


def test_uniform_routing_reads_fewer_experts_at_small_batch():
    tpl = moe_template(load_spec("mixtral-8x7b"), "decode")
    dev = load_device("h100")
    even = predict(tpl.instantiate(4, 1, 1000), dev)
    uniform = predict(tpl.instantiate(4, 1, 1000, routing="uniform"), dev)
    assert uniform.bytes < even.bytes and uniform.latency_s < even.latency_s
    assert uniform.flops == pytest.approx(even.flops, rel=1e-4)   # the same routed rows (combines add per expert)
    same = predict(tpl.instantiate(1, 1, 1000, routing="uniform"), dev)     # one token: k experts either way
    assert _close(same.latency_s, predict(tpl.instantiate(1, 1, 1000), dev).latency_s)


def test_sweep_evaluates_moe_points_like_predict():
    from sim import api
    from sim.dse.evaluate import evaluate
    pts = pd.DataFrame({"model": "mixtral-8x7b", "device": "h100", "phase": ["decode", "decode", "prefill"],
                        "batch": [2, 32, 4], "seq_len": [1000, 3000, 700], "quant": "fp8"})
    out = evaluate(pts)
    assert (out["status"] == "ok").all()
    for i, row in pts.iterrows():
        p = api.predict("mixtral-8x7b", "h100", row["phase"], int(row["batch"]), int(row["seq_len"]), quant="fp8")
        assert _close(out["latency_s"][i], p.latency_s) and _close(out["energy_j"][i], p.energy_j)
