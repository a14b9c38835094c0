"""The H100 router grid (benchmarks/gpu/data/h100-2026-12-06-router-grid, measure_stack.py --parts router) and the
router fitted on it (benchmarks/gpu/fit_stack.py fit_moe): calibration the grid, held out every real model's router
row of the H100 stack data."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))


def test_grid_covers_measure_stacks_cases():
    from fit_stack import router_grid
    from hw_models import load_device
    from measure_stack import ROUTER_TOKENS, router_cases
    rows = router_grid(load_device("h100"))
    got = {(int(r["experts"]), int(r["top_k"]), int(r["hidden"]), int(r["tokens"])) for r in rows}
    assert got == {(e, k, h, t) for e, k, h in router_cases(False) for t in ROUTER_TOKENS}
    assert all(float(r["seconds"]) > 0 for r in rows)
    assert router_grid(load_device("h200")) == []          # no H200 grid: its router stays fitted on Mixtral


def test_router_fitted_on_the_grid_predicts_the_real_models_better():
    from fit_stack import DATA, fit_moe, mape, moe_counts, moe_errors, read
    from hw_models import load_device
    dev = load_device("h100")
    rows = read(DATA / "h100-2026-12-06-stack", "moe.csv")
    counts = moe_counts(rows)
    params = {k: v for k, v in fit_moe(dev, rows, counts, {}).items() if k.startswith("moe_")}
    held = moe_errors(dev, rows, counts, params, "held-out", "router")
    assert {r["config"] for _, _, r in held} == {"mixtral-8x7b", "qwen1.5-moe", "deepseek-v2-lite"}
    old = {"moe_topk_us": 9.0, "moe_topk_row_ns": 2.5, "moe_topk_sort": 0, "moe_sort_us": 0.0, "moe_topk_warp_us": 0.0,
           "moe_topk_warp_ns": 0.0, "moe_router_unaligned_gbps": 0.0}   # the Mixtral-fitted router before the grid
    before = mape(moe_errors(dev, rows, counts, old, "held-out", "router"))
    assert mape(held) < 8.0 < before
    assert mape(moe_errors(dev, rows, counts, params, "calibration", "router")) < 10.0   # the grid


def test_router_numbers_are_not_written_where_a_whole_layer_gets_worse():
    from fit_stack import improved
    before = {("held-out", "moe router"): [0.107], ("held-out", "moe layer-loop"): [0.142],
              ("held-out", "moe layer-grouped"): [0.087]}
    trade = {**before, ("held-out", "moe router"): [0.064], ("held-out", "moe layer-loop"): [0.148]}
    both = {**before, ("held-out", "moe router"): [0.064], ("held-out", "moe layer-loop"): [0.140]}
    assert "moe_topk_us" not in improved(before, trade)
    assert {"moe_topk_us", "moe_topk_sort", "moe_router_unaligned_gbps"} <= set(improved(before, both))
