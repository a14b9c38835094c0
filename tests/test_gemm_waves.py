"""The GEMM wave rule (hw_models/gpu.py gemm_time, `mm_even_waves`): whole waves of output tiles after split-K, or the
tiles' work spread evenly over the SMs (stream-K style; the H200 preset, fitted by benchmarks/gpu/fit_stack.py on
h200-2026-12-06-stack/gemm.csv), the same in GPUTable (the fast path) as in GPUModel.cost."""
import numpy as np
import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel
from hw_models.gpu_table import GPUTable
from workloads.graph import Op


def _gemm(m, n, k, dtype="bf16"):
    eb = 1 if dtype == "fp8" else 2
    return Op(0, "mm", "matmul", None, 1, (), (), dtype, 2 * m * n * k,
              {"weight": n * k * eb, "activation": m * k * eb + m * n * 2}, attrs=dict(m=m, n=n, k=k, batch=1))


@pytest.mark.parametrize("m,n,k", [(512, 5120, 13824), (256, 5120, 5120), (2048, 4096, 4096), (8192, 8192, 8192),
                                   (1, 4096, 4096)])
def test_even_waves_between_whole_waves_and_the_work(m, n, k):
    """Spreading the tiles over the SMs takes no longer than whole waves, and no less than the GEMM's FLOPs at the
    attained peak of the whole GPU."""
    dev = load_device("h100")
    whole = GPUModel(dev, params={"mm_even_waves": 0}).cost(_gemm(m, n, k), 1980).compute_s
    even = GPUModel(dev, params={"mm_even_waves": 1}).cost(_gemm(m, n, k), 1980).compute_s
    assert even <= whole * (1 + 1e-12)
    # no faster than the GEMM's FLOPs at the attained peak (mm_eff) of the whole GPU
    model = GPUModel(dev, params={"mm_even_waves": 1})
    assert even >= 2 * m * n * k / (model._peak("bf16", 1980) * model.p["mm_eff"]) * (1 - 1e-12)


def test_partial_wave_gemm_faster_with_even_waves():
    """80 output tiles on 132 SMs (llama-2-13b's down projection at 512 tokens): one whole wave on 80 SMs before, about
    80/132 of it spread evenly."""
    dev = load_device("h100")
    op = _gemm(512, 5120, 13824)
    whole = GPUModel(dev, params={"mm_even_waves": 0}).cost(op, 1980).compute_s
    even = GPUModel(dev, params={"mm_even_waves": 1}).cost(op, 1980).compute_s
    assert even < 0.8 * whole


def test_h200_preset_takes_even_waves():
    assert GPUModel(load_device("h200")).p["mm_even_waves"] == 1


@pytest.mark.parametrize("hardware,even", [("h100", 1), ("h200", None), ("h100", None)])
@pytest.mark.parametrize("profile", ["fused", "eager"])
def test_table_prices_gemms_as_the_model(hardware, even, profile):
    """GPUTable's GEMM compute columns equal GPUModel.cost of the same GEMMs under either wave rule."""
    from sim.api import _warm
    from workloads.linear_step import monomials
    _, _, compiled = _warm("llama-3.1-8b", hardware, "prefill", profile, {})
    compiled(3, 300, 0)
    step = next(v[0] for v in compiled.blocks.values() if v is not None)
    params = {} if even is None else {"mm_even_waves": even}
    model = GPUModel(load_device(hardware), profile=profile, params=params)
    table = GPUTable(model, step, 1830.0)
    q = monomials(compiled.tpl, np.array([3]), np.array([300]), np.array([0]))[0] @ step.Q
    compute, memory, over, _ = table.costs(q)
    cols, first = step.cols, step.n_other
    checked = 0
    for dtype, _, s, e in step.mm_groups:
        for j in range(s, e):
            m, n, k, b = (float(q[0, cols[key]][j]) for key in ("m", "n", "k", "batch"))
            op = Op(0, "mm", "matmul", None, 1, (), (), dtype, 2 * m * n * k * b,
                    {"all": float(q[0, cols["bytes"]][first + j])}, attrs=dict(m=m, n=n, k=k, batch=b))
            c = model.cost(op, 1830.0)
            assert np.isclose(compute[0, first + j], c.compute_s, rtol=1e-12, atol=0), (j, compute[0, first + j], c)
            checked += 1
    assert checked
