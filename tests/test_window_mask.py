"""An eager sliding window narrower than the keys reaches SDPA as an explicit mask (workloads/modules/attention_op.py,
as HF's SDPA path builds it), so the masked kernel's rate (attn_mask_rel, hw_models/gpu.py mask_factor) applies:
GPUModel.window_masked on the full path, GPUTable.window_rel on the table and one-case paths."""
import pandas as pd
import pytest

import sim.api as api
from hw_models import load_device
from hw_models.gpu import GPUModel, mask_factor
from sim.batch_predict import predict_cases
from sim.cases import read_cases
from tests.test_attn_tile import _op


def _windowed(s, window, mask=None):
    op = _op(4, 32, 32, s, d=96)
    op.attrs.update(window=window)
    if mask is not None:
        op.attrs["mask"] = mask
    return op


def test_an_eager_window_narrower_than_the_keys_is_priced_masked():
    h100 = load_device("h100")
    eager, fused = GPUModel(h100), GPUModel(h100, profile="fused")
    rel = mask_factor(True, 96, eager.p)
    assert rel == pytest.approx(0.71)
    banded, wide = _windowed(2048, 2047), _windowed(2048, 4096)
    assert eager.window_masked(banded.attrs) and not eager.window_masked(wide.attrs)
    assert not fused.window_masked(banded.attrs)                    # a window-aware fused kernel: no mask
    # the masked kernel computes every block at 0.71 of the unmasked rate
    no_mask = GPUModel(h100, params={"attn_mask_rel": 1.0})
    assert eager.cost(banded, 1980).compute_s == pytest.approx(no_mask.cost(banded, 1980).compute_s / rel, rel=1e-12)
    assert eager.cost(wide, 1980).compute_s == no_mask.cost(wide, 1980).compute_s
    # a traced SDPA call (HF) records whether it got a mask: that decides, not the window
    assert not eager.window_masked(_windowed(2048, 2047, mask=False).attrs)
    assert eager.cost(_windowed(2048, 2047, mask=False), 1980).compute_s == no_mask.cost(banded, 1980).compute_s


def test_one_case_table_and_full_paths_agree_on_windowed_prefill():
    """phi-3-mini's window of 2,047 is reached at 2,048 positions: 1,024 unmasked, 2,048 and 4,096 masked."""
    for seq in (1024, 2048, 4096):
        fast = api.predict("phi-3-mini", "h100", "prefill", 4, seq)
        full = api.predict("phi-3-mini", "h100", "prefill", 4, seq, detail=True)
        assert fast.latency_s == pytest.approx(full.latency_s, rel=1e-9)
        assert fast.energy_j == pytest.approx(full.energy_j, rel=1e-9)
def test_a_cases_table_prices_each_row_masked_or_not(tmp_path):
    pd.DataFrame({"model": "phi-3-mini", "hardware": "h100", "phase": "prefill", "batch": 4,
                  "seq_len": [1024, 2048, 4096]}).to_csv(tmp_path / "cases.csv", index=False)
    out = predict_cases(read_cases(tmp_path / "cases.csv"))
    assert list(out["status"]) == ["ok"] * 3
    for seq, lat in zip((1024, 2048, 4096), out["latency_s"]):
        assert lat == pytest.approx(api.predict("phi-3-mini", "h100", "prefill", 4, seq, detail=True).latency_s,
                                    rel=1e-9)
    # the masked rows are slower than the window-free kernel would make them
    from sim.predict import predict
    from workloads import trace
    g = trace("phi-3-mini", "prefill", 4, 2048)
    off = predict(g, load_device("h100"), params={"attn_mask_rel": 1.0})
    assert out["latency_s"][1] > 1.03 * off.latency_s
