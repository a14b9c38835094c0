"""fit_kernel_power.py reads each kernel class's energy per byte after the static power."""
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"))

import fit_kernel_power  # noqa: E402


def test_energy_per_byte_after_static():
    df = pd.DataFrame([
        dict(case="idle", access="", bytes=0, step_seconds=0.05, avg_power_w=120.0, energy_j_per_step=6.0),
        # 1 GB in 1 ms at 240 W: 0.24 J, of which 0.1 J static at 100 W -> 140 pJ/B
        dict(case="copy_vec", access="vec", bytes=1e9, step_seconds=1e-3, avg_power_w=240.0, energy_j_per_step=0.24),
        # 1 GB in 5 ms at 156 W: 0.78 J, 0.5 J static -> 280 pJ/B, twice the copy's
        dict(case="cat_gapped", access="cat", bytes=1e9, step_seconds=5e-3, avg_power_w=156.0,
             energy_j_per_step=0.78),
    ])
    k = fit_kernel_power.energy_per_byte(df, static_w=100.0, e_byte_pj=140.0).set_index("case")
    assert "idle" not in k.index
    assert k.loc["copy_vec", "pj_per_byte"] == pytest.approx(140.0)
    assert k.loc["cat_gapped", "rel"] == pytest.approx(2.0)
    assert k.loc["copy_vec", "power_err"] == pytest.approx(0.0, abs=1e-9)
    # the preset's one e_byte gives the slow cat 128 W of its 156 W
    assert k.loc["cat_gapped", "model_w"] == pytest.approx(128.0)
