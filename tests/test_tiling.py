"""GEMM tiling search: fits the buffer, beats a naive tiling, stops at its time limit."""
import pytest

from hw_models.tiling import evaluate, search
from workloads.errors import HwsimError

ARGS = dict(rows=128, cols=128, arrays=8, clock_hz=1e9, bandwidth=1e12)


def test_best_tiling_fits_and_beats_the_smallest_blocks():
    r = search(256, 12288, 4096, buffer_bytes=16e6, **ARGS)
    b = r["best"]
    assert (b.tm * b.tk + b.tk * b.tn + b.tm * b.tn) * 2 <= 16e6
    naive = evaluate(256, 12288, 4096, 16, 128, 128, "mn", 128, 128, 8, 1e9, 1e12, 2)
    assert b.time_s <= naive.time_s and b.traffic_bytes < naive.traffic_bytes
    assert r["complete"] and r["fitting"] > 0


def test_compute_bound_big_gemm_reaches_the_array_peak():
    b = search(8192, 8192, 8192, buffer_bytes=32e6, **ARGS)["best"]
    peak = 8 * 128 * 128 * 2 * 1e9
    assert 2 * 8192 ** 3 / b.time_s == pytest.approx(peak, rel=0.15)


def test_time_limit_stops_the_search():
    r = search(1 << 20, 1 << 16, 1 << 16, buffer_bytes=64e6, time_limit_s=0.0, **ARGS)
    assert not r["complete"] and r["evaluated"] < r["candidates"]


def test_impossible_buffer():
    with pytest.raises(HwsimError):
        search(1024, 1024, 1024, buffer_bytes=1000, **ARGS)


# --- the searched tiling wired into the NPU and FPGA cost models ---------------------------------------------
from hypothesis import assume, given, settings, strategies as st   # noqa: E402

from hw_models.tiling import block_bytes, default_tiling, tiled   # noqa: E402


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 5000), n=st.integers(1, 20000), k=st.integers(1, 20000), rows=st.sampled_from([16, 128]),
       buffer_kb=st.integers(16, 32768), limit=st.sampled_from([0.0, 0.02]))
def test_searched_tiling_never_costs_more_than_the_default_and_fits(m, n, k, rows, buffer_kb, limit):
    buffer = buffer_kb * 1e3
    try:
        tm, tn, tk, order = default_tiling(m, n, k, rows, rows, buffer, 2)
    except HwsimError:
        assume(False)
    default = evaluate(m, n, k, tm, tn, tk, order, rows, rows, 8, 1e9, 1e12, 2)
    for objective, key in (("time", "time_s"), ("traffic", "traffic_bytes")):
        best = search(m, n, k, rows, rows, 8, 1e9, 1e12, buffer, 2, limit, objective=objective)["best"]
        assert getattr(best, key) <= getattr(default, key) * (1 + 1e-12)
        assert block_bytes(best.tm, best.tn, best.tk, 2) <= buffer and best.fits(buffer, 2)


def _matmul(m, n, k, wbytes=2):
    from workloads.graph import Op
    return Op(index=0, name="mlp.up_proj", kind="matmul", group=0, repeat=1, input_shapes=(), output_shapes=(),
              dtype="bf16", flops=2 * m * n * k,
              bytes={"activation": float(m * k * 2 + m * n * 2), "weight": float(k * n * wbytes)},
              reads={"activation": float(m * k * 2), "weight": float(k * n * wbytes)},
              attrs={"m": m, "n": n, "k": k, "batch": 1})


@pytest.mark.parametrize("device, m", [("tpu-v4", 8192), ("neupims-npu", 2048), ("alveo-u280", 4096),
                                       ("kria-kv260", 512)])
def test_cost_models_use_the_searched_tiling_memoized(device, m):
    from hw_models import load_device
    from hw_models.costs import cost_model
    from hw_models.systolic import gemm_tiled_traffic
    op = _matmul(m, 11008, 4096)
    model = cost_model(load_device(device), params={"tiling_search": 1, "onchip_mb": 0.0})
    before = tiled.cache_info()
    moved = model.cost(op, model.f_ref).bytes
    again = model.cost(op, model.f_ref).bytes
    assert moved == again and tiled.cache_info().hits > before.hits          # one search per shape
    w, a = op.reads["weight"], op.reads["activation"]
    assert moved >= w + a                                                     # each operand crosses at least once
    if device in ("tpu-v4", "neupims-npu"):
        e = next(e for e in model.device.engines.values() if e.array_rows)
        args = (m, 11008, 4096, w, a, e.array_rows, e.array_cols or e.array_rows, e.units, model.buf, 0.05)
        default = gemm_tiled_traffic(*args, which="default")
        assert gemm_tiled_traffic(*args) <= default
