"""TeLLMe's table-lookup engine (hw_models/tlmm.py) and the serial / driver-overhead dataflow steps."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models.costs import cost_model
from hw_models.systems import load_system
from hw_models.tlmm import TELLME, load_bytes, regions, tlmm_cycles
from mapping import map_graph
from mapping.fpga_dataflow import configure
from sim.engine import simulate
from workloads.recipe import build_workload

LAYER = [(1536, 1536)] * 4 + [(1536, 4096)] * 2 + [(4096, 1536)]     # q k v o, gate up, down of BitNet-0.73B


def test_bitnet_layer_fills_the_13_weight_regions_the_hls_interface_declares():
    # top_bitnet.hpp: m_axi depth 24*13*19*...; chatbot.py weight_size: 13 linears' regions per layer
    assert sum(regions(k, n) for k, n in LAYER) == 13
    per_token = 24 * sum(load_bytes(k, n) for k, n in LAYER)
    assert 170e6 < per_token < 180e6          # 5 bits per 3 weights with padding: ~175 MB for 0.73B params


def test_tlmm_cycles_by_hand_for_a_q_projection():
    # 19 k-steps of (84 reads + 96 row blocks x II 2) + 96 write-out clocks
    assert tlmm_cycles(1, 1536, 1536) == 19 * (84 + 96 * 2) + 96
    assert tlmm_cycles(1, 1536, 1536, {**TELLME, "ii": 1}) == 19 * (84 + 96) + 96


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 256), st.integers(1, 8192), st.integers(1, 8192))
def test_prompt_tokens_run_one_after_another(m, k, n):
    assert tlmm_cycles(m, k, n) == m * tlmm_cycles(1, k, n)
    assert tlmm_cycles(1, k, n) >= k * n / (TELLME["tables"] * TELLME["group"] * TELLME["rows"])


def _step(phase, tokens, overlap, runtime_s=0.0, params=None):
    s = load_system("kv260-board")
    m = map_graph(build_workload("bitnet-b1.58-0.7b", phase, 1, tokens, quant="ternary"), s, "dataflow,lmhost")
    m = configure(m, s, overlap=overlap, runtime_overhead_s=runtime_s,
                  cost_params=params or {"tlmm": TELLME, "serial_weight_load": 1})
    return simulate(m, s)


def test_serial_weight_load_is_slower_than_overlapped_and_driver_time_adds_once_per_step():
    serial = _step("decode", 128, "serial").latency_s
    overlapped = _step("decode", 128, True, params={"tlmm": TELLME}).latency_s
    assert serial > overlapped
    assert _step("decode", 128, "serial", runtime_s=2e-3).latency_s - serial == pytest.approx(2e-3, rel=1e-6)


def test_tlmm_cost_is_load_plus_compute_when_serial():
    fpga = load_system("kv260-board").device("fpga")
    op = next(o for o in build_workload("bitnet-b1.58-0.7b", "decode", 1, 64, quant="ternary").ops
              if o.name == "mlp.down_proj")
    model = cost_model(fpga, params={"tlmm": TELLME, "serial_weight_load": 1, "op_overhead_us": 0.0})
    c = model.cost(op, model.f_ref)
    assert c.time_s == c.compute_s + c.memory_s
    assert c.compute_s * 250e6 == pytest.approx(tlmm_cycles(1, 4096, 1536))
    assert c.bytes >= load_bytes(4096, 1536)
