"""The one-case path's plain-Python figures (sim/linear_one.py, hw_models/power_one.py, the one-row shortcuts of
hw_models/gpu_table.py) against the row path on two identical rows (numpy throughout: power_solve._solve_sequence,
stretch_rows_g, GPUTable's column formulas), on random steps, capped prefills under the H100's 700 W cap and
sliding window (cap_sequence, gamma 0.5) included."""
import numpy as np
from hypothesis import given, settings, strategies as st

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


def _check(model, hardware, phase, profile, batch, seq, ctx):
    """The one-case figures equal the two-row figures to 1e-9; returns whether the step is capped (None: not a
    one-case step)."""
    compiled = _warm(model, hardware, phase, profile, {})[2]
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
