"""Area and cost model (hw_models/area.py) against published die areas and LLMCompass's GA100 breakdown."""
import math

import pytest

from hw_models import load_device
from hw_models.area import (FLOORPLANS, PUBLISHED_DIE_MM2, chip_cost, die_area, die_cost, die_yield, dies_per_wafer,
                            energy_scale, floorplan, hourly_usd, logic_density, sram_mm2)


@pytest.mark.parametrize("preset", sorted(PUBLISHED_DIE_MM2))
def test_die_area_within_10_percent_of_the_published_figure(preset):
    published, _ = PUBLISHED_DIE_MM2[preset]
    area = die_area(FLOORPLANS[preset])["total"]
    assert area == pytest.approx(published, rel=0.10)


def test_ga100_matches_llmcompass_and_its_block_breakdown():
    parts = die_area(FLOORPLANS["a100-80gb"])
    assert parts["total"] == pytest.approx(826.76, rel=1e-3)          # LLMCompass's own estimate of GA100
    # LLMCompass ae/figure6 die_area.csv (annotated GA100 die shot), block by block within 25%
    shot = {"cores": 476.25, "on_chip_interconnect": 76.44, "global_buffer": 119.31, "memory_phy": 58,
            "memory_control": 31.77, "offchip_phy": 20.95}
    for block, mm2 in shot.items():
        assert parts[block] == pytest.approx(mm2, rel=0.25), block


def test_wafer_yield_and_cost_arithmetic():
    assert dies_per_wafer(826) == pytest.approx(math.pi * 150 ** 2 / 826 - math.pi * 300 / math.sqrt(2 * 826))
    assert die_yield(826, 7) == pytest.approx((1 + 826 * 1.5e-3 / 3) ** -3)
    small, big = die_cost(100, 7), die_cost(800, 7)
    assert big > 8 * small                                  # yield makes cost superlinear in area
    assert die_cost(400, 5) > die_cost(400, 7)              # 5 nm wafers cost more


def test_node_scaling():
    assert logic_density(7) == 96.3 and logic_density(5) == 138.2
    assert logic_density(4) > logic_density(5) and logic_density(12) < logic_density(10)
    assert energy_scale(7, 7) == 1.0 and energy_scale(7, 5) < 1.0 < energy_scale(5, 7)
    assert sram_mm2(2 ** 20, 5) < sram_mm2(2 ** 20, 7)


def test_overrides_move_the_floorplan():
    h100 = chip_cost(load_device("h100"))
    half = chip_cost(load_device("h100+sm_count=66"))
    wide = chip_cost(load_device("h100+hbm.bandwidth=6.7TB/s"))
    dense = chip_cost(load_device("h100+node=3nm"))
    big_l2 = chip_cost(load_device("h100+l2=100MB"))
    assert half["blocks_mm2"]["cores"] == pytest.approx(h100["blocks_mm2"]["cores"] / 2, rel=0.01)
    assert wide["blocks_mm2"]["memory_phy"] == pytest.approx(2 * h100["blocks_mm2"]["memory_phy"])
    assert dense["area_mm2"] < h100["area_mm2"]
    assert big_l2["blocks_mm2"]["global_buffer"] > 1.9 * h100["blocks_mm2"]["global_buffer"]
    assert floorplan(load_device("tpu-v4+array=256x256")).macs_per_core == 4 * FLOORPLANS["tpu-v4"].macs_per_core
    assert chip_cost(load_device("l4")) == {}                # no floorplan for it: not covered


def test_hourly_price_bases():
    assert hourly_usd(load_device("h100")) == (11.06, "cloud")
    price, basis = hourly_usd(load_device("h100+sm_count=66"))
    assert basis == "cloud-scaled" and price < 11.06
    price, basis = hourly_usd(load_device("neupims-npu"))
    assert basis == "manufacturing" and 0 < price < 1
    assert hourly_usd(load_device("rtx-4090"))[1] == "purchase"
