"""The one-case path's plain-Python figures (sim/linear_one.py, hw_models/power_one.py, the one-row shortcuts of
hw_models/gpu_table.py) against the row path on two identical rows (numpy throughout: power_solve._solve_sequence,
power_solve.solve, stretch_rows(_g), GPUTable's column formulas), on random steps, capped prefills under the
H100's 700 W cap and sliding window (cap_sequence, gamma 0.5) and the H200's window without it (gammas 0, 0.5, 1;
and no window at all) included."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw_models import load_device
from sim.api import _warm
from sim.fastpath import Unsupported
from sim.linear_cost import figures
from workloads.errors import HwsimError
from workloads.linear_step import mono_row, step_code

FIELDS = ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "power_capped", "bound", "fits",
          "memory_needed_bytes", "capacity", "flops", "bytes")


def _sizes(phase, batch, seq, ctx):
    if phase == "prefill":
        return batch, seq, 0
    if phase == "decode":
        return batch, 1, seq
    return batch, seq, ctx


def _two_rows(compiled, b, n, c):
    """The step's figures from `linear_cost.figures` on two copies of its row (the numpy row solver), without any
    of the one-case shortcuts: Q and the energy columns, attention's unexecuted FLOPs, GPUTable.costs."""
    code, classes = step_code(compiled.tpl, b, n)
    step, table, Qx = compiled._block(code, (b, n, c))
    nq = step.Q.shape[1]
    qx = np.array(mono_row(step.names, b, n, c, classes), dtype=float) @ Qx
    q = np.stack([qx, qx])
    if step.n_attn and (n > 1 or table.windowed):
        q[:, nq:] -= table.attention_unexecuted(q[:, :nq]) * compiled.pw.e_f
    counts = None
    runs = step.repeat
    if classes is not None:
        counts = tuple(np.array([k, k], dtype=float) for k in (classes[0][1], classes[1][1]))
        runs = step.runs(counts)
    key, table.gemm_key = table.gemm_key, None          # the one-row GEMM memo (fastpath) keys on the first row
    try:
        f = figures(step, table, compiled.pw, q[:, :nq], runs, compiled.capacity, E=q[:, nq:], counts=counts)
    finally:
        table.gemm_key = key
    assert f["latency_s"][0] == f["latency_s"][1]
    return {"latency_s": f["latency_s"][0], "energy_j": f["energy_j"][0], "avg_power_w": f["avg_power_w"][0],
            "peak_power_w": f["peak_power_w"][0], "clock_mhz": f["clock_mhz"][0],
            "power_capped": bool(f["power_capped"][0]), "bound": ("compute", "memory", "latency")[f["bound"][0]],
            "fits": bool(f["fits"][0]), "memory_needed_bytes": f["memory_needed_bytes"][0],
            "capacity": compiled.capacity, "flops": f["flops"][0], "bytes": f["bytes"][0]}


def _check(model, hardware, phase, profile, batch, seq, ctx, options=None):
    """The one-case figures equal the two-row figures to 1e-9; returns whether the step is capped (None: not a
    one-case step)."""
    compiled = _warm(model, hardware, phase, profile, options or {})[2]
    if compiled is None:
        return None
    b, n, c = _sizes(phase, batch, seq, 0 if phase != "chunked_prefill" else ctx)
    try:
        fast = compiled._figures(batch, seq, c if phase == "chunked_prefill" else 0)
    except (Unsupported, HwsimError):
        return None
    ref = _two_rows(compiled, b, n, c)
    assert all(type(x) in (float, bool, str) for x in fast), fast
    for name, a in zip(FIELDS, fast):
        r = ref[name]
        if isinstance(a, (bool, str)):
            assert a == r, (name, fast, ref)
        else:
            assert abs(a - r) <= 1e-9 * max(abs(a), abs(r)), (name, a, r)
    return fast[5]


def test_capped_prefills_of_every_prompt_length_band():
    """Prefills of one sequence on the H100 (eager and fused), most over the 700 W cap: the plain-Python capped
    solve equals the numpy row solver's, with and without the windows binding."""
    capped = 0
    for profile in ("eager", "fused"):
        for n in list(range(200, 4000, 37)) + list(range(4000, 16000, 523)):
            capped += bool(_check("llama-3.1-8b", "h100", "prefill", profile, 1, n, 0))
    assert capped > 100


@settings(max_examples=120, deadline=None)
@given(model=st.sampled_from(["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "mixtral-8x7b", "qwen1.5-moe-a2.7b",
                              "llama-3.1-70b"]),
       hardware=st.sampled_from(["h100", "h100", "h200", "a100"]),
       phase=st.sampled_from(["prefill", "prefill", "decode", "chunked_prefill"]),
       profile=st.sampled_from(["eager", "fused", "vllm", "sglang"]), batch=st.integers(1, 64),
       seq=st.integers(1, 12000), ctx=st.integers(0, 4000))
def test_one_case_figures_equal_the_row_solver(model, hardware, phase, profile, batch, seq, ctx):
    _check(model, hardware, phase, profile, batch, seq, ctx)


@settings(max_examples=80, deadline=None)
@given(batch=st.integers(1, 8), seq=st.integers(300, 20000), profile=st.sampled_from(["eager", "fused", "vllm"]),
       model=st.sampled_from(["llama-3.1-8b", "qwen2.5-7b", "mixtral-8x7b"]))
def test_capped_prefills_equal_the_row_solver(batch, seq, profile, model):
    """Prefills on the H100, where the cap binds most (small batches of a few hundred tokens and up)."""
    _check(model, "h100", "prefill", profile, batch, seq, 0)


_DEVICES = {}


def _h200(gamma, window=True):
    """The H200 preset (a cap window without cap_sequence) at energy per FLOP scaling as (f / f_max)^gamma; one
    object per variant, so the compiled steps are kept (api._compiled keys on it)."""
    key = (gamma, window)
    if key not in _DEVICES:
        dev = load_device("h200").model_copy(deep=True)
        dev.calibration.params["gamma"] = gamma
        if not window:
            dev.calibration.params["cap_window_s"] = 0.0
        _DEVICES[key] = dev
    return _DEVICES[key]


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_h200_capped_prefills_of_every_prompt_length_band(gamma):
    """Prefills on the H200 (700 W cap, a 3 ms window without cap_sequence: ops within it share one stretch,
    longer ones each their own): the plain-Python solve (power_one.solve_window_lists) equals power_solve.solve."""
    capped = 0
    dev = _h200(gamma)
    for profile in ("eager", "fused"):
        for n in list(range(200, 4000, 53)) + list(range(4000, 30000, 997)):
            capped += bool(_check("llama-3.1-8b", dev, "prefill", profile, 1, n, 0))
    for n in range(500, 16000, 1499):                   # ops longer than the window (70B, wide MoE experts)
        for model in ("llama-3.1-70b", "mixtral-8x7b"):
            capped += bool(_check(model, dev, "prefill", "fused", 2, n, 0))
    assert capped > 80


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_capped_prefills_without_a_cap_window(gamma):
    """A device with no cap window: the whole step at one stretch, in plain Python too."""
    capped = 0
    for n in range(300, 12000, 613):
        capped += bool(_check("llama-3.1-8b", _h200(gamma, window=False), "prefill", "eager", 2, n, 0))
    assert capped > 10


@pytest.mark.parametrize("options", [{"quant": "fp8"}, {"quant": "w8a8"}, {}, {"dtype": "fp32"}])
@pytest.mark.parametrize("hardware", ["h100", "h200", "a100"])
def test_steps_of_every_gemm_dtype(options, hardware):
    """8-bit and FFMA fp32 GEMMs (their output store after the K loop, gpu_table.EPILOGUE_DTYPES) through the
    one-step GEMM branch, capped or not."""
    for phase, n in (("prefill", 300), ("prefill", 1200), ("prefill", 3000), ("prefill", 7000), ("decode", 900)):
        for batch in (1, 4):
            _check("llama-3.1-8b", hardware, phase, "fused", batch, n, 0, options)
