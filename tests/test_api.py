"""The Python API (sim/api.py) and its one-case fast path (sim/fastpath.py)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw_models import load_device
from hw_models.power import PowerModel, operating_point
from sim import api
from workloads.errors import HwsimError, HwsimWarning

FIELDS = ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "flops", "bytes",
          "memory_needed_bytes")


def _same(fast, full):
    for f in FIELDS:
        assert getattr(fast, f) == pytest.approx(getattr(full, f), rel=1e-6), f
    assert (fast.bound, fast.fits, fast.power_capped) == (full.bound, full.fits, full.power_capped)


@settings(max_examples=25, deadline=None)
@given(model=st.sampled_from(["llama-3.1-8b", "qwen2.5-7b", "mistral-7b"]), hardware=st.sampled_from(["h100", "h200"]),
       phase=st.sampled_from(["prefill", "decode", "chunked_prefill"]), batch=st.integers(1, 64),
       seq=st.integers(1, 4096), ctx=st.integers(0, 2048), profile=st.sampled_from(["eager", "fused", "eager-launch"]),
       quant=st.sampled_from(["none", "fp8", "w4a16"]))
def test_fast_path_gives_the_full_paths_figures(model, hardware, phase, batch, seq, ctx, profile, quant):
    ctx = ctx if phase == "chunked_prefill" else 0
    fast = api.predict(model, hardware, phase, batch, seq, ctx, profile=profile, quant=quant)
    full = api.predict(model, hardware, phase, batch, seq, ctx, profile=profile, quant=quant, detail=True)
    _same(fast, full)


def test_fast_path_with_a_shared_prefix_and_sparsity():
    kw = dict(phase="decode", batch=16, seq_len=2048, prefix=1024, sparsity="2:4")
    _same(api.predict("llama-3.1-8b", "h100", **kw), api.predict("llama-3.1-8b", "h100", detail=True, **kw))


def test_models_without_templates_take_the_full_path():
    r = api.predict("mixtral-8x7b", "h200", phase="decode", batch=8, seq_len=512)
    assert r.latency_s > 0 and r.fits


def test_results_become_pandas_rows():
    rows = [api.predict("llama-3.1-8b", "h100", phase="decode", batch=b, seq_len=1024) for b in (1, 8, 64)]
    df = api.frame(rows)
    assert list(df["batch"]) == [1, 8, 64] and (df["latency_s"].diff().dropna() > 0).all()
    detail = api.predict("llama-3.1-8b", "h100", phase="decode", batch=8, seq_len=1024, detail=True)
    assert len(detail.ops_frame()) == len(detail.ops) > 10
    s = api.simulate("llama-3.1-8b", "dgx-h100", mapping="tp:2", phase="decode", batch=4, seq_len=512)
    assert api.frame([s])["devices"][0] == 2


def test_memory_checks_live_in_the_library():
    with pytest.raises(HwsimError, match="needs .* GB of memory"):
        api.predict("llama-3.1-70b", "h100", phase="decode", batch=8, seq_len=2048, check_memory=True)
    with pytest.raises(HwsimError, match="per device"):
        api.simulate("llama-3.1-70b", "dgx-h100", mapping="single", phase="decode", batch=8, seq_len=2048)


def test_bad_options_are_one_line_errors():
    with pytest.raises(HwsimError, match="unknown workload option"):
        api.predict("llama-3.1-8b", "h100", quantisation="fp8")
    with pytest.raises(HwsimError, match="unknown software profile"):
        api.predict("llama-3.1-8b", "h100", profile="turbo")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(1e-7, 1e-2), st.floats(1e-7, 1e-2), st.floats(0, 1e-5), st.integers(1, 80),
                          st.floats(1e6, 1e13), st.floats(1e3, 1e10)), min_size=1, max_size=30),
       st.sampled_from(["h100", "h200", "a100", "l4"]))
def test_closed_form_operating_point_equals_the_bisection(ops, hardware):
    """One step solved in closed form (the fast path) and as one column of the array bisection agree."""
    power = PowerModel(load_device(hardware))
    c, m, o, r, f, b = (np.array(x, dtype=float) for x in zip(*ops))
    one = operating_point(power, c[:, None], m[:, None], o[:, None], r, f[:, None], b[:, None])
    two = operating_point(power, *(np.stack([x, x], axis=1) for x in (c, m, o)), r, *(np.stack([x, x], axis=1)
                                                                                      for x in (f, b)))
    assert one.latency[0] == pytest.approx(two.latency[0], rel=1e-6)
    assert one.energy[0] == pytest.approx(two.energy[0], rel=1e-6)
    assert one.clock[0] == pytest.approx(two.clock[0], rel=1e-6)


def test_a_device_object_works_like_its_name():
    d = load_device("h100")
    by_object = api.predict("llama-3.1-8b", d, phase="decode", batch=8, seq_len=1024)
    assert by_object.latency_s == api.predict("llama-3.1-8b", "h100", phase="decode", batch=8, seq_len=1024).latency_s


def test_step_cost_is_the_serving_step():
    from sim.serving.step_cost import Batch, StepCost
    st_ = api.step_cost("llama-3.1-8b", "h100", chunks=[(512, 0)], decodes=16, decode_context=16 * 1001,
                        max_seqs=64, max_context=4096)
    ref = StepCost("llama-3.1-8b", "h100", max_seqs=64, max_context=4096).cost(Batch([(512, 0)], 16, 16 * 1001))
    assert st_.time_s == pytest.approx(ref.time_s) and st_.energy_j == pytest.approx(ref.energy_j)
    longer = api.step_cost("llama-3.1-8b", "h100", chunks=[(512, 0)], decodes=16, decode_context=16 * 3001,
                           max_seqs=64, max_context=4096)
    assert longer.time_s > st_.time_s
    with pytest.raises(HwsimError, match="decode_context"):
        api.step_cost("llama-3.1-8b", "h100", decodes=4, decode_context=2, max_seqs=64, max_context=4096)
    with pytest.raises(HwsimError, match="at least one"):
        api.step_cost("llama-3.1-8b", "h100", max_seqs=64, max_context=4096)


def test_api_serve_runs_a_pool():
    from workloads.requests import frame as req_frame
    res = api.serve(req_frame(np.zeros(3), np.full(3, 64), np.full(3, 4)),
                    api.Pool("llama-3.1-8b", "h100", max_context=2048))
    assert res.summary["completed"] == 3 and res.summary["stack"] == "fused"


# --- walk18: arguments that used to be ignored or end in obscure exceptions ------------------------------------
def _linear():
    import torch
    return torch.nn.Linear(64, 64), torch.randn(4, 64)


@pytest.mark.parametrize("call, words", [
    (lambda: api.predict(None, "h100"), "model must be a preset name"),
    (lambda: api.predict("gpt2", None), "hardware must be a device preset id"),
    (lambda: api.simulate(3, "dgx-h100"), "model must be a preset name"),
    (lambda: api.predict("llama-3.1-8b", "h100", host="dev-cpu-2core"), "apply to host-issued profiles"),
    (lambda: api.simulate("llama-3.1-8b", "dgx-h100", host_speed=2.0), "apply to host-issued profiles"),
])
def test_bad_arguments_are_one_line_errors_not_attribute_errors(call, words):
    """Found by hand (walk18): predict(None, ...) and predict(model, None) raised AttributeError; a host given with a
    CUDA-graph profile was silently ignored (the CLI and studies refuse it)."""
    with pytest.raises(HwsimError, match=words):
        call()


def test_a_traced_graph_refuses_step_sizes_it_would_ignore():
    """Found by hand (walk18): api.predict(graph, "h100", batch=8) (or phase=, seq_len=) returned the traced step's
    figures as if the size had been applied."""
    module, x = _linear()
    g = api.trace_module(module, x)
    assert api.predict(g, "h100").latency_s > 0
    for kw in ({"batch": 8}, {"phase": "decode"}, {"seq_len": 4096}, {"context": 5}):
        with pytest.raises(HwsimError, match="not apply to a traced graph"):
            api.predict(g, "h100", **kw)
        with pytest.raises(HwsimError, match="not apply to a traced graph"):
            api.simulate(g, "dgx-h100", mapping="dp:2", **kw)


def test_predict_module_takes_a_host_and_checks_its_kwargs():
    """Found by hand (walk18): predict_module had no host=/host_speed= (TypeError), and kwargs=[1] raised TypeError
    from inside the trace."""
    module, x = _linear()
    slow = api.predict_module(module, (x,), hardware="h100", profile="eager-launch", host="h100-lent-host")
    fast = api.predict_module(module, (x,), hardware="h100", profile="eager-launch", host="h100-lent-host",
                              host_speed=4.0)
    assert slow.host == "h100-lent-host" and fast.latency_s < slow.latency_s
    with pytest.raises(HwsimError, match="kwargs must be a dict"):
        api.predict_module(module, (x,), kwargs=[1], hardware="h100")
    with pytest.raises(HwsimError, match="host speed must be positive"):
        api.predict_module(module, (x,), hardware="h100", profile="eager-launch", host_speed=0)


def test_paths_work_like_their_text():
    from pathlib import Path
    root = Path(__file__).parent.parent
    a = api.predict(root / "workloads/zoo/gpt2.json", root / "hw_models/presets/h100-sxm-80gb.yaml")
    b = api.predict(str(root / "workloads/zoo/gpt2.json"), "h100")
    assert a.latency_s == pytest.approx(b.latency_s)


# --- twenty-third session: switches taken by truthiness, serve's callbacks, Pool errors naming the field ---------
def _three_requests():
    from workloads.requests import frame as req_frame
    return req_frame(np.zeros(3), np.full(3, 64), np.full(3, 4))


def _predict_cases_first_pass(value):
    import pandas as pd
    from sim.batch_predict import predict_cases
    from sim.cases import read_cases
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cases.csv")
        pd.DataFrame([{"model": "llama-3.1-8b", "hardware": "h100", "phase": "decode", "batch": 1,
                       "seq_len": 128}]).to_csv(path, index=False)
        return predict_cases(read_cases(path), first_pass=value)


@pytest.mark.parametrize("call, words", [
    (lambda: api.predict("llama-3.1-8b", "h100", check_memory="no"), "check_memory must be True or False"),
    (lambda: api.predict("llama-3.1-8b", "h100", detail=1), "detail must be True or False"),
    (lambda: api.predict("llama-3.1-8b", "h100", first_pass="false"), "first_pass must be True or False"),
    (lambda: api.simulate("llama-3.1-8b", "dgx-h100", trace="yes"), "trace must be True or False"),
    (lambda: api.trace_module(__import__("torch").nn.Linear(4, 4), __import__("torch").zeros(2, 4), replay="no"),
     "replay must be True or False"),
    (lambda: _predict_cases_first_pass("no"), "first_pass must be True or False"),
    (lambda: api.simulate("llama-3.1-8b", "dgx-h100", check_memory=None), "check_memory must be True or False"),
    (lambda: api.serve(_three_requests(), api.Pool("llama-3.1-8b", "h100", max_context=2048), progress=5),
     "progress must be a function"),
    (lambda: api.serve(_three_requests(), api.Pool("llama-3.1-8b", "h100", max_context=2048), fast_forward="no"),
     "fast_forward must be True or False"),
    (lambda: api.serve(_three_requests(), api.Pool("llama-3.1-8b", "h100", prefix_caching="no")),
     r"^prefix_caching must be True or False"),
    (lambda: api.serve(_three_requests(), api.Pool("llama-3.1-8b", "h100", chunked="off")),
     r"^chunked must be True or False"),
    (lambda: api.serve(_three_requests(), api.Pool("llama-3.1-8b", "h100", kv_blocks=0)),
     r"^kv_blocks must be a whole number"),
])
def test_switches_and_callbacks_are_checked(call, words):
    """A string such as "no" for a switch was taken as on; serve(progress=5) raised TypeError mid-run; a Pool field
    was named only by its CLI flag."""
    with pytest.raises(HwsimError, match=words):
        call()


@pytest.mark.parametrize("fields, words", [
    (dict(max_seqs=0), "max_seqs must be a whole number >= 1"), (dict(max_tokens=0), "max_tokens must be"),
    (dict(block_size=0), "block_size must be"), (dict(power_cap_w=-5), "power_cap_w must be"),
    (dict(memory_utilization=2), "memory_utilization must be"), (dict(priority="x"), "priority must be"),
    (dict(mapping="dp:2"), "give replicas=2"), (dict(max_context=0), "max_context must be"),
])
def test_pool_errors_name_python_arguments_not_flags(fields, words):
    """Pool errors called from Python named serve's flags ('max_seqs (--max-seqs)', 'give --replicas 2')."""
    with pytest.raises(HwsimError) as e:
        api.serve(_three_requests(), api.Pool("llama-3.1-8b", "h100", **fields))
    assert words in str(e.value) and "--" not in str(e.value)


def test_serve_link_and_warnings_name_python_arguments():
    pool = api.Pool("llama-3.1-8b", "h100", max_context=2048)
    with pytest.raises(HwsimError, match="^kv_link_gbps, the KV link, must be positive"):
        api.serve(_three_requests(), pool, decode_pool=pool, kv_link_gbps=-1)
    with pytest.warns(HwsimWarning) as seen:
        api.serve(_three_requests(), api.Pool("llama-3.1-8b", "h100", max_context=40001))
    text = " ".join(str(w.message) for w in seen)
    assert "chunked=False or max_context=32768" in text and "--" not in text


def test_numpy_bools_are_switches():
    r = api.predict("llama-3.1-8b", "h100", check_memory=np.bool_(False))
    assert r.latency_s > 0
