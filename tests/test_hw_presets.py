"""Every hardware preset loads, every number has a source, derived peaks match the datasheet."""
import pytest
import yaml

from hw_models import load_device, preset_ids
from hw_models.presets import PRESET_DIR
from workloads.errors import HwsimError


@pytest.mark.parametrize("preset", preset_ids())
def test_preset_loads_with_sources(preset):
    device = load_device(preset)
    assert device.engines and device.memory
    assert device.provenance, "no sources recorded"
    assert all(src.strip() for src in device.provenance.values())


@pytest.mark.parametrize("preset", preset_ids())
def test_derived_peaks_match_datasheet(preset):
    device = load_device(preset)
    checked = 0
    for name, engine in device.engines.items():
        for dtype, tops in engine.datasheet_tops.items():
            derived = engine.peak(dtype) / 1e12
            assert derived == pytest.approx(tops, rel=0.05), f"{name} {dtype}: derived {derived:.1f} vs datasheet {tops}"
            checked += 1
    assert all(e.peak(dt) > 0 for e in device.engines.values() for dt in e.ops_per_unit_per_clock)
    if not checked:
        pytest.skip(f"{preset}: the vendor publishes no peak rate to check against (design- or core-count-dependent)")


def test_aliases_resolve():
    assert load_device("h100").id == "h100-sxm-80gb"
    assert load_device("H100").id == "h100-sxm-80gb"


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d["memory"]["hbm"].pop("bandwidth_gbps"), "bandwidth_gbps"),
    (lambda d: d["engines"]["tensor"].update(units=-3), "units"),
    (lambda d: d["engines"]["tensor"].update(untis=3), "untis"),
    (lambda d: d["power"].update(tdp_w=700), "has no source"),
    (lambda d: d.update({"class": "quantum"}), "class"),
])
def test_bad_preset_is_one_clear_error(tmp_path, mutate, words):
    raw = yaml.safe_load((PRESET_DIR / "h100-sxm-80gb.yaml").read_text())
    raw["power"] = {"tdp_w": {"value": 700, "source": "ds"}, "idle_w": {"value": 100, "source": "ds"}}
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(HwsimError) as err:
        load_device(str(path))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_unknown_and_malformed(tmp_path):
    with pytest.raises(HwsimError, match="unknown hardware"):
        load_device("h1000")
    path = tmp_path / "x.yaml"
    path.write_text("id: [unclosed")
    with pytest.raises(HwsimError, match="not valid YAML"):
        load_device(str(path))
