"""The Hexagon graph cost model and the mllm-NPU chunk/subgraph scheduler."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from hw_models import load_device
from hw_models.hexagon import HexagonNPU, fit_weight_bound, solve_int8_rate, table3_points
from mapping.mllm_npu import MODES, build_tasks, calibrated, chunks_of, kept_outlier_layers
from sim.mllm_npu import prefill
from mapping.taskgraph import Task
from sim.schedule import run_tasks
from workloads.errors import HwsimError


def test_table3_is_weight_bound_not_flop_bound():
    """Table 3's NPU column follows K*N: the weight fit beats a FLOP fit of the same form."""
    pts = table3_points(load_device("snapdragon-8gen3"))
    assert len(pts) == 6
    t0, rate = fit_weight_bound(pts)
    w_rms = math.sqrt(sum((t0 + k * n / rate - t) ** 2 for _, k, n, t in pts) / 6)
    flop_pts = [(1, 1, 2 * m * k * n, t) for m, k, n, t in pts]          # same fit on FLOPs instead of K*N
    f0, frate = fit_weight_bound(flop_pts)
    f_rms = math.sqrt(sum((f0 + f / frate - t) ** 2 for _, _, f, t in flop_pts) / 6)
    assert w_rms < 0.25e-3 and w_rms < f_rms / 3


def test_matmul_cost_flat_until_the_compute_knee_then_linear_in_rows():
    npu = HexagonNPU(0.3e-3, 12e9, 2e12, 60e9)
    knee = npu.int8_rate / (2 * npu.weight_rate)                         # rows where compute meets weight load
    assert npu.matmul_s(8, 2048, 2048) == npu.matmul_s(int(knee) - 1, 2048, 2048)
    assert npu.matmul_s(int(4 * knee), 2048, 2048) == pytest.approx(4 * npu.matmul_s(int(knee), 2048, 2048), rel=0.01)


@given(st.integers(1, 4096), st.integers(64, 8192), st.integers(64, 8192), st.integers(1, 512))
@settings(max_examples=60, deadline=None)
def test_matmul_cost_monotonic(m, k, n, dm):
    npu = HexagonNPU(0.3e-3, 12e9, 2e12, 60e9)
    base = npu.matmul_s(m, k, n)
    assert npu.matmul_s(m + dm, k, n) >= base and npu.matmul_s(m, k + dm, n) >= base
    assert npu.with_rate(4e12).matmul_s(m, k, n) <= base                 # a faster array never costs more


def test_rate_solver_inverts_a_falling_busy_time():
    busy = lambda r: 0.01 + 6e11 / r                                     # noqa: E731
    rate = solve_int8_rate(busy, 0.3)
    assert busy(rate) == pytest.approx(0.3, rel=1e-6)
    with pytest.raises(HwsimError):
        solve_int8_rate(busy, 0.005)                                     # below the fixed part: no rate does it


@given(st.integers(1, 5000), st.sampled_from([32, 64, 128, 256, 512]))
def test_chunk_math(prompt, chunk):
    parts = chunks_of(prompt, chunk)
    assert len(parts) == math.ceil(prompt / chunk)
    assert sum(t for _, t in parts) == prompt and all(0 < t <= chunk for _, t in parts)
    assert [s for s, _ in parts] == [i * chunk for i in range(len(parts))]


def test_bad_input_is_one_clear_error():
    with pytest.raises(HwsimError):
        chunks_of(0, 256)
    with pytest.raises(HwsimError):
        build_tasks("qwen1.5-1.8b", calibrated(), 256, mode="sideways")
    with pytest.raises(HwsimError):
        kept_outlier_layers(list(range(4)), 1.5)


def test_outliers_kept_at_both_ends_of_the_stack():
    layers = list(range(24))
    assert kept_outlier_layers(layers, 0.85) == {0, 23, 1, 22}          # round(24 * 0.15) = 4
    assert kept_outlier_layers(layers, 1.0) == set() and kept_outlier_layers(layers, 0.0) == set(layers)


def test_calibration_reproduces_section_3_4_busy_times():
    costs = calibrated()
    tasks = build_tasks("qwen1.5-1.8b", costs, 256)
    assert sum(t.duration for t in tasks if t.resource == "npu") == pytest.approx(0.315, rel=1e-3)
    assert sum(t.duration for t in tasks if t.resource == "cpu") == pytest.approx(0.1575, rel=1e-6)


@pytest.mark.parametrize("model", ["qwen1.5-1.8b", "mistral-7b"])
@pytest.mark.parametrize("prompt", [300, 1024])
def test_out_of_order_never_slower_and_same_work(model, prompt):
    seq, ooe = (prefill(model, prompt, m) for m in MODES)
    assert ooe["latency_s"] <= seq["latency_s"] * (1 + 1e-9)
    assert ooe["npu_s"] == pytest.approx(seq["npu_s"]) and ooe["cpu_s"] == pytest.approx(seq["cpu_s"])
    assert ooe["latency_s"] >= max(ooe["npu_s"], ooe["cpu_s"])            # no processor does two things at once


def test_one_chunk_has_nothing_to_reorder_and_short_prompts_pay_the_padded_chunk():
    a, b = prefill("qwen1.5-1.8b", 256, "in_order"), prefill("qwen1.5-1.8b", 256)
    assert a["latency_s"] == pytest.approx(b["latency_s"])
    assert prefill("qwen1.5-1.8b", 64)["npu_s"] == pytest.approx(b["npu_s"])      # NPU graphs are fixed at 256 rows
    assert prefill("qwen1.5-1.8b", 1024)["npu_s"] == pytest.approx(4 * b["npu_s"])


def test_pruning_more_outliers_never_slows_in_order_prefill():
    """In order, every kept layer adds CPU work to the critical path (out of order may hide it)."""
    rates = [prefill("qwen1.5-1.8b", 512, "in_order", prune=p)["tokens_per_s"] for p in (0.0, 0.85, 1.0)]
    assert rates == sorted(rates) and rates[0] < rates[-1]


def test_hetero_priority_picks_the_lower_value_first():
    tasks = [Task("busy", "x", 2.0), Task("gate", "y", 1.0), Task("late", "x", 1.0, ["gate"], priority=5),
             Task("early", "x", 1.0, ["gate"], priority=-5)]             # both wait for x from t=1 to t=2
    spans = run_tasks(tasks)["spans"]
    assert spans["early"][0] < spans["late"][0]
