"""Eager elementwise/norm kernels priced by how they reach their operands (workloads/tracer.py `_access`,
hw_models/gpu.py `eager_kernel_eff`, benchmarks/gpu/fit_eager.py; docs/stack-accuracy.md "Eager kernels by access
class")."""
import sys
from pathlib import Path

import numpy as np
import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel, eager_kernel_eff
from sim import api
from workloads import trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"))

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "data"
OFF = {"vec_bw_eff": 0, "nonvec_bw_eff": 0, "cat_bw_eff": 0}


def _classes(graph, name):
    op = next(o for o in graph.ops if o.name == name)
    return [(k.aten, int(k.strided)) for k in op.kernels]


def test_the_tracer_tells_vectorized_from_unrolled_kernels():
    """As torch runs them on the H200 (h200-2026-12-06-stack/kernels.csv): the bf16 -> fp32 `.to()` is
    unrolled_elementwise_kernel, x * rsqrt(mean) and weight * x broadcast (elementwise_kernel<128, N>), pow, the mean
    reduction and the fp32 -> bf16 copy vectorized; RoPE's halves gapped, its products broadcast over heads and its
    sum of two layouts not vectorized; the KV append's cat of a transposed v not vectorized, the residual add and
    SiLU * up vectorized."""
    g = trace("llama-2-13b", "prefill", 4, 2048)
    assert _classes(g, "input_norm") == [("_to_copy", 2), ("pow", 0), ("mean", 0), ("add", 0), ("rsqrt", 0),
                                         ("mul", 2), ("_to_copy", 0), ("mul", 2)]
    assert _classes(g, "attn.rope") == [("neg", 1), ("cat", 1), ("mul", 2), ("mul", 2), ("add", 2)] * 2
    assert _classes(g, "attn.kv_append") == [("cat", 2), ("copy_", 0)]
    assert _classes(g, "residual_attn") == [("add", 0)]
    assert _classes(g, "mlp.act") == [("silu", 0), ("mul", 0)]
    # phi-3-mini's fused gate_up: SiLU and the product on the two gapped halves
    assert _classes(trace("phi-3-mini", "prefill", 1, 512), "mlp.act") == [("silu", 1), ("mul", 1)]


def test_a_preset_without_the_split_prices_as_one_eager_fraction():
    """Devices that set none of vec/nonvec/cat_bw_eff keep eager_bw_eff for every gap-free kernel (as they were
    fitted); the A100's norm is the same with and without the three keys set to 0."""
    p = {"eager_bw_eff": 0.8, "strided_bw_eff": 0.5, **OFF}
    assert [eager_kernel_eff(p, a, c) for a, c in ((0, False), (2, False), (1, False), (2, True), (1, True))] == \
        [0.8, 0.8, 0.5, 0.8, 0.5]
    q = {**p, "vec_bw_eff": 0.9, "nonvec_bw_eff": 0.45, "cat_bw_eff": 0.2}
    assert [eager_kernel_eff(q, a, c) for a, c in ((0, False), (2, False), (1, False), (2, True), (1, True),
                                                   (0, True))] == [0.9, 0.45, 0.5, 0.2, 0.2, 0.9]
    arr = eager_kernel_eff(q, np.array([0, 2, 1, 2, 0]), np.array([False, False, False, True, True]))
    assert arr.tolist() == [0.9, 0.45, 0.5, 0.2, 0.9]
    a100 = load_device("a100")
    op = next(o for o in trace("llama-3.1-8b", "prefill", 1, 2048).ops if o.name == "input_norm")
    assert GPUModel(a100).cost(op, 1410).time_s == GPUModel(a100, params=OFF).cost(op, 1410).time_s


def test_the_split_moves_the_measured_kernels_toward_their_times():
    """H200 preset: the residual add (vectorized, measured 0.93 of the datasheet in llama-2-13b 4x2048) gets
    cheaper and RoPE (unrolled, gapped, cats at ~0.19) dearer than one eager fraction priced them; the
    measured non-GEMM kernel time of the six profiled prefill steps is met closer on average."""
    import csv
    d = load_device("h200")
    new, old = GPUModel(d), GPUModel(d, params=OFF)
    g = trace("llama-2-13b", "prefill", 4, 2048)
    ops = {o.name: o for o in g.ops}
    assert new.cost(ops["residual_attn"], 1980).time_s < 0.8 * old.cost(ops["residual_attn"], 1980).time_s
    assert new.cost(ops["attn.rope"], 1980).time_s > 1.3 * old.cost(ops["attn.rope"], 1980).time_s
    rows = list(csv.DictReader(open(DATA / "h200-2026-12-06-stack" / "kernels.csv")))
    errs = {"new": [], "old": []}
    for case in dict.fromkeys(r["case"] for r in rows):
        model, phase, shape = case.split("/")
        if phase != "prefill":
            continue
        b, s = map(int, shape.split("x"))
        measured = sum(float(r["device_us"]) for r in rows if r["case"] == case and
                       not any(x in r["kernel"] for x in ("nvjet", "sdpa", "gemm", "cutlass"))) * 1e-6
        graph = trace(model, phase, b, s)
        for label, m in (("new", new), ("old", old)):
            t = sum(m.cost(o, 1980).time_s * o.repeat for o in graph.ops if o.kind not in ("matmul", "attention"))
            errs[label].append(abs(t / measured - 1))
    assert np.mean(errs["new"]) < 0.07 < np.mean(errs["old"]), errs
    assert max(errs["new"]) < 0.1


def test_fit_eager_reproduces_the_presets():
    """benchmarks/gpu/fit_eager.py on the committed data gives the presets' numbers (H100: vec, nonvec; H200: vec,
    nonvec and cat from kernels.csv)."""
    from fit_eager import fit_eager
    for name, data, kernels in (("h100", "h100-sxm-2026-11-24", None),
                                ("h200", "h200-2026-11-24", "h200-2026-12-06-stack")):
        d = load_device(name)
        cal = d.calibration.params
        fitted = fit_eager(d, DATA / data, {**cal, **OFF}, DATA / kernels if kernels else None)
        keys = ("vec_bw_eff", "nonvec_bw_eff") + (("cat_bw_eff",) if kernels else ())
        assert {k: fitted[k] for k in keys} == {k: cal[k] for k in keys}


@pytest.mark.parametrize("hardware", ["h100", "h200"])
@pytest.mark.parametrize("model,phase,batch,seq", [("llama-2-13b", "prefill", 4, 512), ("phi-3-mini", "decode", 8, 700),
                                                   ("qwen1.5-moe-a2.7b", "prefill", 2, 300)])
def test_fast_path_prices_the_classes_as_the_full_path(hardware, model, phase, batch, seq):
    full = api.predict(model, hardware, phase, batch, seq, detail=True)
    fast = api.predict(model, hardware, phase, batch, seq)
    assert abs(fast.latency_s - full.latency_s) <= 1e-9 * full.latency_s
    assert abs(fast.energy_j - full.energy_j) <= 1e-9 * full.energy_j
