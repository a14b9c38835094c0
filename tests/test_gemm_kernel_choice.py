"""benchmarks/gpu/gemm_kernel_choice.py (which cuBLAS kernel a GEMM shape gets, its speed per MHz sustained) checked on
the CPU with --smoke: the rows it writes and their columns; the numbers are not data."""
import csv
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"))


def test_smoke_writes_one_row_per_shape_with_its_kernel(tmp_path):
    import gemm_kernel_choice as gk
    assert gk.main(["--out", str(tmp_path), "--smoke", "--seconds", "0.05"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "gemm_kernels.csv")))
    assert [r["shape"] for r in rows] == [name for name, _, _ in gk.SHAPES[:2]]
    assert all(r["kernel"] and int(r["calls"]) >= 8 and float(r["seconds_per_call"]) > 0 for r in rows)
    assert json.load(open(tmp_path / "env.json"))["smoke_test_not_data"] is True
    # the real run covers phi-3-mini's and llama-3.1-8b's four projections at two token counts
    assert {name.split(".")[0] for name, _, _ in gk.SHAPES} == {"phi3", "llama8b"} and len(gk.SHAPES) * len(gk.MS) == 16


def test_check_on_the_lease18_rows_reads_kernel_speed_apart_from_the_clock():
    """The H100 run (lease18): hwsim's GEMM model at each row's measured clock, and under the cap. phi-3-mini's
    K = 3072 shapes are no slower per clock in isolation than llama-3.1-8b's (the in-step gap is the clock)."""
    import gemm_kernel_choice as gk
    folder = Path(__file__).resolve().parents[1] / "benchmarks/gpu/data/h100-2026-12-07-lease18-gemm-choice"
    t = gk.check(str(folder))
    assert len(t) == 16 and set(t.m) == {2048, 8192}
    assert t.at_clock_err.abs().mean() < 0.07 and t.at_clock_err.abs().max() < 0.11
    assert t.capped_err.abs().mean() < 0.09
    assert (t.hwsim_w <= 700.5).all() and (t.hwsim_mhz < 1500).all()       # every run is at the 700 W cap
    fam = t.assign(fam=t["shape"].str.split(".").str[0]).groupby("fam").at_clock_err.mean()
    assert abs(fam["phi3"] - fam["llama8b"]) < 0.03


def test_measuring_needs_out(capsys):
    import gemm_kernel_choice as gk
    with pytest.raises(SystemExit) as e:
        gk.main([])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
