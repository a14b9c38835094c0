"""hw_models/moe.py's per-expert loop numbers (moe_loop_floor_us, moe_loop_bw_eff) and benchmarks/gpu/fit_stack.py's
fit of them on a loop grid (fit_loop): absent, the loop is priced as before; present, only the loop's kernels move;
the fit recovers the numbers a grid was priced with."""
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


def test_fit_loop_recovers_the_numbers_a_grid_was_priced_with():
    import fit_stack as fs
    from measure_stack import moegrid_cases, moegrid_rows
    dev = load_device("h100")
    true = {"moe_loop_floor_us": 1.6, "moe_loop_bw_eff": 0.7}
    m = GPUModel(dev, profile="eager", params=true)
    rows = []
    for H, F, n, K in moegrid_cases(False):
        for r in moegrid_rows(False):
            t = layer_time(kernels(m, MoELayer(n * r // K, H, F, K, (r,) * n), "loop", 1980))
            rows.append(dict(impl="loop", tokens=n * r // K, hidden=H, ffn=F, top_k=K, rows_per_expert=r, experts=n,
                             sm_mhz="1980", seconds=str(t["total"] - t["router"])))
    key = (dev.id, "moe-grid")
    saved = fs._GRIDS.get(key)
    fs._GRIDS[key] = rows
    try:
        assert fs.mape(fs.loop_grid_errors(dev, rows, {})) > 5.0          # the preset's loop misses this grid
        got = fs.fit_loop(dev, {})
        assert got == true
        assert fs.mape(fs.loop_grid_errors(dev, rows, got)) < 1e-6
    finally:
        if saved is None:
            fs._GRIDS.pop(key)
        else:
            fs._GRIDS[key] = saved
