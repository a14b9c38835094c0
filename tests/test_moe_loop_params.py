"""hw_models/moe.py's per-expert loop numbers (moe_loop_floor_us, moe_loop_bw_eff, and the few-row GEMMs' cost per
row up to a small-M limit: moe_loop_small_m, moe_loop_row_us) and benchmarks/gpu/fit_stack.py's fit of them on a
loop grid (fit_loop): absent, the loop is priced as before; present, only the loop's kernels move; the fit recovers
the numbers a grid was priced with; the H100 preset's per-row cost is what its measured grid needs at 16 rows and
nothing at 32."""
import sys
from pathlib import Path

import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel
from hw_models.moe import MoELayer, kernels, layer_time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
LAYER = MoELayer(32, 2048, 1408, 4, (2,) * 60 + (0,) * 4)


def _times(params, impl):
    m = GPUModel(load_device("h100"), profile="eager", params=params)
    return [(k.part, k.aten, k.gpu_s) for k in kernels(m, LAYER, impl, 1980)]


def test_loop_numbers_move_only_the_loop_kernels():
    absent = {"moe_loop_floor_us": None}     # the H100 preset carries one (1.6 us): price without it
    old_loop, old_grouped = _times(absent, "loop"), _times(absent, "grouped")
    p = {"moe_loop_floor_us": 1.0}
    new_loop = _times(p, "loop")
    assert _times(p, "grouped") == old_grouped
    kfloor = GPUModel(load_device("h100")).p["kernel_floor_us"]
    for (part, aten, a), (_, _, b) in zip(old_loop, new_loop):
        if part == "router":
            assert a == b
        else:                      # every loop kernel (elementwise and GEMM) pays the loop floor instead
            assert b == pytest.approx(a - (kfloor - 1.0) * 1e-6, rel=1e-9, abs=1e-15)
    # the weight stream of the loop's GEMMs: slower at a lower fraction of DRAM bandwidth, elementwise unchanged
    slow = _times(dict(absent, moe_loop_bw_eff=0.3), "loop")
    for (part, aten, a), (_, _, b) in zip(old_loop, slow):
        assert (b > a) if (aten == "mm" and part == "experts") else (b == a)


def test_row_cost_applies_to_the_loop_gemms_up_to_the_limit_only():
    from hw_models.moe import _gemm_s, _loop_gemm_s
    off = GPUModel(load_device("h100"), profile="eager", params={"moe_loop_small_m": 0})
    on = GPUModel(load_device("h100"), profile="eager", params={"moe_loop_small_m": 16, "moe_loop_row_us": 0.5})
    for m, extra_us in ((1, 0.0), (2, 0.5), (8, 3.5), (16, 7.5), (17, 0.0), (32, 0.0), (256, 0.0)):
        d = _loop_gemm_s(on, m, 1408, 2048, 1980) - _loop_gemm_s(off, m, 1408, 2048, 1980)
        assert d == pytest.approx(extra_us * 1e-6, abs=1e-12), m
        # the dense GEMM (every other path's) is not the loop's: unchanged
        assert _gemm_s(on, m, 1408, 2048, 1980) == _gemm_s(off, m, 1408, 2048, 1980)
    layer = MoELayer(32, 2048, 1408, 4, (8,) * 16 + (0,) * 48)
    assert [k.gpu_s for k in kernels(on, layer, "grouped", 1980)] == \
        [k.gpu_s for k in kernels(off, layer, "grouped", 1980)]
    # a device whose preset has no loop numbers (the A100's; the H200 takes the H100's) prices the loop as before
    a100 = GPUModel(load_device("a100"), profile="eager")
    assert a100.p.get("moe_loop_row_us") is None and a100.p.get("moe_loop_small_m") is None
    assert _loop_gemm_s(a100, 16, 1408, 2048, 1410) == _gemm_s(a100, 16, 1408, 2048, 1410)
    h200 = GPUModel(load_device("h200"), profile="eager")
    assert (h200.p["moe_loop_small_m"], h200.p["moe_loop_row_us"]) == (on.p["moe_loop_small_m"], 0.38)


def test_h100_preset_prices_the_measured_grid_at_16_rows_and_leaves_32():
    """The measured loop grid (data/h100-2026-12-06-moe-grid): without the per-row cost the 16-row loops are priced
    about 30% short; with the preset's they are close; the 32-row loops (cuBLAS's tensor-core tile) are priced the
    same with or without it."""
    import fit_stack as fs
    dev = load_device("h100")
    grid = [r for r in fs.loop_grid(dev) if r["impl"] == "loop"]
    assert len(grid) == 120 + 9               # the moe grid's loop rows and the wide grid's (512-2,048 rows)
    p = GPUModel(dev).p
    assert p["moe_loop_small_m"] == 16 and p["moe_loop_row_us"] > 0

    def mean_err(params, rows):
        e = [e for _, e, r in fs.loop_grid_errors(dev, grid, params) if int(r["rows_per_expert"]) == rows]
        assert len(e) == 15
        return sum(e) / len(e)
    assert mean_err({"moe_loop_row_us": 0.0}, 16) < -0.25
    assert abs(mean_err({}, 16)) < 0.08
    assert mean_err({}, 32) == pytest.approx(mean_err({"moe_loop_row_us": 0.0}, 32), abs=1e-12)
    assert fs.mape(fs.loop_grid_errors(dev, grid, {})) < fs.mape(fs.loop_grid_errors(dev, grid, {"moe_loop_row_us": 0.0}))


def test_fit_loop_recovers_the_numbers_a_grid_was_priced_with():
    import fit_stack as fs
    from measure_stack import moegrid_cases, moegrid_rows
    dev = load_device("h100")
    # the floor is the preset's (held: measured directly, measure_replay.py); the rest fitted
    floor = GPUModel(dev).p["moe_loop_floor_us"]
    true = {"moe_loop_floor_us": floor, "moe_loop_bw_eff": 0.7, "moe_loop_small_m": 8, "moe_loop_row_us": 0.3}
    m = GPUModel(dev, profile="eager", params=true)
    rows = []
    for H, F, n, K in moegrid_cases(False):
        for r in moegrid_rows(False):
            t = layer_time(kernels(m, MoELayer(n * r // K, H, F, K, (r,) * n), "loop", 1980))
            rows.append(dict(impl="loop", tokens=n * r // K, hidden=H, ffn=F, top_k=K, rows_per_expert=r, experts=n,
                             sm_mhz="1980", seconds=str(t["total"] - t["router"])))
    key, wide = (dev.id, "moe-grid"), (dev.id, "moe-grid-wide")
    saved, saved_wide = fs._GRIDS.get(key), fs._GRIDS.get(wide)
    fs._GRIDS[key], fs._GRIDS[wide] = rows, []
    try:
        assert fs.mape(fs.loop_grid_errors(dev, rows, {})) > 5.0          # the preset's loop misses this grid
        got = fs.fit_loop(dev, {})
        assert got == true
        assert fs.mape(fs.loop_grid_errors(dev, rows, got)) < 1e-6
        # a grid without the per-row cost: none fitted (nothing written for it)
        rows_none = [dict(r) for r in rows]
        plain = GPUModel(dev, profile="eager", params={**true, "moe_loop_small_m": 0})
        for r in rows_none:
            n, m = int(r["experts"]), int(r["rows_per_expert"])
            t = layer_time(kernels(plain, MoELayer(int(r["tokens"]), int(r["hidden"]), int(r["ffn"]),
                                                   int(r["top_k"]), (m,) * n), "loop", 1980))
            r["seconds"] = str(t["total"] - t["router"])
        fs._GRIDS[key] = rows_none
        got = fs.fit_loop(dev, {})
        assert "moe_loop_row_us" not in got and "moe_loop_small_m" not in got
    finally:
        for k, v in ((key, saved), (wide, saved_wide)):
            if v is None:
                fs._GRIDS.pop(k)
            else:
                fs._GRIDS[k] = v
