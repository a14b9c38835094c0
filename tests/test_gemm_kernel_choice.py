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
