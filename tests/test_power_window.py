"""hw_models/power_window.py: the cap held over windows of the op sequence (a proposal for sim/predict.py)."""
import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel
from hw_models.power import PowerModel
from hw_models.power_window import windowed_step
from sim.predict import predict
from workloads import trace


def test_no_window_is_one_step_clock():
    d = load_device("h100")
    g = trace("llama-3.1-8b", "decode", 8, 512)
    pm = PowerModel(d, {"cap_window_s": 0.0})
    w = windowed_step(g, GPUModel(d), pm, 0.0)
    p = predict(g, d, power_params={"cap_window_s": 0.0})
    assert w.windows == 2 and w.time_s == pytest.approx(p.latency_s, rel=1e-6)


def test_gemm_dense_windows_are_capped_in_long_prefill():
    """llama-2-13b prefill 4x2048 (0.417 s measured, H100): windows of 3 ms hold the GEMM stretches at the cap,
    so the step is slower than with one clock for the whole step, and its clock lower."""
    d = load_device("h100")
    g = trace("llama-2-13b", "prefill", 4, 2048)
    pm = PowerModel(d)
    one = windowed_step(g, GPUModel(d), pm, 10.0)
    win = windowed_step(g, GPUModel(d), pm, 0.003)
    assert win.windows >= 3 and win.time_s > one.time_s and win.clock_mhz < one.clock_mhz
    assert win.energy_j / win.time_s <= pm.cap + 1e-6
