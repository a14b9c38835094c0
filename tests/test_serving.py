"""Serving simulation: step costs against the traced step, request generation, KV capacity, and the
invariants of the issue's acceptance list (every request completes or is rejected, tokens are conserved, KV
never exceeds capacity, Little's law at steady state, same seed -> same results)."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.serving import Pool, serve
from sim.serving.kv import GIB, KVCache, capacity
from sim.serving.metrics import littles_law, parse_slo
from sim.serving.scheduler import SCHEDULERS
from sim.serving.step_cost import Batch, StepCost
from workloads import requests as rq
from workloads.errors import HwsimError

MODEL = "llama-3.1-8b"


@pytest.fixture(scope="module")
def cost8b():
    return StepCost(MODEL, "h100", "single", profile="fused", max_tokens=4096, max_seqs=256, max_context=4096)


# --- step cost against the traced, mapped, simulated step ------------------------------------------------
@pytest.mark.parametrize("b,c", [(1, 100), (16, 1000), (200, 3000)])
def test_decode_step_equals_traced_step(cost8b, b, c):
    fast = cost8b.cost(Batch([], b, b * (c + 1)))
    exact = cost8b.exact("decode", b, c)
    assert fast.time_s == pytest.approx(exact.time_s, rel=2e-3)
    assert fast.energy_j == pytest.approx(exact.energy_j, rel=2e-3)


@pytest.mark.parametrize("b,n", [(1, 64), (1, 3000), (3, 700)])
def test_prefill_step_equals_traced_step(cost8b, b, n):
    fast = cost8b.cost(Batch([(n, 0)] * b))
    exact = cost8b.exact("prefill", b, n)
    # at the power cap the clock is interpolated; past 2,048 tokens the token-wise ops round T up to 64
    tol = 5e-3 if b * n <= 2048 else 1e-2
    assert fast.time_s == pytest.approx(exact.time_s, rel=tol)
    assert fast.energy_j == pytest.approx(exact.energy_j, rel=tol)


def test_chunk_with_context_does_the_causal_work_only(cost8b):
    """A chunk after cached tokens: the traced op counts n x (c + n) pairs, the fast path n x (c + n/2)."""
    fast = cost8b.cost(Batch([(512, 2000)])).time_s
    exact = cost8b.exact("chunked_prefill", 1, 512, 2000).time_s
    assert fast <= exact * 1.002
    assert fast >= exact * 0.9


def test_mixed_step_is_between_its_parts(cost8b):
    decode = cost8b.cost(Batch([], 64, 64 * 1001)).time_s
    prefill = cost8b.cost(Batch([(512, 0)])).time_s
    mixed = cost8b.cost(Batch([(512, 0)], 64, 64 * 1001)).time_s
    assert max(decode, prefill) < mixed < decode + prefill


def test_tensor_parallel_step_equals_engine():
    cost = StepCost(MODEL, "dgx-h100", "tp:2", profile="fused", max_tokens=2048, max_seqs=64, max_context=2048)
    for phase, b, s in (("decode", 32, 1500), ("prefill", 2, 900)):
        fast = cost.cost(Batch([], b, b * (s + 1)) if phase == "decode" else Batch([(s, 0)] * b))
        exact = cost.exact(phase, b, s)
        assert fast.time_s == pytest.approx(exact.time_s, rel=5e-3)
        assert fast.energy_j == pytest.approx(exact.energy_j, rel=5e-3)
    assert cost.kv_share == pytest.approx(0.5)


def test_pipeline_step_equals_engine_with_one_micro_batch():
    """pp:N in serving: stages one after another (no micro-batches), as sim/pipeline.py runs mb:1."""
    cost = StepCost(MODEL, "dgx-h100", "tp:2,pp:2", profile="fused", max_tokens=2048, max_seqs=64, max_context=2048)
    one = StepCost(MODEL, "dgx-h100", "tp:2", profile="fused", max_tokens=2048, max_seqs=64, max_context=2048)
    assert cost.devices == 4 and cost.weight_bytes == pytest.approx(one.weight_bytes / 2)
    for phase, b, s in (("decode", 32, 1500), ("prefill", 2, 900)):
        batch = Batch([], b, b * (s + 1)) if phase == "decode" else Batch([(s, 0)] * b)
        fast, exact = cost.cost(batch), cost.exact(phase, b, s)
        assert fast.time_s == pytest.approx(exact.time_s, rel=5e-3)
        assert fast.time_s > one.cost(batch).time_s                   # the stage-to-stage send
        # energy: the engine charges no static power during collectives; hwsim's step does
        assert fast.energy_j == pytest.approx(exact.energy_j, rel=0.05)


def test_step_cost_rejects_unsupported_mappings():
    with pytest.raises(HwsimError, match="one batch in flight"):
        StepCost(MODEL, "dgx-h100", "tp:2,pp:2,mb:4", max_context=1024)


# --- requests ------------------------------------------------------------------------------------------
def test_arrival_processes_have_their_rate_and_burstiness():
    rng = np.random.default_rng(0)
    for kind, cv in (("poisson", 1.0), ("gamma", 3.0), ("gamma", 0.5), ("fixed", 0.0)):
        t = rq.arrivals(kind, 20000, 4.0, rng, cv=cv or 1.0)
        gaps = np.diff(t)
        assert 1 / gaps.mean() == pytest.approx(4.0, rel=0.05)
        assert gaps.std() / gaps.mean() == pytest.approx(cv, abs=0.1 * max(cv, 1))
    with pytest.raises(HwsimError, match="rate"):
        rq.arrivals("poisson", 5, 0.0, rng)


@pytest.mark.parametrize("source", rq.dataset_names() + ["fixed:100:20", "uniform:10-20:1-5", "lognormal:500:1:100:0.5",
                                                         "exponential:300:50"])
def test_length_sources(source):
    p, o = rq.lengths(source, 500, np.random.default_rng(1), max_total=4096)
    assert len(p) == len(o) == 500 and p.min() >= 1 and o.min() >= 1 and (p + o).max() <= 4096


def test_fixed_lengths_past_the_context_are_refused_not_clipped():
    """fixed:100000:5 at a 2048-token context was served as 2047 + 1 tokens a request (serve --input-len too)."""
    with pytest.raises(HwsimError, match="100000 prompt [+] 5 output tokens exceed the 2,048-token context"):
        rq.lengths("fixed:100000:5", 3, np.random.default_rng(1), max_total=2048)
    p, o = rq.lengths("fixed:2000:48", 3, np.random.default_rng(1), max_total=2048)
    assert p.tolist() == [2000] * 3 and o.tolist() == [48] * 3


def test_dataset_means_match_their_sources():
    p, o = rq.lengths("sharegpt", 20000, np.random.default_rng(2))
    assert p.mean() == pytest.approx(2340, rel=0.05) and o.mean() == pytest.approx(439, rel=0.05)
    p, o = rq.lengths("azure-code", 20000, np.random.default_rng(2))
    assert p.mean() == pytest.approx(2048, rel=0.05) and o.mean() == pytest.approx(27.9, rel=0.1)


def test_builtin_traces_and_bad_traces(tmp_path):
    df = rq.read_trace("azure-conv-2023")
    assert len(df) == 19366 and df.arrival_s.iloc[0] == 0 and df.arrival_s.is_monotonic_increasing
    moon = rq.read_trace("mooncake-conv")
    assert moon.prefix.map(len).sum() > 0
    bad = tmp_path / "t.csv"
    bad.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,12\n")
    with pytest.raises(HwsimError, match="output-length column"):
        rq.read_trace(str(bad))
    with pytest.raises(HwsimError, match="not found"):
        rq.read_trace(str(tmp_path / "missing.csv"))


def test_shared_prefix_generators():
    rng = np.random.default_rng(0)
    df = rq.with_system_prompts(rq.synthetic(50, 1.0, "fixed:100:10"), 3, 400, rng)
    assert (df.prompt_tokens == 500).all() and all(p[0][1] == 400 for p in df.prefix)
    conv = rq.conversations(5, 3, 1.0, think_s=2.0)
    assert (conv.parent >= 0).sum() == 10
    assert conv.prompt_tokens.iloc[1] > conv.prompt_tokens.iloc[0] + conv.output_tokens.iloc[0]
    tree = rq.sampled_completions(2, 8, 1024, 16, 64)
    assert len(tree) == 16 and tree.prefix.iloc[0] == (("doc0", 1024),)


# --- KV capacity ---------------------------------------------------------------------------------------
def test_kv_capacity_reproduces_vllm_log():
    """vLLM PR #10511: Llama-3-8B on an H100 at 0.90 keeps 53.29 GiB for KV (weights 14.96 GiB, activation
    peak 1.26 GiB, non-torch 1.79 GiB)."""
    cost = StepCost("llama-3-8b", "h100", "single", max_tokens=8192, max_seqs=256, max_context=8192)
    cap = capacity(cost, budget_tokens=8192)
    assert cap.usable_bytes / GIB == pytest.approx(71.29, abs=0.01)
    assert cap.weight_bytes / GIB == pytest.approx(14.96, rel=0.01)
    assert cap.kv_bytes / GIB == pytest.approx(53.29, rel=0.03)
    assert cap.kv_bytes_per_token == 131072
    cap2 = capacity(cost, overhead_gib=0.0, activation_gib=0.0, utilization=1.0)
    assert cap2.kv_bytes > cap.kv_bytes


def test_model_that_does_not_fit_is_one_line_error():
    cost = StepCost("llama-3.1-70b", "h100", "single", max_tokens=2048, max_seqs=16, max_context=2048)
    with pytest.raises(HwsimError, match="does not fit"):
        capacity(cost)


def test_prefix_cache_lru_evicts_leaves_first():
    kv = KVCache(10, 16, prefix_caching=True)
    nodes = []
    assert kv.allocate(4)
    moved = kv.insert((("a", 32), ("b", 32)), 0, nodes, 64)
    assert moved == 4 and len(nodes) == 2
    kv.unref(nodes)
    assert kv.idle == 4 and kv.free == 6
    m, hit = kv.match((("a", 32), ("b", 32), ("c", 10)), 100)
    assert hit == 64 and len(m) == 2
    assert kv.allocate(8)            # evicts the leaf b only
    assert "b" not in kv.nodes and "a" in kv.nodes and kv.idle == 2
    assert kv.allocate(2) and not kv.nodes and kv.free == 0
    assert not kv.allocate(1)
    kv.check()


# --- the simulator's invariants ------------------------------------------------------------------------
def _pool(sched, **kw):
    return Pool(model=MODEL, system="h100", scheduler=sched, max_context=2048, **kw)


def check_invariants(res, df):
    req = res.requests
    assert len(req) == len(df)
    done = req.finish_s.notna()
    assert ((req.rejected != "") ^ done).all()                      # completed or rejected, never both or neither
    for rep in res.replicas:
        kv = rep.kv
        kv.check()
        assert kv.free + kv.idle == kv.total                      # nothing leaked
    tl = res.timeline
    caps = {rep.name: rep.kv.total for rep in res.replicas}
    if len(tl):                                                    # (no iteration when every request was rejected)
        assert ((tl.kv_blocks + tl.kv_cached_blocks).to_numpy() <= tl.replica.map(caps).to_numpy(dtype=float)).all()
        assert (tl.kv_blocks >= 0).all()
    # tokens: a completed request emitted exactly its output tokens, after its arrival
    assert (req.tokens_emitted[done] == req.output_tokens[done]).all()
    assert (req.tokens_emitted[~done] == 0).all()
    assert (req.first_token_s[done] >= req.arrival_s[done]).all()
    assert (req.finish_s[done] >= req.first_token_s[done]).all()
    return done


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sched=st.sampled_from(sorted(SCHEDULERS)), n=st.integers(3, 40), rate=st.floats(0.5, 50.0),
       blocks=st.integers(40, 400), prefix=st.booleans(), swap=st.booleans(), seed=st.integers(0, 10 ** 6),
       replicas=st.integers(1, 2))
def test_every_request_completes_or_is_rejected_and_tokens_are_conserved(sched, n, rate, blocks, prefix, swap, seed,
                                                                         replicas):
    rng = np.random.default_rng(seed)
    df = rq.synthetic(n, rate, "uniform:1-900:1-300", seed=seed)
    if prefix:
        df = rq.with_system_prompts(df, 2, 96, rng)
    pool = _pool(sched, kv_blocks=blocks, prefix_caching=prefix, replicas=replicas,
                 preemption="swap" if swap and sched != "static" else None)
    res = serve(df, pool)
    check_invariants(res, df)
    reqs = res.requests
    rejected = reqs[reqs.rejected != ""]
    # rejected only when it can never fit: more blocks than the replica holds
    for _, r in rejected.iterrows():
        assert "exceed" in r.rejected or "KV blocks" in r.rejected or "budget" in r.rejected


@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
def test_tokens_emitted_equal_tokens_requested(sched):
    df = rq.synthetic(60, 20.0, "uniform:50-1500:1-400", seed=3)
    res = serve(df, _pool(sched, kv_blocks=300))
    done = check_invariants(res, df)
    assert done.sum() == 60


def test_same_seed_same_results():
    df1 = rq.synthetic(80, 8.0, "sharegpt", seed=7, max_total=2048)
    df2 = rq.synthetic(80, 8.0, "sharegpt", seed=7, max_total=2048)
    pd.testing.assert_frame_equal(df1, df2)
    a = serve(df1, _pool("vllm-chunked", prefix_caching=True))
    b = serve(df2, _pool("vllm-chunked", prefix_caching=True))
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert a.summary == b.summary


def test_littles_law_at_steady_state():
    df = rq.synthetic(3000, 6.0, "lognormal:400:0.6:120:0.6", seed=11, max_total=2048)
    res = serve(df, _pool("vllm-chunked"))
    span = float(df.arrival_s.max())
    L, lam_w = littles_law(res.requests, res.timeline, 0.2 * span, 0.8 * span)
    assert L == pytest.approx(lam_w, rel=0.02)


def test_preemption_happens_and_swap_moves_blocks():
    df = rq.synthetic(40, 100.0, "fixed:200:600", seed=1)
    rec = serve(df, _pool("vllm", kv_blocks=120))
    swp = serve(df, _pool("vllm", kv_blocks=120, preemption="swap"))
    assert rec.summary["preemptions"] > 0 and swp.summary["preemptions"] > 0
    assert swp.timeline.swap_blocks.sum() > 0 and rec.timeline.swap_blocks.sum() == 0
    assert rec.summary["completed"] == swp.summary["completed"] == 40


def test_request_that_can_never_fit_is_rejected_not_dropped():
    df = rq.frame([0.0, 0.1], [5000, 100], [10, 10])
    res = serve(df, _pool("vllm-chunked", kv_blocks=100))
    assert res.summary["rejected"] == 1 and res.summary["completed"] == 1
    assert "exceed" in res.requests.rejected.iloc[0] or "blocks" in res.requests.rejected.iloc[0]


def test_prefix_caching_hits_on_shared_system_prompt():
    rng = np.random.default_rng(0)
    df = rq.with_system_prompts(rq.synthetic(100, 5.0, "fixed:100:20", seed=0), 1, 1024, rng)
    off = serve(df, _pool("vllm-chunked"))
    on = serve(df, _pool("vllm-chunked", prefix_caching=True))
    assert on.summary["prefix_hit_rate"] > 0.8
    assert on.summary["ttft_s_mean"] < off.summary["ttft_s_mean"]


def test_conversations_reuse_their_history():
    conv = rq.conversations(10, 4, 0.5, think_s=1.0, seed=1, max_total=2048)
    res = serve(conv, _pool("vllm-chunked", prefix_caching=True))
    assert res.summary["completed"] == len(conv)
    later = res.requests[conv.parent.to_numpy() >= 0]
    assert (later.prefix_hit_tokens > 0).mean() > 0.8
    assert (res.requests.arrival_s[conv.parent >= 0].to_numpy() >=
            res.requests.finish_s.to_numpy()[conv.parent[conv.parent >= 0].to_numpy()]).all()


def test_schedulers_trade_ttft_against_itl():
    df = rq.synthetic(300, 6.0, "sharegpt", seed=5, max_total=2048)
    v = serve(df, _pool("vllm")).summary
    s = serve(df, _pool("sarathi")).summary
    st_ = serve(df, _pool("static", max_seqs=16)).summary
    assert s["itl_s_p99"] < v["itl_s_p99"]          # stall-free batching removes prefill stalls from decodes
    assert st_["ttft_s_p50"] > v["ttft_s_p50"]      # static batches wait for the running batch


def test_slo_parsing():
    assert parse_slo("ttft_p99=1.0,tpot_p99=0.05") == {"ttft_p99": 1.0, "tpot_p99": 0.05}
    for bad in ("ttft=abc", "speed_p99=1", "ttft_p99=-1", "ttft"):
        with pytest.raises(HwsimError):
            parse_slo(bad)


@pytest.mark.parametrize("sched,kw", [("vllm", {}), ("sarathi", {"kv_blocks": 400}), ("orca", {}),
                                      ("vllm-chunked", {"kv_blocks": 300, "preemption": "swap", "replicas": 2})])
def test_decode_runs_are_exactly_the_steps_they_replace(sched, kw):
    """A replica runs uninterruptible decode-only steps as one event; results must equal step-by-step."""
    df = rq.synthetic(150, 4.0, "uniform:100-1200:50-400", seed=9)
    a = serve(df, _pool(sched, **kw), fast_forward=False)
    b = serve(df, _pool(sched, **kw), fast_forward=True)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)


def test_power_cap_slows_compute_bound_steps_only():
    capped = StepCost(MODEL, "h100", "single", max_tokens=4096, max_seqs=64, max_context=4096, power_cap_w=550)
    free = StepCost(MODEL, "h100", "single", max_tokens=4096, max_seqs=64, max_context=4096, power_cap_w=1e9)
    pre = Batch([(4000, 0)])
    assert capped.cost(pre).time_s > 1.2 * free.cost(pre).time_s
    assert capped.cost(pre).power_w <= 550 * 1.001
    dec = Batch([], 4, 4 * 500)          # a small decode draws under 550 W: not slowed
    assert capped.cost(dec).time_s == pytest.approx(free.cost(dec).time_s, rel=1e-9)
    with pytest.raises(HwsimError, match="power cap"):
        StepCost(MODEL, "h100", "single", max_context=1024, power_cap_w=-5)


def test_tensor_parallel_split_is_checked_on_the_served_model():
    """Serving's templates carried no model spec, so `serve --mapping tp:3` of a 32-head model ran (simulate
    refuses it) and a single KV head (MQA) was split across the devices, doubling the KV capacity (found by
    exercising `hwsim serve --mapping tp:3` and comparing with `hwsim simulate`)."""
    with pytest.raises(HwsimError, match="tp:3 does not divide the 32 attention heads"):
        StepCost(MODEL, "dgx-h100", "tp:3", max_tokens=2048, max_seqs=16, max_context=2048)
    mqa = StepCost("gemma-2b", "dgx-h100", "tp:2", max_tokens=2048, max_seqs=16, max_context=2048)
    assert mqa.kv_share == pytest.approx(1.0)      # the one KV head is held whole on both devices


def test_trace_with_bad_rows_keeps_the_good_ones_and_names_the_bad(tmp_path):
    """A trace CSV with text in a length column died with exit 70 (ValueError: invalid literal for int()), a blank
    printed numpy's cast warning before the error, 100.5 tokens were silently truncated and a header-only file died
    in t.min() (exit 70). Found feeding `serve --trace` hand-edited CSVs. Then one bad row stopped the whole replay;
    now (twenty-third session) it is left out with its reason, the good rows are served, and a trace with no
    servable row is one line naming the first bad one."""
    import re
    import warnings

    from workloads.errors import HwsimWarning
    cases = {"0,100,20\n0.5,abc,20\n": "row 2: column prompt_len holds 'abc'",
             "0,100,20\n0.5,100\n": "row 2: column output_len holds a blank",
             "0,100,20\nx,100,20\n": "row 2: its time is not a number"}
    for i, (rows, msg) in enumerate(cases.items()):
        path = tmp_path / f"t{i}.csv"
        path.write_text("arrival_s,prompt_len,output_len\n" + rows)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            df = rq.read_trace(str(path))
        assert [str(w.message) for w in seen if issubclass(w.category, HwsimWarning)] and \
            not [w for w in seen if not issubclass(w.category, HwsimWarning)]   # no numpy cast warning
        assert msg in str(seen[0].message) and "serving the other 1" in str(seen[0].message)
        assert df.prompt_tokens.tolist() == [100] and df.attrs["skipped_rows"][0]["row"] == 2
        assert df.attrs["skipped_rows"][0]["status"].startswith("error: ")
    alone = {"0,100.5,20\n": "row 1: column prompt_len holds 100.5",
             "0,1e20,20\n": "row 1: column prompt_len holds 1e+20",
             "0,0,20\n": "row 1: column prompt_len holds 0,",
             "": "holds no requests"}
    for i, (rows, msg) in enumerate(alone.items()):
        path = tmp_path / f"a{i}.csv"
        path.write_text("arrival_s,prompt_len,output_len\n" + rows)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(HwsimError, match=re.escape(msg)):
                rq.read_trace(str(path))
    ok = tmp_path / "ok.csv"
    ok.write_text("arrival_s,prompt_len,output_len\n0,100,20\n0.5,7,3\n")
    good = rq.read_trace(str(ok))
    assert good.prompt_tokens.tolist() == [100, 7] and good.attrs["skipped_rows"] == []


@pytest.mark.parametrize("source", ["lognormal:nan:1:2:3", "exponential:inf:5", "fixed:100:nan", "uniform:1-nan:1-2"])
def test_length_distribution_with_nan_or_inf_is_a_bad_distribution(source):
    """NaN and inf passed the distribution parser's `v <= 0` check, so `serve --dataset fixed:100:nan` failed later
    with 'request 1 holds -9223372036854775808' (found trying NaN in --dataset). Now the parser names it."""
    with pytest.raises(HwsimError, match="bad length distribution"):
        rq.lengths(source, 4, np.random.default_rng(0))


@pytest.mark.parametrize("system", ["tpu-v4", "xeon-8480"])
def test_serving_a_non_gpu_device_is_one_line(system):
    """`serve --system tpu-v4` (or a CPU, or neupims) died with exit 70 in the CPU/NPU model's energy_flops (a
    TypeError on the step tables' arrays); found serving on every device class. Serving costs steps with the GPU
    model, so other classes are refused in one line."""
    with pytest.raises(HwsimError, match="serving costs its steps with the GPU model"):
        StepCost(MODEL, system, "single", max_tokens=2048, max_seqs=16, max_context=2048)


def test_kv_capacity_of_a_hypothetical_device_keeps_its_presets_visible_memory():
    """`serve --system h100+hbm.bandwidth=6.7TB/s` sized its KV cache from 80 GiB instead of the 79.22 GiB CUDA shows
    on an H100 (the measured total was looked up by the override's id), so a bandwidth override alone gave 1.3% more
    KV tokens; found comparing serve on h100 and on bandwidth overrides of it. An override of the memory itself
    still drops the measured total."""
    from types import SimpleNamespace

    from hw_models import load_device

    def tokens(name):
        cost = SimpleNamespace(device=load_device(name), weight_bytes=15 * GIB, activation_peak_bytes=lambda t: GIB,
                               devices=1, kv_bytes_per_token=131072, kv_share=1.0, model_name="m", mapping="single")
        return capacity(cost).tokens
    assert tokens("h100+hbm.bandwidth=6.7TB/s") == tokens("h100")
    assert tokens("h100+memory=96GiB") > tokens("h100")


def test_power_cap_at_or_below_static_power_is_refused():
    """`serve --power-cap 50` on an H100 (static power 134.5 W) ran at the lowest clock and reported 252 W average
    under its 50 W cap, which no clock can meet; found trying caps around the device's idle power."""
    with pytest.raises(HwsimError, match="not above h100-sxm-80gb's static power"):
        StepCost(MODEL, "h100", "single", max_tokens=2048, max_seqs=16, max_context=2048, power_cap_w=50)


def test_kv_block_size_defaults_to_the_stacks_page():
    """hw_models/stacks.py gives each paged stack its KV page (trtllm 64 tokens, sglang 1) but serving took vLLM's 16
    for every stack (the page size was read nowhere; found by a new-user pass over the stacks). A pool now takes
    its stack's page unless --block-size says otherwise."""
    from sim.serving import Pool, block_size_for
    pool = dict(model="llama-3.1-8b", system="h100")
    assert block_size_for(Pool(**pool, profile="trtllm")) == 64
    assert block_size_for(Pool(**pool, profile="sglang")) == 1
    assert block_size_for(Pool(**pool, profile="fused")) == 16       # contiguous-cache stacks: vLLM's default
    assert block_size_for(Pool(**pool, profile="trtllm", block_size=32)) == 32


def test_vllm_scheduler_chunks_long_contexts_as_vllm_v0_does():
    """vLLM v0 turns chunked prefill on by itself above 32K-token contexts (no sliding window, no prefix caching)
    with a 512-token budget: the `vllm` scheduler does the same (said once), and not under 32K, with a sliding
    window, prefix caching or --no-chunked; --max-batched-tokens sets the budget."""
    import warnings as w

    import sim.serving as serving
    from sim.serving import Pool
    from workloads.errors import HwsimWarning
    serving._WARNED.discard(("llama-3.1-8b", 131072, "chunked"))     # once per process: an earlier run may have said it
    with w.catch_warnings(record=True) as seen:
        w.simplefilter("always")
        long = Pool(model="llama-3.1-8b", system="h100").policy()
        again = Pool(model="llama-3.1-8b", system="h100").policy()
    said = [str(x.message) for x in seen if issubclass(x.category, HwsimWarning) and "chunked prefill" in str(x.message)]
    assert len(said) == 1 and "512 tokens" in said[0] and "chunked=False or max_context=32768" in said[0]
    assert (long.chunked, long.mixed, long.priority, long.max_tokens) == (True, True, "decode", 512) == \
        (again.chunked, again.mixed, again.priority, again.max_tokens)
    for pool in (Pool(model="llama-3.1-8b", system="h100", max_context=32768),
                 Pool(model="llama-3.1-8b", system="h100", chunked=False),
                 Pool(model="llama-3.1-8b", system="h100", prefix_caching=True),
                 Pool(model="mistral-7b", system="h100")):                  # 32K positions, sliding window
        p = pool.policy()
        assert not p.chunked and p.max_tokens is None, pool
    assert Pool(model="llama-3.1-8b", system="h100", max_tokens=2048).policy().max_tokens == 2048
    assert Pool(model="llama-3.1-8b", system="h100", scheduler="sarathi").policy().max_tokens == 512


def test_serve_no_chunked_option_keeps_whole_prompts():
    from sim.cli import build_parser
    parser = build_parser()
    assert parser.parse_args(["serve", "--model", "m", "--system", "s", "--no-chunked"]).chunked is False
    assert parser.parse_args(["serve", "--model", "m", "--system", "s", "--chunked"]).chunked is True
    assert parser.parse_args(["serve", "--model", "m", "--system", "s"]).chunked is None