"""Linear steps (workloads/linear_step.py) costed as columns (hw_models/gpu_table.py, hw_models/power_solve.py,
sim/linear_cost.py): the one-case fast path of api.predict and the sweep's path across devices give the full
path's figures (trace/template graph, transforms, per-op costs, operating point) to 1e-9, dense and MoE."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw_models import load_device
from hw_models.power import PowerModel, one_step
from hw_models.power_solve import power_arrays, solve
from sim import api
from sim.linear_sweep import step_points
from workloads.errors import HwsimError

NUMBERS = ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "memory_needed_bytes", "flops",
           "bytes")


def _close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _same(fast, full):
    for f in NUMBERS:
        assert _close(getattr(fast, f), getattr(full, f)), (f, getattr(fast, f), getattr(full, f))
    assert (fast.bound, fast.fits, fast.power_capped) == (full.bound, full.fits, full.power_capped)


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(["llama-3.1-8b", "qwen2.5-7b", "mixtral-8x7b", "qwen1.5-moe-a2.7b"]),
       hardware=st.sampled_from(["h100", "h200", "a100"]),
       phase=st.sampled_from(["prefill", "decode", "chunked_prefill"]), batch=st.integers(1, 64),
       seq=st.integers(1, 6000), ctx=st.integers(0, 3000),
       profile=st.sampled_from(["eager", "fused", "vllm", "sglang", "trtllm", "trtllm-0.6", "triton-splitk"]),
       quant=st.sampled_from(["none", "fp8", "w4a16", "w8a16"]), kv_dtype=st.sampled_from([None, "fp8"]))
def test_one_case_path_equals_the_full_path(model, hardware, phase, batch, seq, ctx, profile, quant, kv_dtype):
    """Every stack, weight format and KV-cache type (an FP8 KV cache under a paged stack once took another
    decode rate in the full path than in the fast path)."""
    ctx = ctx if phase == "chunked_prefill" else 0
    kw = dict(profile=profile, quant=quant, **({"kv_dtype": kv_dtype} if kv_dtype else {}))
    try:
        full = api.predict(model, hardware, phase, batch, seq, ctx, detail=True, **kw)
    except HwsimError:                     # e.g. fp8 on an A100: the fast path says the same
        with pytest.raises(HwsimError):
            api.predict(model, hardware, phase, batch, seq, ctx, **kw)
        return
    _same(api.predict(model, hardware, phase, batch, seq, ctx, **kw), full)


def test_moe_steps_take_the_fast_path():
    from sim.api import _warm
    _, _, compiled = _warm("mixtral-8x7b", "h100", "decode", "eager", {})
    assert compiled is not None
    before = len(compiled.blocks)
    compiled(3, 777, 0)                       # a step of a block not compiled yet: compiled, not traced
    assert len(compiled.blocks) >= max(before, 1) and all(v is not None for v in compiled.blocks.values())


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mixtral-8x7b"])
@pytest.mark.parametrize("phase", ["prefill", "decode", "chunked_prefill"])
def test_sweep_path_across_devices_equals_the_full_path(model, phase):
    """Points on several devices (overrides stacked into one model) costed together, each checked against the
    full path on its own device, capped steps of a device whose energy per op depends on the clock (gamma != 0:
    the H200's fit) included."""
    texts = ["h100", "h100+hbm.bandwidth=6.7TB/s+sm_count=66", "h200", "h100+clock=1.4GHz"]
    devices = [load_device(t) for t in texts]
    rng = np.random.default_rng(7)
    n = 24
    b, s = rng.integers(1, 48, n), rng.integers(1, 5000, n)
    c = rng.integers(0, 2000, n) if phase == "chunked_prefill" else np.zeros(n, dtype=int)
    index = rng.integers(0, len(texts), n)
    bb, nn, cc = (b, np.ones(n, dtype=int), s) if phase == "decode" else (b, s, c)
    # vllm: a grouped MoE layer (hw_models/moe.py group_experts; GPUTable prices it from the class counts)
    for profile, quant in (("eager", "none"), ("fused", "fp8")) + ((("vllm", "none"),) if model == "mixtral-8x7b"
                                                                   else ()):
        out, done = step_points(model, phase, bb, nn, cc, devices, index, "bf16", quant, "", profile)
        # a device with clock-dependent energy per op (gamma != 0, the H200's fit) is costed here capped or not
        gamma = np.array([PowerModel(d).p["gamma"] for d in devices])[index]
        fulls = {i: api.predict(model, devices[index[i]], phase, int(b[i]), int(s[i]), int(c[i]), profile=profile,
                                quant=quant, detail=True) for i in range(n)}
        assert done.mean() > 0.8
        if phase == "prefill":
            assert any(gamma[i] != 0 and fulls[i].power_capped and done[i] for i in range(n))
        for i in np.flatnonzero(done):
            full = fulls[i]
            for f in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz"):
                assert _close(out[f][i], getattr(full, f)), (f, i)
            assert out["bound"][i] == full.bound and bool(out["fits"][i]) == full.fits


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(1e-7, 1e-2), st.floats(1e-7, 1e-2), st.floats(0, 1e-5), st.integers(0, 80),
                          st.floats(1e6, 1e13), st.floats(1e3, 1e10)), min_size=1, max_size=30),
       st.sampled_from(["h100", "h200", "a100", "l4"]))
def test_closed_form_rows_equal_the_one_step_solution(ops, hardware):
    """The operating point of many rows (power_solve.solve) equals power.one_step's per row, capped or not,
    with ops longer than the cap's window; a row of ops with 0 runs (an empty MoE class) changes nothing. With
    clock-dependent energy (the H100's gamma 0.5 under cap_sequence, the H200's 1) it equals the clock bisection's
    (power._sequence_bisected, power._bisected) to its 2^-30."""
    from hw_models.power import _bisected, _sequence_bisected
    power = PowerModel(load_device(hardware))
    c, m, o, r, f, b = (np.array(x, dtype=float) for x in zip(*ops))
    pw = power_arrays([power])
    EF = f * pw.e_f
    E = EF + b * pw.e_b
    rows = [1.0, 3.0]                               # the same ops at two scales of compute
    C = np.stack([c * k for k in rows])
    x, times, energies, latency, energy, clock, capped = solve(pw, C, np.stack([m, m]), o, np.stack([r, r]),
                                                             np.stack([E, E]), EF=np.stack([EF, EF]))
    gamma = power.p["gamma"]
    for j, k in enumerate(rows):
        keep = r > 0
        if not keep.any():
            continue
        if gamma == 0:
            ref = one_step(power, list(c[keep] * k), list(m[keep]), list(o[keep]), list(r[keep]), list(f[keep]),
                           list(b[keep]))
            assert _close(latency[j], ref[3]) and _close(energy[j], ref[4]) and _close(clock[j], ref[5])
            assert bool(capped[j]) == ref[6]
        else:
            col = lambda v: np.asarray(v, dtype=float)[keep][:, None]
            if power.p.get("cap_sequence"):          # the H100: windows sliding along the ops
                ref = _sequence_bisected(power, col(c * k), col(m), col(o), col(r), col(f), col(b), None)
            else:
                ref = _bisected(power, col(c * k), col(m), col(o), col(r), col(f), col(b))
            assert _close(latency[j], ref.latency[0], 1e-7) and _close(energy[j], ref.energy[0], 1e-7)
            assert _close(clock[j], ref.clock[0], 1e-7) and bool(capped[j]) == bool(ref.capped[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.just(0.0), st.floats(1e-9, 1e-2)), st.floats(1e-7, 1e-2), st.floats(0, 1e-5),
                          st.integers(1, 80), st.floats(1e-6, 1.0), st.floats(1.0, 4.0)), min_size=1, max_size=20))
def test_one_part_stretch_is_the_sorted_solution(rows):
    """stretch_rows' shortcut for rows of one part (ops longer than the cap's window) gives the sorted
    break-point solution's numbers exactly (a second part that takes no time changes nothing there)."""
    from hw_models.power_solve import stretch_rows
    c, m, o, r, target, x_max = (np.array(x, dtype=float) for x in zip(*rows))
    one = stretch_rows(c[:, None], m[:, None], o[:, None], r[:, None], target, x_max)
    zero = np.zeros_like(c)
    two = stretch_rows(np.stack([c, zero], 1), np.stack([m, zero], 1), np.stack([o, zero], 1),
                       np.stack([r, zero], 1), target, x_max)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mixtral-8x7b"])
def test_devices_with_many_points_one_by_one_equal_stacked(model, monkeypatch):
    """Devices with many points each are costed one by one (cached scalar tables), fewer stacked; either way
    the same figures (to rounding)."""
    import sim.linear_sweep as ls
    devices = [load_device(t) for t in ("h100", "h100+hbm.bandwidth=6.7TB/s+sm_count=66", "h100+clock=1.4GHz")]
    rng = np.random.default_rng(3)
    n = 3 * ls._OWN_TABLE
    b, s = rng.integers(1, 200, n), rng.integers(1, 9000, n)
    index = np.repeat(np.arange(3), ls._OWN_TABLE)
    for phase in ("decode", "prefill"):
        bb, nn, cc = (b, np.ones(n, dtype=int), s) if phase == "decode" else (b, s, np.zeros(n, dtype=int))
        own, done = step_points(model, phase, bb, nn, cc, devices, index, "bf16", "w4a16", "", "eager")
        monkeypatch.setattr(ls, "_OWN_TABLE", 10 ** 9)
        stacked, done2 = step_points(model, phase, bb, nn, cc, devices, index, "bf16", "w4a16", "", "eager")
        monkeypatch.undo()
        assert done.mean() > 0.9 and np.array_equal(done, done2)
        for f in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz"):
            np.testing.assert_allclose(own[f][done], stacked[f][done], rtol=1e-12, atol=0)
        assert (own["bound"] == stacked["bound"]).all() and (own["fits"] == stacked["fits"]).all()


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(["llama-3.1-8b", "mixtral-8x7b", "qwen1.5-moe-a2.7b"]),
       hardware=st.sampled_from(["h100", "a100"]), phase=st.sampled_from(["prefill", "decode", "chunked_prefill"]),
       batch=st.integers(1, 64), seq=st.integers(1, 8000), ctx=st.integers(0, 3000),
       profile=st.sampled_from(["eager", "fused"]))
def test_scalar_one_step_path_equals_the_row_path(model, hardware, phase, batch, seq, ctx, profile):
    """CompiledStep's one-step path (linear_one.figures_lists via linear_cost.figures_one: plain lists, capped steps
    solved there too) gives the figures of linear_cost.figures on the same row (tests/test_one_case_speed.py
    compares capped steps against the row solver on two rows, which takes none of the one-step shortcuts)."""
    from sim.api import _warm
    from sim.fastpath import Unsupported
    compiled = _warm(model, hardware, phase, profile, {})[2]
    if compiled is None:
        return
    ctx = ctx if phase == "chunked_prefill" else 0
    try:
        compiled.scalar = True
        fast = compiled._figures(batch, seq, ctx)
        compiled.scalar = False
        rows = compiled._figures(batch, seq, ctx)
    except (Unsupported, HwsimError):
        return
    finally:
        compiled.scalar = True
    assert all(type(x) in (float, bool, str) for x in fast)
    for a, b in zip(fast, rows):
        assert a == b if isinstance(a, (bool, str)) else _close(a, b, 1e-12), (fast, rows)
