"""Hypothetical hardware: presets with overrides (hw_models/overrides.py)."""
import subprocess
import sys

import pytest

from hw_models import load_device
from hw_models.overrides import CARRY_RULE, derive, is_extrapolated, overrides_of, parse_value
from sim.predict import predict
from workloads.errors import HwsimError
from workloads.recipe import build_workload


def _same(a, b):
    sa, sb = a.summary(), b.summary()
    sa.pop("hardware"), sb.pop("hardware")
    assert sa == sb
    assert [r["time_s"] for r in a.ops] == [r["time_s"] for r in b.ops]


@pytest.mark.parametrize("base,noop,model,phase", [
    ("h100", "hbm.bandwidth=3.35TB/s+sm_count=132+clock=1980MHz+memory=80GiB+nvlink=900GB/s+tdp=700W+l2=50MB+node=5nm",
     "llama-3.1-8b", "prefill"),
    ("h100", "bandwidth=3350+clock=1.98GHz", "llama-3.1-8b", "decode"),
    ("tpu-v4", "array=128x128+arrays=8+clock=1050MHz", "llama-3.1-8b", "decode"),
    ("samsung-hbm-pim", "banks=256+channels=16", "gpt2", "decode"),
    ("u280", "dsps=9024+hbm.bandwidth=460GB/s", "llama-2-7b", "decode"),
])
def test_override_that_changes_nothing_reproduces_the_preset_exactly(base, noop, model, phase):
    graph = build_workload(model, phase, 4, 256)
    preset, same = load_device(base), load_device(f"{base}+{noop}")
    assert not is_extrapolated(same)
    assert same.engines == preset.engines and same.memory == preset.memory and same.power == preset.power
    assert same.calibration == preset.calibration
    _same(predict(graph, preset), predict(graph, same))


def test_doubling_hbm_bandwidth_halves_a_memory_bound_step():
    # decode over a 131k-token KV cache: KV streaming is ~99% of the step (fixed per-kernel costs the rest)
    graph = build_workload("llama-3.1-8b", "decode", 32, 131000)
    base = predict(graph, load_device("h100+memory=1TB+tdp=3000W"), "fused")
    fast = predict(graph, load_device("h100+memory=1TB+tdp=3000W+hbm.bandwidth=6.7TB/s"), "fused")
    assert base.bound == "memory" and not base.power_capped and not fast.power_capped
    assert fast.latency_s / base.latency_s == pytest.approx(0.5, rel=0.01)
    # at the H100's 700 W cap the doubled stream does not fit the power budget (136 pJ/B x 6.7 TB/s):
    # the clock drops to its floor and the step is slower than half
    capped = predict(graph, load_device("h100+memory=1TB+hbm.bandwidth=6.7TB/s"), "fused")
    assert capped.power_capped and capped.latency_s > fast.latency_s


def test_derived_peaks_are_recomputed():
    h100 = load_device("h100")
    half = load_device("h100+sm_count=66")
    assert half.peak("bf16") == pytest.approx(h100.peak("bf16") / 2)
    assert half.engines["vector"].units == 66 and half.engines["tensor"].datasheet_tops == {}
    slow = load_device("h100+clock=1.485GHz")       # 3/4 of the 1980 MHz top clock
    assert slow.engines["tensor"].clock_mhz == pytest.approx(1830 * 0.75)
    assert slow.power.extra["max_clock_mhz"] == 1485
    big = load_device("tpu-v4+array=256x256")
    assert big.peak("bf16") == pytest.approx(4 * load_device("tpu-v4").peak("bf16"))
    assert big.engines["mxu"].array_rows == 256
    pim = load_device("samsung-hbm-pim+banks=512")
    assert pim.engines["pim"].units == 512 and pim.main_memory.banks_per_channel == 32
    assert load_device("u280+dsps=4512").engines["dsp"].units == 4512
    assert load_device("h100+memory=192GB").main_memory.capacity_gb == 192
    assert load_device("h100+nvlink=1.8TB/s").links["nvlink"].bandwidth_gbps == 900
    assert load_device("tpu-v4+sram=64MB").calibration.params["buffer_mb"] == pytest.approx(64)


def test_calibration_carry_over_and_extrapolated_flag():
    h100 = load_device("h100")
    d = load_device("h100+sm_count=66+node=3nm+hbm.bandwidth=6.7TB/s")
    assert is_extrapolated(d)
    assert d.provenance["calibration_rule"] == CARRY_RULE
    assert overrides_of(d) == {"sm_count": "66", "node": "3nm", "hbm.bandwidth": "6.7TB/s"}
    p, q = h100.calibration.params, d.calibration.params
    for k in ("mm_eff", "bw_eff", "attn_eff", "kernel_floor_us", "e_byte_pj"):
        assert q[k] == p[k]                                      # carried over unchanged
    from hw_models.area import chip_cost
    ratio = chip_cost(d)["area_mm2"] / chip_cost(h100)["area_mm2"]
    assert q["static_w"] == pytest.approx(p["static_w"] * ratio)  # with the die area of the area model
    assert d.power.idle_w == pytest.approx(h100.power.idle_w * ratio)
    pim = load_device("samsung-hbm-pim+banks=512")              # not covered by the area model: compute units
    assert pim.power.idle_w == pytest.approx(2 * load_device("samsung-hbm-pim").power.idle_w)
    assert q["e_flop_pj"] < p["e_flop_pj"]                       # a denser node switches less capacitance
    assert derive("h100", {}).id == h100.id                      # no overrides: the preset itself


@pytest.mark.parametrize("text,needle", [
    ("h100+hbm.bandwidth=6.7GHz", "frequency unit"),
    ("h100+clock=fast", "not a number"),
    ("h100+warp_size=64", "unknown override"),
    ("h100+sm_count=0", "out of range"),
    ("h100+sm_count=66.5", "whole number"),
    ("h100+array=128x128", "no systolic array"),
    ("h100+dsps=100", "not an FPGA"),
    ("h100+banks=100", "not a PIM"),
    ("h100+hbm.bandwidth", "not KEY=VALUE"),
    ("h100+l3.capacity=1GB", "no memory level 'l3'"),
    ("h100+node=1nm", "out of range"),
    ("h100+memory=5PB", "out of range"),
    ("nosuch+clock=1GHz", "unknown hardware"),
    ("+clock=1GHz", "name a preset"),
    ("samsung-hbm-pim+banks=100", "multiple of the 16 channels"),
])
def test_bad_overrides_are_one_line_errors(text, needle):
    with pytest.raises(HwsimError) as err:
        load_device(text)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_units():
    assert parse_value("bw", "6.7TB/s", "bandwidth") == pytest.approx(6700)
    assert parse_value("bw", "1TiB/s", "bandwidth") == pytest.approx(1099.511627776)
    assert parse_value("m", "192GiB", "bytes") == pytest.approx(206.158430208)
    assert parse_value("c", "1.5GHz", "frequency") == 1500
    assert parse_value("c", 1500, "frequency") == 1500
    assert parse_value("array", "64x16", "count") == (64, 16)


def test_cli_takes_a_hypothetical_device_and_reports_bad_overrides_in_one_line():
    ok = subprocess.run([sys.executable, "-m", "sim.cli", "predict", "--model", "llama-3.1-8b", "--hardware",
                         "h100+hbm.bandwidth=6.7TB/s", "--phase", "decode", "--batch", "8", "--seq-len", "1024"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "with hbm.bandwidth=6.7TB/s" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "sim.cli", "predict", "--model", "llama-3.1-8b", "--hardware",
                          "h100+clock=1.5GB"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_hypothetical_systems():
    from hw_models.systems import load_system
    s = load_system("dgx-h100+nvlink=1.8TB/s+gpu.count=4+hbm.bandwidth=4.8TB/s")
    assert s.links["nvlink"].bandwidth_gbps == 900 and s.devices["gpu"].count == 4
    assert s.device("gpu").main_memory.bandwidth_gbps == 4800
    assert load_system("dgx-h100+nvlink.efficiency=0.5").links["nvlink"].efficiency == 0.5
    for bad, needle in [("dgx-h100+nvlink.speed=1", "bandwidth, latency_us or efficiency"),
                        ("dgx-h100+gpu.count=0", "out of range"), ("dgx-h100+clock=x", "not a number")]:
        with pytest.raises(HwsimError, match=needle):
            load_system(bad)


def test_hwsim_hardware_shows_named_and_hypothetical_devices(capsys):
    import json

    from sim.cli import main
    assert main(["hardware", "h100", "h100+sm_count=66", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["hardware"]
    assert [r["extrapolated"] for r in rows] == [False, True]
    assert rows[1]["bf16_tflops"] == pytest.approx(rows[0]["bf16_tflops"] / 2)
    assert rows[1]["area_mm2"] < rows[0]["area_mm2"] and rows[0]["price_basis"] == "cloud"
