"""FPGA dataflow mapping: on-chip decode activations, spilled prefill, LM head on the host, one-line errors."""
import subprocess
import sys

import pytest

from hw_models.costs import cost_model
from hw_models.systems import load_system
from mapping import map_graph
from mapping.fpga_dataflow import configure
from sim.engine import simulate
from workloads.errors import HwsimError
from workloads.recipe import build_workload

BITNET = "bitnet-b1.58-0.7b"


def _mapped(phase, tokens, mapping="dataflow", system="kv260-board", model=BITNET, quant="ternary"):
    s = load_system(system)
    return map_graph(build_workload(model, phase, 1, tokens, quant=quant), s, mapping), s


def test_decode_activations_stay_on_chip_and_prefill_spills():
    dec, s = _mapped("decode", 128)
    pre, _ = _mapped("prefill", 128)
    assert dec.dataflow.onchip_activations and dec.dataflow.working_set_bytes <= dec.dataflow.activation_budget_bytes
    assert not pre.dataflow.onchip_activations
    # the on-chip budget comes from the datasheet BRAM + URAM (3.02 MB on the XCK26)
    assert dec.dataflow.activation_budget_bytes < 3.02e6
    fpga = s.device("fpga")

    def offchip(mapped, params):
        model = cost_model(fpga, params=params)
        return sum(model.cost(op, model.f_ref).bytes * op.repeat for op in mapped.graph.ops)
    assert offchip(pre, pre.dataflow.cost_params) > offchip(pre, {"onchip_mb": 1e3})     # prefill spills
    assert offchip(dec, dec.dataflow.cost_params) == offchip(dec, {"onchip_mb": 1e3})    # decode does not


def test_overlapped_layers_are_no_slower_than_serial_and_not_faster_than_the_weight_stream():
    m, s = _mapped("decode", 256)
    fast = simulate(m, s).latency_s
    assert simulate(configure(m, s, overlap=False), s).latency_s >= fast
    device = s.device("fpga")
    stream = m.graph.meta["weight_storage_bytes"] / (device.main_memory.bandwidth_gbps * 1e9)
    assert fast > stream * 0.5                     # the 2-bit weights must cross the DDR4 once per token


def test_lm_head_runs_on_the_host_cpu():
    m, s = _mapped("decode", 64, "dataflow,lmhost")
    r = simulate(m, s)
    lm = next(op for op in m.graph.ops if op.name == "lm_head")
    host = cost_model(s.device("host"))
    assert r.utilization["host0"] * r.latency_s == pytest.approx(host.cost(lm, host.f_ref).time_s, rel=1e-6)
    assert r.link_bytes["ddr"] > 0 and r.devices == 2


@pytest.mark.parametrize("mapping, system, words", [
    ("lmhost", "kv260-board", "goes with 'dataflow'"),
    ("dataflow", "dgx-h100", "needs an FPGA"),
    ("dataflow,lmhost", "kria-kv260", "no host CPU"),
    ("dataflow,dp:2", "u280-host", "cannot follow dp"),
])
def test_bad_dataflow_mappings(mapping, system, words):
    with pytest.raises(HwsimError, match=words):
        _mapped("decode", 64, mapping, system)


def test_model_too_big_for_the_card_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "simulate", "--model", "llama-2-7b", "--system",
                           "kv260-board", "--mapping", "dataflow", "--phase", "decode", "--seq-len", "128"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "card memory" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_u280_decode_streams_from_hbm():
    m, s = _mapped("decode", 128, "dataflow", "u280-host", "llama-2-7b", "w4a16")
    r = simulate(m, s)
    hbm = s.device("fpga").main_memory.bandwidth_gbps * 1e9
    assert m.graph.meta["weight_storage_bytes"] / hbm < r.latency_s < 0.05
