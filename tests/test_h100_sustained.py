"""benchmarks/gpu/h100_acceptance.py (c): the H100's sustained eager steps (data/h100-2026-12-06-lease8-kernels) and
their split into time at the measured clock and the clock. Checks the split's bookkeeping, not the model's accuracy."""
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

import h100_acceptance as acc  # noqa: E402
from hw_models import load_device  # noqa: E402


def test_kernel_class():
    assert acc.kernel_class("nvjet_sm90_tst_192x192_64x4_2x1_v_bz_coopB_TNN") == "gemm"
    assert acc.kernel_class("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7") == "attention"
    assert acc.kernel_class("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float>") == "eager"
    assert acc.kernel_class("Memset (Device)") == "eager"


def test_sustained_rows_split():
    rows = acc.sustained_rows(load_device("h100"), folder=acc.SUSTAINED_ZERO_IDS)   # lease8: every step profiled
    assert len(rows) == 8 and {r["model"] for r in rows} >= {"phi-3-mini", "llama-3.1-8b"}
    for r in rows:
        measured = sum(m for m, _, _ in r["parts"].values())
        # the profiled kernels of one eager step add up to about the sustained (graph-replayed) step
        assert abs(measured / 1e6 / r["t"] - 1) < 0.04, r
        # hwsim's parts as predicted add up to its step (no host time in the eager stack's step)
        assert math.isclose(sum(p for _, _, p in r["parts"].values()) / 1e6, r["pred_t"], rel_tol=1e-6)
        assert math.isclose(sum(a for _, a, _ in r["parts"].values()) / 1e6, r["at_clock_s"], rel_tol=1e-6)
    # where both hwsim and NVML run at the top clock (memory-bound decode), the step at the measured clock is hwsim's
    dec = next(r for r in rows if r["phase"] == "decode")
    assert dec["mhz"] == dec["pred_mhz"] == 1980
    assert math.isclose(dec["at_clock_s"], dec["pred_t"], rel_tol=1e-9)
    assert not next(r for r in rows if r["model"] == "phi-3-mini")["calibration"]
