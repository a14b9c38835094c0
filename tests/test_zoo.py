"""Every preset loads, is a real HF config with a source, and has the published parameter count."""
import csv
import json
import math

import pytest

from workloads.capture import build_module, load_spec
from workloads.zoo import ZOO_DIR, preset_names

PUBLISHED = {r["name"]: r for r in csv.DictReader(open(ZOO_DIR / "published_params.csv"))}
REQUIRED = ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-8b", "llama-3.1-70b",
            "llama-3.1-405b", "mistral-7b", "mixtral-8x7b", "mixtral-8x22b", "qwen1.5-1.8b", "qwen2.5-7b",
            "qwen2.5-72b", "qwen3-14b", "phi-2", "phi-3-mini", "gemma-2b", "gemma-2-9b", "opt-6.7b", "opt-13b",
            "opt-66b", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-7b", "gpt3-13b", "gpt3-30b", "gpt3-175b",
            "bloom-176b", "gpt-neox-20b", "codellama-7b", "codellama-13b", "codellama-34b", "bitnet-b1.58-0.7b",
            "bitnet-b1.58-2b", "deepseek-v2-lite"]


def tolerance(row) -> float:
    """1% for exact published counts; for nominal sizes ("13B") the rounding of the figure, if wider."""
    if row["basis"] == "exact":
        return 0.01
    value = float(row["params"])
    digits = len(str(int(value)).rstrip("0"))          # significant digits as published
    half_unit = 0.5 * 10 ** (len(str(int(value))) - digits)
    return max(0.01, half_unit / value)


def test_zoo_has_the_required_presets():
    assert len(preset_names()) >= 30
    missing = [m for m in REQUIRED if m not in preset_names()]
    assert not missing, missing


@pytest.mark.parametrize("name", preset_names())
def test_preset_is_sourced_hf_config(name):
    config = json.loads((ZOO_DIR / f"{name}.json").read_text())
    assert config["model_type"]
    assert config["_hwsim_source"].strip()
    assert name in PUBLISHED, f"{name} has no published parameter count in published_params.csv"


@pytest.mark.parametrize("name", preset_names())
def test_parameter_count_matches_published(name):
    row = PUBLISHED[name]
    ours = build_module(load_spec(name)).parameter_count()
    published = float(row["params"])
    assert math.isclose(ours, published, rel_tol=tolerance(row)), \
        f"{name}: {ours:,} vs published {published:,.0f} ({row['basis']}: {row['source']})"


def test_nominal_tolerance_is_the_rounding():
    assert tolerance({"basis": "nominal", "params": "13000000000"}) == pytest.approx(0.5 / 13)
    assert tolerance({"basis": "nominal", "params": "32500000000"}) == 0.01
    assert tolerance({"basis": "exact", "params": "7"}) == 0.01
