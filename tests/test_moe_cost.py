"""hw_models/moe.py: one MoE layer's cost by implementation, load imbalance and the loop's host cost."""
from hw_models import load_device
from hw_models.gpu import GPUModel
from hw_models.host import HostModel, default_host
from hw_models.moe import MoELayer, grouped_gemm_s, kernels, layer_time, moe_layer_time


def _model(profile="eager"):
    return GPUModel(load_device("h200"), profile=profile)


def test_loop_is_the_sum_over_active_experts():
    m = _model()
    # 32 rows per expert and more: past the few-row GEMMs' per-row cost (moe_loop_small_m), which prices 16 rows in
    # one expert above 8 + 8 in two
    one = layer_time(kernels(m, MoELayer(32, 2048, 1408, 2, (64, 0, 0, 0)), "loop", 1980))
    two = layer_time(kernels(m, MoELayer(32, 2048, 1408, 2, (32, 32, 0, 0)), "loop", 1980))
    # the second expert adds its own kernels (floors) and weight read: about twice the expert time
    assert two["experts"] > 1.7 * one["experts"]
    assert one["total"] == sum(v for k, v in one.items() if k not in ("host", "total"))


def test_grouped_gemm_imbalance_costs_padding_not_the_largest_expert():
    m = _model()
    even = grouped_gemm_s(m, [512] * 8, 2 * 14336, 4096, 1980)
    ragged = grouped_gemm_s(m, [500, 520, 530, 490, 510, 515, 505, 526], 2 * 14336, 4096, 1980)
    one = grouped_gemm_s(m, [4096, 0, 0, 0, 0, 0, 0, 0], 2 * 14336, 4096, 1980)
    assert ragged > even                  # partly filled last tiles
    assert one < 1.1 * even               # same rows on one expert: no slower (the "max" rule would say 8x)
    assert grouped_gemm_s(m, [4096] + [0] * 7, 2 * 14336, 4096, 1980, rule="max") < \
        grouped_gemm_s(m, [4096] + [1] * 7, 2 * 14336, 4096, 1980, rule="max") / 4


def test_host_issued_loop_waits_for_a_sync_and_its_launches():
    m = _model()
    host = HostModel(default_host(m.device))
    layer = MoELayer(32, 2048, 1408, 4, tuple([2] * 60 + [8] * 1))
    graph = moe_layer_time(m, layer, 1980, "loop")
    eager = moe_layer_time(m, layer, 1980, "loop", host=host)
    n = len(kernels(m, layer, "loop", 1980))
    assert eager["host"] >= host.sync_s
    assert eager["total"] >= n * host.s["launch"]
    assert graph["host"] == 0.0
    grouped = moe_layer_time(m, layer, 1980, "grouped", host=host)
    assert grouped["total"] < eager["total"] / 3


def test_stack_picks_the_implementation():
    layer = MoELayer(128, 4096, 14336, 2, tuple([32] * 8))
    assert moe_layer_time(_model("vllm"), layer, 1980)["total"] == \
        moe_layer_time(_model("vllm"), layer, 1980, "grouped")["total"]
    assert moe_layer_time(_model("eager"), layer, 1980)["total"] == \
        moe_layer_time(_model("eager"), layer, 1980, "loop")["total"]


def test_topk_cost_terms():
    """hw_models/moe.py topk_s: the warp terms scale with round_up(E, 32) / 32 (per call and per row), the sort of
    the k results is a kernel of its own only for k > 1, and with none of the grid's numbers set the cost is the
    selection kernel, moe_topk_us and moe_topk_row_ns alone."""
    from hw_models.moe import _eltwise_s, sort_s, topk_s
    m = _model()
    base = dict(moe_topk_us=5.0, moe_topk_row_ns=2.0, moe_topk_sort=0, moe_sort_us=0.0, moe_topk_warp_us=0.0,
                moe_topk_warp_ns=0.0, moe_router_unaligned_gbps=0.0)   # none of the grid's numbers (presets carry them)
    plain = GPUModel(load_device("h200"), profile="eager", params=base)
    assert abs(topk_s(plain, 100, 64, 4) - (_eltwise_s(m, 100 * 64 * 4 + 100 * 4 * 12) + 5e-6 + 100 * 2e-9)) < 1e-15
    warp = GPUModel(load_device("h200"), profile="eager", params=dict(base, moe_topk_warp_us=1.0, moe_topk_warp_ns=3.0))
    for e, warps in ((8, 1), (32, 1), (60, 2), (64, 2), (160, 5)):
        extra = topk_s(warp, 100, e, 4) - topk_s(plain, 100, e, 4)
        assert abs(extra - warps * (1e-6 + 100 * 3e-9)) < 1e-12
    sort = GPUModel(load_device("h200"), profile="eager", params=dict(base, moe_topk_sort=1))
    assert sort_s(plain, 100, 4) is None and sort_s(sort, 100, 1) is None
    assert sort_s(sort, 100, 2) >= m.p["kernel_floor_us"] * 1e-6
    names = [k.aten for k in kernels(sort, MoELayer(100, 2048, 1408, 4, (0,) * 64), "loop", 1980) if k.part == "router"]
    assert names == ["mm", "_to_copy", "_softmax", "topk", "sort"]
    assert "sort" not in [k.aten for k in kernels(sort, MoELayer(100, 2048, 1408, 1, (0,) * 64), "loop", 1980)]


def test_router_gemm_unaligned_rows():
    """hw_models/moe.py router_gemm_s: the extra input stream only where a bf16 output row is not 16-byte aligned."""
    from hw_models.moe import _gemm_s, router_gemm_s
    m = GPUModel(load_device("h100"), profile="eager", params=dict(moe_router_unaligned_gbps=4000.0))
    for e in (8, 16, 64, 128, 160):
        assert router_gemm_s(m, 4096, e, 2048, 1980) == _gemm_s(m, 4096, e, 2048, 1980)
    assert abs(router_gemm_s(m, 4096, 60, 2048, 1980) - _gemm_s(m, 4096, 60, 2048, 1980) - 4096 * 2048 * 2 / 4e12) < 1e-12
