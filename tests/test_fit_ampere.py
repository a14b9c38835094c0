"""benchmarks/gpu/fit_ampere_on_hopper.py: the share of cuBLAS's rate an mma.sync (Ampere) kernel keeps on Hopper is
read per shape and M from ampere_gemm.csv, and the compute- and weight-bound medians come from their own rows."""
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

import fit_ampere_on_hopper as F  # noqa: E402


def _rows():
    rows = []
    for m, cublas, v2, v3 in ((32, 10.0, 12.5, 11.0), (4096, 100.0, 160.0, 110.0), (16384, 400.0, 625.0, 420.0)):
        for source, t in (("cublas", cublas), ("mma_v2", v2), ("mma_v3", v3)):
            rows.append(dict(shape="s", m=m, n=4096, k=4096, source=source, tile="", seconds=t * 1e-6,
                             tflops=0.0, sm_mhz=1980, mma="", rel_err=""))
    rows.append(dict(rows[-2], seconds=700e-6))      # a slower tile of the same source: the least time counts
    return pd.DataFrame(rows)


def test_ratios_keep_the_fastest_of_each_source_and_divide_by_mma_sync():
    t = F.ratios(_rows()).set_index("m")
    assert t.loc[32, "keep_vs_cublas"] == pytest.approx(0.8)
    assert t.loc[16384, "keep_vs_cublas"] == pytest.approx(0.64)
    assert t.loc[4096, "keep_vs_wgmma"] == pytest.approx(110 / 160)


def test_factors_split_compute_and_weight_bound_rows(tmp_path, capsys):
    f = F.factors(F.ratios(_rows()))
    assert f["compute"][0] == pytest.approx((0.625 + 0.64) / 2) and f["compute"][3] == 2
    assert f["stream"][0] == pytest.approx(0.8) and f["stream"][3] == 1
    _rows().to_csv(tmp_path / "ampere_gemm.csv", index=False)
    assert F.main([str(tmp_path)]) == 0
    assert "compute: mma.sync keeps 0.632 of cuBLAS" in capsys.readouterr().out


def test_mixtral_whatif_scales_hopper_only_and_restores_the_model(capsys):
    """benchmarks/mixtral_sm80_whatif.py: a share below 1 slows the Hopper first token at 2048 tokens; the grouped GEMM
    pricing is put back afterwards; a share outside (0, 1] is one line and exit 2."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import mixtral_sm80_whatif as W
    import hw_models.moe as moe
    before = moe.grouped_parts
    assert W.main(["--shares", "1:1,0.5:1"]) == 0
    assert moe.grouped_parts is before
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("compute")]
    first = [float(ln.rsplit(" ", 1)[1].rstrip("%")) for ln in lines]
    assert len(first) == 2 and first[1] > first[0]          # slower expert GEMMs: a longer first token
    assert W.main(["--shares", "2:1"]) == 2
    assert "COMPUTE:BANDWIDTH" in capsys.readouterr().err
